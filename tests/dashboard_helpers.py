"""A home filled with replayed nights, and the dashboard serving it, for the dashboard's tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from core.contract import Record
from sleepstack.bench.fixtures import bench_settings, index_and_stage, simulated_night_records
from sleepstack.settings import Settings

SUBJECTS = ("s001", "s002", "s003")
HOURS = 4.5  # a night is scored from 4 h in bed


@cache
def night_records(hours: float = HOURS) -> tuple[Record, ...]:
    """The first ``hours`` of a simulated night (strap + bed) of each of :data:`SUBJECTS`, in time order."""
    recs: list[Record] = []
    for k, subject in enumerate(SUBJECTS):
        night = simulated_night_records(subject, seed=k, apnea_per_hour=8.0)
        end = night[0].event_time_ms + hours * 3_600_000
        recs += [r for r in night if r.event_time_ms < end]
    return tuple(sorted(recs, key=lambda r: r.event_time_ms))


def fill_home(home: Path, hours: float = HOURS) -> tuple[Settings, str]:
    """Index the nights through the speed-layer handler and stage them; (settings, night)."""
    settings = bench_settings(home)
    return settings, index_and_stage(settings, list(night_records(hours)))
