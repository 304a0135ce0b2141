"""Bed vitals whatever the sensor clock's phase against the 30-s grid, its drift, and its gaps.

A real sensor's first sample after an epoch boundary comes 0 to one sample period late,
its crystal drifts (±50 ppm is a common tolerance), and links drop notifications. Frames
cut by the collector's framer must still yield each epoch's vitals, in both layers (the
Lambda handler and the nightly job share :func:`core.signals.vitals.bed_runs_vitals`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ble.bed_profile import BedNotification
from core.ble.device_records import BedFramer
from core.contract.epochs import EPOCH_MS
from core.signals.vitals import EDGE_SLACK_S, BedRun, bed_runs_vitals
from simulator.nights import SimConfig, simulate_night
from tests.conftest import T0_MS

RATES = (50, 100, 250)  # Hz: the range the bed profile and the contract allow and sensors use
SLICE_S = 8 * 60  # eight minutes of sleep with pauses, a little movement, from 2 h in
PER_NOTE = 50


@cache
def _signal(fs: int, apnea_per_hour: float = 20.0) -> np.ndarray:
    night = simulate_night(SimConfig("s001", T0_MS, seed=5, fs_hz=float(fs), apnea_per_hour=apnea_per_hour))
    start = 2 * 3600 * fs
    return night.bed_counts[start : start + SLICE_S * fs]


def _notes(x: np.ndarray, fs: int, t0_ms: int, drop: int | None = None) -> list[BedNotification]:
    out = []
    for k, i in enumerate(range(0, len(x), PER_NOTE)):
        if k != drop:
            out.append(BedNotification(k, t0_ms + int(i * 1000 // fs), fs, x[i : i + PER_NOTE]))
    return out


def _vitals(notes: list[BedNotification]) -> dict[int, dict]:
    framer = BedFramer()
    frames = []
    for n in notes:
        frames += framer.feed("bed-1", "s001", n, int(n.end_time_ms) + 100)
    frames += framer.flush("bed-1")
    runs = [BedRun(f.samples, f.fs_hz, f.event_time_ms, "s001", "bed-1", f.record_id) for f in frames]
    return {d["epoch_start_ms"]: d for docs in bed_runs_vitals(runs) for d in docs}


FIELDS = ("hr_bpm", "window_hr_bpm", "br_per_min", "movement", "presence", "pause_start_ms", "pause_end_ms")


def _same(a: dict, b: dict, shift_ms: int = 0) -> bool:
    return all(a[f] == b[f] for f in FIELDS[:5]) and all(
        [t + shift_ms for t in a[f]] == b[f] for f in ("pause_start_ms", "pause_end_ms")
    )


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(RATES), st.floats(0, 0.999), st.integers(0, 40))
def test_any_clock_phase_gives_the_aligned_vitals(fs: int, phase: float, epochs_later: int) -> None:
    """A first sample up to one period after the boundary: the same samples, so the same numbers."""
    x = _signal(fs)
    aligned = _vitals(_notes(x, fs, T0_MS))
    assert len(aligned) == SLICE_S * 1000 // EPOCH_MS
    offset = epochs_later * EPOCH_MS + int(phase * 1000 // fs)  # whole epochs, then the phase
    shifted = _vitals(_notes(x, fs, T0_MS + offset))
    assert sorted(shifted) == [t + epochs_later * EPOCH_MS for t in sorted(aligned)]
    for t, doc in aligned.items():
        assert _same(doc, shifted[t + epochs_later * EPOCH_MS], epochs_later * EPOCH_MS)  # pauses: 0.1-s resolution


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(RATES),
    st.integers(0, EPOCH_MS - 1),
    st.floats(-50e-6, 50e-6),
    st.one_of(st.none(), st.integers(5, 200)),
)
def test_any_offset_drift_and_gap_still_yield_every_covered_epoch(
    fs: int, offset_ms: int, drift: float, gap_note: int | None
) -> None:
    """Samples starting anywhere in an epoch, a crystal ±50 ppm off, one lost notification.

    The device stamps its samples by its own clock, so drift shows as the signal's events
    arriving (1 + drift) times later in device time: the sensor is resampled. Every epoch
    the frames cover but for :data:`EDGE_SLACK_S` yields its vitals, and the night's
    figures stay within the vitals' own accuracy of the aligned case (an apnoea-free
    stretch: cut elsewhere, epochs with a pause give another breathing rate).
    """
    x = _signal(fs, 0.0)
    n = len(x) - 2 * fs
    t_dev = np.arange(n) * (1 + drift)  # where the device's i-th sample falls in the signal, samples
    resampled = np.round(np.interp(t_dev, np.arange(len(x)), x.astype(float))).astype(np.int16)
    aligned = _vitals(_notes(x[:n], fs, T0_MS))
    docs = _vitals(_notes(resampled, fs, T0_MS + offset_ms, drop=gap_note))
    # the epochs whose samples are all there but for the edge slack (none of the lost notification's)
    t_ms = T0_MS + offset_ms + np.arange(n) * 1000 / fs
    kept = np.ones(n, dtype=bool)
    if gap_note is not None:
        kept[gap_note * PER_NOTE : (gap_note + 1) * PER_NOTE] = False
    epoch = (t_ms // EPOCH_MS).astype(np.int64) * EPOCH_MS
    expected = []
    for e in np.unique(epoch).tolist():
        here = epoch == e
        # a lost notification splits the frame: each part must cover the epoch alone
        parts = np.split(kept[here], np.flatnonzero(np.diff(kept[here].astype(int)) != 0) + 1)
        best = max(int(p.sum()) for p in parts if p.size and p[0]) if kept[here].any() else 0
        if best >= 30 * fs - int(EDGE_SLACK_S * fs):
            expected.append(e)
    assert sorted(docs) == expected
    assert {d["presence"] for d in docs.values()} == {True}
    hr = [d["hr_bpm"] for d in docs.values() if d["hr_bpm"] is not None]
    hr0 = [d["hr_bpm"] for d in aligned.values() if d["hr_bpm"] is not None]
    assert len(hr) >= 0.8 * len(docs)
    assert abs(np.mean(hr) - np.mean(hr0)) <= 1.0  # bpm
    br = [d["br_per_min"] for d in docs.values() if d["br_per_min"] is not None]
    br0 = [d["br_per_min"] for d in aligned.values() if d["br_per_min"] is not None]
    assert abs(np.mean(br) - np.mean(br0)) <= 1.0  # breaths/min


@pytest.mark.parametrize("fs", RATES)
def test_a_frame_missing_under_a_second_at_an_edge_still_yields_its_epoch(fs: int) -> None:
    x = _signal(fs)[: 3 * 30 * fs].astype(float)
    late = int(0.6 * fs)  # the first 0.6 s of the first epoch were lost
    (docs,) = bed_runs_vitals([BedRun(x[late:], float(fs), T0_MS + late * 1000 // fs, "s", "b")])
    assert [d["epoch_start_ms"] for d in docs] == [T0_MS, T0_MS + EPOCH_MS, T0_MS + 2 * EPOCH_MS]
    (full,) = bed_runs_vitals([BedRun(x, float(fs), T0_MS, "s", "b")])
    assert docs[1:] == full[1:]
    assert docs[0]["presence"] == full[0]["presence"]
    assert docs[0]["br_per_min"] == pytest.approx(full[0]["br_per_min"], abs=1.0)
    too_late = int(1.5 * fs)
    (fewer,) = bed_runs_vitals([BedRun(x[too_late:], float(fs), T0_MS + too_late * 1000 // fs, "s", "b")])
    assert [d["epoch_start_ms"] for d in fewer] == [T0_MS + EPOCH_MS, T0_MS + 2 * EPOCH_MS]
