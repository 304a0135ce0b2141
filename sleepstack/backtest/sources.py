"""Nights to replay: from the raw lake, simulated with their truth, or slpdb's recordings.

Each source yields :class:`BacktestNight` one at a time (a night's bed frames are large):
its records in stream order per device, the kinds of device it has and, when known, its
true events (:class:`core.live.alarm_burden.Event`).

* :func:`lake_nights`: the raw lake's records (``<lake>/raw/dt=.../*.parquet``) of the named
  nights (noon to noon in ``tz``, as the batch layer assigns them), one night per subject;
  no truth.
* :func:`simulated_nights`: the simulator's cohort (:func:`simulator.nights.cohort`, a
  strap and a bed sensor per subject, 0-6 apnoeas/h) with :data:`TACHYCARDIA_PER_NIGHT`
  tachycardia episodes drawn per night, and its apnoeas, tachycardias and bed exit.
* :func:`slpdb_nights`: slpdb's ECG beats replayed as a strap's notifications
  (:func:`simulator.nights.beats_measurements`) with the scorers' respiratory events, each
  the 30-s epoch it was scored in. slpdb has no bed sensor, so no rule there is scored
  against them (:data:`core.live.alarm_burden.SCORED_AGAINST`): its nights measure the
  heart-rate rules' burden on real, apnoeic hearts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from batch_layer.nightly_job import raw_dates_for
from core.contract import Record
from core.contract.epochs import EPOCH_S, night_of
from core.contract.layout import from_row
from core.errors import DatasetError, NoDataError
from core.live.alarm_burden import Event
from simulator.nights import (
    FIRST_NIGHT_T0_MS,
    beats_measurements,
    cohort,
    night_records,
    simulate_night,
    strap_samples,
)
from sleepstack.datasets.slpdb import list_records, read_record
from sleepstack.evaluation.apnea import RESPIRATORY

__all__ = [
    "SIMULATED_TRUTH",
    "TACHYCARDIA_PER_NIGHT",
    "BacktestNight",
    "lake_nights",
    "simulated_nights",
    "slpdb_nights",
]

#: Tachycardia episodes drawn per simulated night (1-8 min, +50-75 bpm: :mod:`simulator.nights`).
TACHYCARDIA_PER_NIGHT = 3
#: The event kinds a simulated night knows every occurrence of.
SIMULATED_TRUTH = frozenset({"apnea", "bed_exit", "tachycardia"})


@dataclass(frozen=True)
class BacktestNight:
    """One night to replay: its records, its known events, and the kinds of event it knows all of."""

    name: str
    records: list[Record]
    events: tuple[Event, ...] = ()
    truth: frozenset[str] = frozenset()

    @property
    def sources(self) -> frozenset[str]:
        return frozenset(r.kind for r in self.records if r.kind in ("strap", "bed"))

    @property
    def duration_h(self) -> float:
        if not self.records:
            return 0.0
        times = [r.event_time_ms for r in self.records]
        return (max(times) - min(times)) / 3_600_000


def simulated_nights(n: int, seed: int) -> Iterator[BacktestNight]:
    """``n`` simulated subjects' first night (:func:`simulator.nights.cohort`), with their events."""
    for k, config in enumerate(cohort(n, 1, seed)):
        night = simulate_night(dataclasses.replace(config, tachycardia_per_night=TACHYCARDIA_PER_NIGHT))
        sub = config.subject_id
        records: list[Record] = list(night_records(night, strap_device=f"strap-{sub}", bed_device=f"bed-{sub}"))
        events = tuple(
            Event(
                str(e["kind"]),
                night.t0_ms + round(float(e["start_s"]) * 1000),
                night.t0_ms + round(float(e["end_s"]) * 1000),
            )
            for e in night.events
        )
        yield BacktestNight(f"simulated-{k + 1}", records, events, SIMULATED_TRUTH)


def slpdb_nights(root: Path) -> Iterator[BacktestNight]:
    """slpdb's records as strap nights with their scored respiratory events (module docstring)."""
    listed = list_records(root)
    if not listed:
        raise DatasetError(str(root / "meta.csv"), "lists no record with an rr/ and a stages/ file")
    for record, subject in listed:
        rec = read_record(root, record, subject)
        t0 = FIRST_NIGHT_T0_MS
        duration_s = float(rec.beat_t_s[-1]) if len(rec.beat_t_s) else 0.0
        strap = strap_samples(beats_measurements(rec.beat_t_s, t0, duration_s), f"strap-{record}", f"slpdb-{subject}")
        events = tuple(
            Event("apnea", t0 + round(t * 1000), t0 + round((t + EPOCH_S) * 1000))
            for t, codes in zip(rec.epoch_t_s, rec.events, strict=True)
            for c in codes.split()
            if c in RESPIRATORY
        )
        yield BacktestNight(record, list(strap), events, frozenset({"apnea"}))


def lake_nights(raw: Path, nights: list[str], tz: str, subject: str | None = None) -> Iterator[BacktestNight]:
    """Each subject's records of ``nights`` in the raw lake under ``raw`` (``<lake>/raw``); no truth."""
    paths = [p for dt in raw_dates_for(nights) for p in sorted((raw / f"dt={dt}").rglob("*.parquet"))]
    if not paths:
        raise NoDataError(f"the raw lake {raw} holds no records of the nights {', '.join(nights)}")
    by_night: dict[tuple[str, str], dict[str, Record]] = {}
    for path in paths:
        table = pq.read_table(path, filters=None if subject is None else [("subject_id", "=", subject)])
        for row in table.to_pylist():
            night = night_of(int(row["event_time_ms"]), tz)
            if night not in nights:
                continue
            rec = from_row(row)
            by_night.setdefault((rec.subject_id, night), {})[rec.record_id] = rec  # a record once, however often landed
    if not by_night:
        who = f"subject {subject}" if subject else "any subject"
        raise NoDataError(f"the raw lake holds no records of {who} on the nights {', '.join(nights)}")
    for (sub, night), recs in sorted(by_night.items()):
        ordered = sorted(recs.values(), key=lambda r: (r.device_id, r.event_time_ms, r.record_id))
        yield BacktestNight(f"{sub}/{night}", ordered)
