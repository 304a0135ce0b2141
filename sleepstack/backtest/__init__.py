"""The alarm-burden backtest: stored or simulated nights replayed through alert rule sets.

* :mod:`~sleepstack.backtest.rules_file`: named rule sets from a TOML file;
* :mod:`~sleepstack.backtest.replay`: one night's records through the speed layer's own code;
* :mod:`~sleepstack.backtest.sources`: nights from the raw lake, the simulator, slpdb;
* :mod:`~sleepstack.backtest.run`: the table (scoring in :mod:`core.live.alarm_burden`).
"""

from sleepstack.backtest.replay import replay_alerts
from sleepstack.backtest.rules_file import load_rule_sets
from sleepstack.backtest.run import backtest
from sleepstack.backtest.sources import BacktestNight, lake_nights, simulated_nights, slpdb_nights

__all__ = [
    "BacktestNight",
    "backtest",
    "lake_nights",
    "load_rule_sets",
    "replay_alerts",
    "simulated_nights",
    "slpdb_nights",
]
