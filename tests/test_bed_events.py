"""The night's breathing-pause episodes and bed exits (core.nights.bed_events): one definition for both layers."""

from __future__ import annotations

import numpy as np

from core.contract.epochs import EPOCH_MS
from core.nights.bed_events import bed_events, starts_per_epoch
from core.signals.vitals import BedRun, bed_runs_vitals
from simulator.nights import night_records
from tests.conftest import T0_MS, sim_night


def _doc(k: int, *, pauses: list[tuple[float, float]] = (), presence: bool = True) -> dict:
    start = T0_MS + k * EPOCH_MS
    return {
        "subject_id": "s001",
        "device_id": "bed-1",
        "source": "bed",
        "epoch_start_ms": start,
        "hr_bpm": 60.0,
        "presence": presence,
        "pause_start_ms": [start + round(a * 1000) for a, _ in pauses],
        "pause_end_ms": [start + round(b * 1000) for _, b in pauses],
    }


def test_still_stretches_are_not_pauses_and_a_pause_joins_across_epochs() -> None:
    docs = [_doc(k, pauses=[(3.0, 4.5), (12.0, 13.0)]) for k in range(4)]  # end-expiration rests only
    docs.append(_doc(4, pauses=[(24.0, 30.0)]))  # 6 s at the end of one epoch...
    docs.append(_doc(5, pauses=[(0.0, 7.5), (20.0, 21.0)]))  # ...and 7.5 s into the next: one 13.5-s pause
    docs += [_doc(k) for k in range(6, 10)]
    events = bed_events(docs)
    assert events.pauses == [(T0_MS + 4 * EPOCH_MS + 24_000, T0_MS + 5 * EPOCH_MS + 7_500)]
    counts = starts_per_epoch(events.pauses, [d["epoch_start_ms"] for d in docs])
    assert counts.tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_a_pause_under_ten_seconds_or_broken_by_leaving_the_bed_is_no_episode() -> None:
    docs = [_doc(0, pauses=[(21.0, 29.0)]), _doc(1, pauses=[(0.0, 0.5)])]  # joined, 9.5 s: short of 10
    docs += [_doc(2, pauses=[(25.0, 30.0)]), _doc(3, presence=False)]  # nobody in bed ends it at 5 s
    assert bed_events(docs).pauses == []


def test_bed_exit_after_half_an_hour_in_bed_and_not_the_first_getting_in() -> None:
    docs = [_doc(k, presence=False) for k in range(4)]  # empty bed before going to bed: no exit
    docs += [_doc(k) for k in range(4, 70)]  # 33 min in bed
    docs += [_doc(k, presence=False) for k in range(70, 76)]  # 3 min out
    docs += [_doc(k) for k in range(76, 90)]
    events = bed_events(docs)
    assert events.bed_exits == [(T0_MS + 70 * EPOCH_MS, T0_MS + 76 * EPOCH_MS)]
    assert bed_events(docs[:74]).bed_exits == [(T0_MS + 70 * EPOCH_MS, T0_MS + 74 * EPOCH_MS)]  # closed at the end


def test_simulated_apnoeas_are_found_as_episodes_and_nothing_else() -> None:
    night = sim_night(seed=3, apnea_per_hour=12.0)
    frames = [r for r in night_records(night, strap_device=None, bed_device="bed-1")]
    runs = [BedRun(f.samples, f.fs_hz, f.event_time_ms, "s001", "bed-1") for f in frames]
    docs = sorted((d for ds in bed_runs_vitals(runs) for d in ds), key=lambda d: d["epoch_start_ms"])
    events = bed_events(docs)
    truth = [
        (night.t0_ms + e["start_s"] * 1000, night.t0_ms + e["end_s"] * 1000)
        for e in night.events
        if e["kind"] == "apnea"
    ]
    assert len(truth) > 40
    found = [any(a < te and b > ts for a, b in events.pauses) for ts, te in truth]
    assert np.mean(found) >= 0.95 and len(events.pauses) == sum(found)
    starts = np.array([a for a, _ in events.pauses])
    assert np.all(np.abs(starts - np.array([ts for (ts, _), f in zip(truth, found, strict=True) if f])) < 3000)
    assert len(events.bed_exits) == 1
