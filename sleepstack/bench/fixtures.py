"""What the benchmarks share: simulated records, a private home's settings, a private stream."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.contract import Record
from core.simulate import FIRST_NIGHT_T0_MS, SimConfig, night_records, simulate_night
from local.kinesis import LocalStack
from sleepstack import wiring
from sleepstack.settings import Settings

__all__ = ["bench_settings", "mixed_records", "private_stream", "simulated_night_records"]


def simulated_night_records(subject_id: str, seed: int, apnea_per_hour: float = 0.0) -> list[Record]:
    """One simulated night (strap + 100 Hz bed) of ``subject_id`` as contract records, in time order."""
    sim = simulate_night(SimConfig(subject_id, FIRST_NIGHT_T0_MS, seed, apnea_per_hour=apnea_per_hour))
    return night_records(sim, strap_device=f"strap-{subject_id}", bed_device=f"bed-{subject_id}")


def mixed_records(n: int, subjects: int, seed: int) -> list[Record]:
    """``n`` records of several subjects interleaved in time order, from mid-night (everyone in bed)."""
    per = -(-n // subjects)
    out: list[Record] = []
    for k in range(subjects):
        recs = simulated_night_records(f"b{k:03d}", seed + k, apnea_per_hour=4.0)
        start = len(recs) // 3
        out += recs[start : start + per]
    out.sort(key=lambda r: r.event_time_ms)
    return out[:n]


def bench_settings(home: Path) -> Settings:
    """Local settings of a private benchmark home (nothing read from the environment)."""
    return Settings.from_env({"SLEEPSTACK_HOME": str(home), "SLEEPSTACK_ENV": "bench"})


@contextmanager
def private_stream(home: Path) -> Iterator[tuple[Settings, Any, str]]:
    """A private kinesalite under ``home`` with the template's streams: (settings, client, stream)."""
    settings = bench_settings(home)
    stack = LocalStack(home / "stack")
    endpoint = stack.up(environment=settings.environment)
    try:
        yield settings, wiring.kinesis_client(settings, endpoint), wiring.stream_name(settings)
    finally:
        stack.down()
