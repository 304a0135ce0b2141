"""Simulated nights with their ground truth, the demo cohort, and accuracy against that truth.

Not part of the deployable core: the tests, the demo, replays, benchmarks and the
evaluation commands use it; neither the Lambda zip nor the Glue wheel ships it
(``tests/test_package.py``). It may import only :mod:`core` (``tests/test_layers.py``).

* :mod:`simulator.nights` — one night's physiology, its BLE notifications and records,
  and the deterministic cohort (``cohort``, ``latest_first_night``);
* :mod:`simulator.vitals_accuracy` — the bed-sensor vitals against a night's truth.
"""
