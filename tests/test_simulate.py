from __future__ import annotations

import time
from itertools import pairwise

import numpy as np

from core.contract import BedFrame, StrapSample, from_wire, to_wire
from core.contract.epochs import EPOCH_MS
from core.nights.stages import SleepStage
from simulator.nights import SimConfig, night_records, simulate_night
from sleepstack.datasets.rr_files import read_rr_ms
from tests.conftest import T0_MS, require_data, sim_night


def test_same_seed_same_night_different_seed_different_night() -> None:
    a = simulate_night(SimConfig("s", T0_MS, seed=5))
    b = simulate_night(SimConfig("s", T0_MS, seed=5))
    c = simulate_night(SimConfig("s", T0_MS, seed=6))
    assert np.array_equal(a.bed_counts, b.bed_counts) and np.array_equal(a.beat_t_s, b.beat_t_s)
    assert not np.array_equal(a.epochs.stage, c.epochs.stage)


def test_hypnogram_has_sleep_architecture() -> None:
    for seed in range(4):
        st = simulate_night(SimConfig("s", T0_MS, seed=seed, bed_exit=False)).epochs.stage
        hours = len(st) / 120
        assert 5.5 <= hours <= 9.5  # 4-5 cycles of 80-105 min plus latency and final wake
        assert st[0] == SleepStage.WAKE and st[-1] == SleepStage.WAKE
        first, last = st[: len(st) // 3], st[-len(st) // 3 :]
        assert (first == SleepStage.DEEP).sum() > (last == SleepStage.DEEP).sum()  # deep early
        assert (last == SleepStage.REM).sum() > (first == SleepStage.REM).sum()  # REM late
        rem_onsets = np.flatnonzero(np.diff((st == SleepStage.REM).astype(int)) == 1)
        assert len(rem_onsets) >= 3 and 60 <= np.median(np.diff(rem_onsets)) / 2 <= 130  # ~90-min cycles


def test_physiology_depends_on_stage() -> None:
    ep = sim_night().epochs
    hr = {s: np.nanmean(ep.hr_bpm[ep.stage == s]) for s in SleepStage}
    assert hr[SleepStage.DEEP] < hr[SleepStage.LIGHT] < hr[SleepStage.WAKE]
    assert hr[SleepStage.DEEP] < hr[SleepStage.REM]
    br = ep.br_per_min[np.isfinite(ep.br_per_min) & ~ep.apnea]
    assert 9 <= np.median(br) <= 20


def test_events_and_truth_are_consistent() -> None:
    night = sim_night(seed=3, apnea_per_hour=6.0)
    kinds = [e["kind"] for e in night.events]
    assert "bed_exit" in kinds and "apnea" in kinds
    exit_ev = next(e for e in night.events if e["kind"] == "bed_exit")
    i = int(float(exit_ev["start_s"]) // 30)
    assert not night.epochs.in_bed[i] and night.epochs.stage[i] == SleepStage.WAKE
    assert all(float(e["end_s"]) - float(e["start_s"]) >= 10 for e in night.events if e["kind"] == "apnea")


def test_apnoeas_come_in_runs_at_the_rate_asked_and_only_in_sleep() -> None:
    """Runs of pauses every 50-85 s (40-60 s of breathing between), as obstructive events cluster."""
    for rate in (10.0, 30.0):
        night = simulate_night(SimConfig("s", T0_MS, seed=5, apnea_per_hour=rate))
        apneas = [(float(e["start_s"]), float(e["end_s"])) for e in night.events if e["kind"] == "apnea"]
        stage_s = np.repeat(night.epochs.stage, 30)
        sleep_h = float((stage_s != SleepStage.WAKE).sum()) / 3600.0
        expected = rate * sleep_h
        assert abs(len(apneas) - expected) < 3.0 * np.sqrt(expected)  # Poisson around the rate, not thinned
        # drawn in seconds of sleep; a few start in an epoch the truth's 30-s hypnogram calls wake
        assert np.mean([stage_s[int(start)] != SleepStage.WAKE for start, _ in apneas]) > 0.97
        gaps = np.array([b[0] - a[1] for a, b in pairwise(apneas)])
        # breathing between any two: 40 s drawn, less up to a breath (a pause starts when a breath ends)
        assert (gaps > 30.0).all()
        in_run = (gaps <= 65.0).mean()
        assert in_run > 0.6  # most apnoeas follow another of their run after 40-60 s of breathing


def test_records_are_valid_aligned_and_ordered() -> None:
    night = sim_night()
    recs = night_records(night, strap_device="strap-1", bed_device="bed-1")
    beds = [r for r in recs if isinstance(r, BedFrame)]
    straps = [r for r in recs if isinstance(r, StrapSample)]
    assert len(beds) == len(night.epochs.t_s)
    assert all(b.event_time_ms % EPOCH_MS == 0 and len(b.samples) == 3000 for b in beds)
    assert len(straps) > 0.95 * night.duration_s
    for r in recs[::500]:
        assert from_wire(to_wire(r)) == r
    rr = np.concatenate([s.rr_ms for s in straps])
    assert abs(len(rr) - (len(night.beat_t_s) - 1)) <= 2  # every beat reaches the strap stream
    assert np.allclose(rr * 1.024, np.round(rr * 1.024))  # 1/1024-s resolution


def test_simulator_is_over_1000x_real_time() -> None:
    t = time.perf_counter()
    night = simulate_night(SimConfig("s", T0_MS, seed=9))
    elapsed = time.perf_counter() - t
    assert night.duration_s / elapsed > 1000


def test_real_rr_series_drives_the_beats() -> None:
    rr = read_rr_ms(require_data("li2024-rr/01_20231104_RR.csv"))
    assert len(rr) > 10_000
    night = simulate_night(SimConfig("s", T0_MS, seed=2, rr_source_ms=rr))
    beat_rr = np.diff(night.beat_t_s) * 1000
    assert beat_rr.min() >= 250 and beat_rr.max() <= 2500
    assert np.isin(np.round(beat_rr[:200], 3), np.round(rr, 3)).mean() > 0.95


def test_the_demo_cohort_is_the_latest_that_has_ended() -> None:
    from datetime import UTC, date, datetime

    from simulator.nights import MAX_NIGHT_MS, cohort, latest_first_night

    def ms(*args: int) -> int:
        return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)

    assert latest_first_night(2, ms(2026, 12, 4, 10, 0)) == date(2026, 12, 2)  # last night is over by 09:30
    assert latest_first_night(2, ms(2026, 12, 4, 8, 0)) == date(2026, 12, 1)  # it may not be yet
    now = ms(2026, 12, 4, 10, 0)
    configs = cohort(3, 2, 7, first_night=latest_first_night(2, now))
    assert all(c.t0_ms + MAX_NIGHT_MS <= now for c in configs)
    # the date moves the nights, never their content
    same = cohort(3, 2, 7)
    assert [c.seed for c in configs] == [c.seed for c in same]
    assert [(c.t0_ms - s.t0_ms) % 86_400_000 for c, s in zip(configs, same, strict=True)] == [0] * 6


def test_tachycardia_episodes_raise_the_true_heart_rate_and_change_nothing_before_the_beats() -> None:
    plain = simulate_night(SimConfig("s", T0_MS, seed=4, apnea_per_hour=3.0))
    tachy = simulate_night(SimConfig("s", T0_MS, seed=4, apnea_per_hour=3.0, tachycardia_per_night=3))
    episodes = [e for e in tachy.events if e["kind"] == "tachycardia"]
    assert 1 <= len(episodes) <= 3
    assert [e for e in tachy.events if e["kind"] != "tachycardia"] == plain.events  # same apnoeas, same bed exit
    assert np.array_equal(tachy.epochs.stage, plain.epochs.stage)
    assert not [e for e in plain.events if e["kind"] == "tachycardia"]
    for e in episodes:
        start, end = float(e["start_s"]), float(e["end_s"])
        assert 60 <= end - start <= 480 and plain.epochs.stage[int(start) // 30] != SleepStage.WAKE
        # the epochs of its second half: 50-75 bpm above the same epochs without it (less the 45-s lag)
        mid, last = int((start + end) / 2) // 30 + 1, int(end) // 30
        if last > mid:
            rise = tachy.epochs.hr_bpm[mid:last] - plain.epochs.hr_bpm[mid:last]
            assert np.all(rise > 25) and np.all(rise < 80), rise
