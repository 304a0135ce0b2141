"""The nightly job's staging from a strap's beat-to-beat intervals, and its bad RR input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batch_layer.stage_models import bundled
from core.contract import StrapSample, to_row
from core.contract.epochs import EPOCH_MS, night_of
from core.nights.classifier import DEFAULT_MODEL, RR_MODEL
from core.nights.nightly import stage_subject_night, summarize_night
from core.nights.staging import MIN_RR_EPOCHS
from core.signals.hrv import notification_beats
from simulator.nights import FIRST_NIGHT_T0_MS
from tests.conftest import DATA

SLPDB = DATA / "slpdb-rr"
T0 = FIRST_NIGHT_T0_MS


def _strap_rows(beat_end_s: np.ndarray, rr_ms: np.ndarray, t0_ms: int = T0) -> pd.DataFrame:
    """Heart Rate Measurement notifications once a second, each with the intervals that ended in it."""
    end_ms = t0_ms + np.round(np.asarray(beat_end_s) * 1000).astype(np.int64)
    second = (end_ms - t0_ms) // 1000
    rows = []
    for s in np.unique(second):
        rr = np.asarray(rr_ms)[second == s]
        t_ms = int(t0_ms + (s + 1) * 1000)
        hr = int(np.clip(round(60000 / np.mean(rr)), 0, 250)) if np.all(rr > 0) else 0
        rec = StrapSample("strap-1", "subject-1", t_ms, t_ms, t_ms + 200, hr, tuple(map(float, rr)), True, None)
        rows.append(to_row(rec))
    df = pd.DataFrame(rows)
    df["night"] = night_of(t0_ms)
    return df


def _steady_beats(hours: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A night of beats: 60 bpm with breathing and slow variation, in hours."""
    n = int(hours * 3600)
    k = np.arange(n)
    rr = 1000 + 40 * np.sin(2 * np.pi * k / 4.0) + 60 * np.sin(2 * np.pi * k / 900.0) + rng.normal(0, 15, n)
    return np.cumsum(rr) / 1000.0, rr


def test_notification_beats_end_at_the_notification_oldest_first() -> None:
    t, rr = notification_beats([10_000, 11_000, 12_000], [[400.0, 600.0], None, np.array([1000.0])])
    assert t.tolist() == [9_400.0, 10_000.0, 12_000.0] and rr.tolist() == [400.0, 600.0, 1000.0]
    t, rr = notification_beats([], [])
    assert len(t) == len(rr) == 0


def test_a_strap_night_with_rr_is_staged_by_the_rr_model_when_asked(rng: np.random.Generator) -> None:
    rows = _strap_rows(*_steady_beats(4.5, rng))
    by_default = summarize_night(stage_subject_night(rows, models=bundled())).iloc[0]
    assert by_default["method"] == DEFAULT_MODEL and by_default["rr_coverage_pct"] > 95
    epochs = stage_subject_night(rows, rr_staging=True, models=bundled())
    assert set(epochs["method"]) == {RR_MODEL} and epochs["rr_window"].mean() > 0.95
    night = summarize_night(epochs).iloc[0]
    assert night["method"] == RR_MODEL and night["rr_coverage_pct"] > 95 and night["status"] == "staged"
    assert 0 <= night["cvhr_per_hour"] < 5  # steady heart rate: no apnoea cycles
    # the same night without its intervals: heart rate alone, by the heart-rate model
    rows = _strap_rows(*_steady_beats(4.5, rng))
    rows["rr_ms"] = [[] for _ in range(len(rows))]
    hr_only = summarize_night(stage_subject_night(rows, rr_staging=True, models=bundled())).iloc[0]
    assert hr_only["method"] == DEFAULT_MODEL and hr_only["rr_coverage_pct"] == 0
    assert pd.isna(hr_only["cvhr_per_hour"])  # no RR, no screening index


def _bad(kind: str, rng: np.random.Generator) -> pd.DataFrame:
    t, rr = _steady_beats(4.5, rng)
    if kind == "short":  # 45 min
        return _strap_rows(t[t < 2700], rr[t < 2700])
    if kind == "gap":  # the strap off for 40 min: no notifications at all
        keep = (t < 3600) | (t > 6000)
        return _strap_rows(t[keep], rr[keep])
    if kind == "ectopic_runs":  # runs of premature and compensatory beats, 10 min of every 30
        run = (t % 1800) < 600
        rr = rr.copy()
        rr[run & (np.arange(len(rr)) % 2 == 0)] *= 0.6
        rr[run & (np.arange(len(rr)) % 2 == 1)] *= 1.4
        return _strap_rows(t, rr)
    rows = _strap_rows(t, rr)
    if kind == "zeros":  # intervals of 0 ms and absurd values inside otherwise good lists
        rows["rr_ms"] = [
            [0.0, *r] if i % 3 == 0 else [*r, 60_000.0] if i % 7 == 0 else r for i, r in enumerate(rows["rr_ms"])
        ]
        return rows
    if kind == "out_of_order":  # notifications arrive shuffled, some intervals reversed in their list
        rows["rr_ms"] = [list(r)[::-1] for r in rows["rr_ms"]]
        return rows.sample(frac=1.0, random_state=1)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["short", "gap", "ectopic_runs", "zeros", "out_of_order"])
def test_bad_rr_has_a_defined_outcome(kind: str, rng: np.random.Generator) -> None:
    epochs = stage_subject_night(_bad(kind, rng), models=bundled(), rr_staging=True)
    night = summarize_night(epochs).iloc[0]
    assert set(epochs["stage"].dropna().astype(int)) <= {0, 1, 2, 3}
    assert night["method"] in (DEFAULT_MODEL, RR_MODEL) and 0 <= night["rr_coverage_pct"] <= 100
    with_rr = epochs["rr_window"].astype(bool)
    if kind == "short":
        assert night["status"] == "insufficient" and "under 4 h" in night["status_reason"]
        assert night["method"] == DEFAULT_MODEL  # 45 min < MIN_RR_EPOCHS of HRV: the heart-rate model
        assert with_rr.sum() < MIN_RR_EPOCHS and pd.isna(night["cvhr_per_hour"])
    elif kind == "gap":
        assert night["method"] == RR_MODEL and night["status"] == "staged"
        gap = (epochs["epoch_start_ms"] > T0 + 3_800_000) & (epochs["epoch_start_ms"] < T0 + 5_800_000)
        assert epochs.loc[gap, "stage"].isna().all() and not with_rr[gap].any()  # unscored, no HRV
        assert 70 < night["rr_coverage_pct"] < 100
    elif kind == "ectopic_runs":
        # the runs are removed by cleaning: their windows have fewer clean beats, the rest keep HRV
        assert night["method"] == RR_MODEL and 40 < night["rr_coverage_pct"] < 100
    else:
        assert night["method"] == RR_MODEL and night["rr_coverage_pct"] > 95


@pytest.mark.skipif(not (SLPDB / "meta.csv").exists(), reason="shared slpdb-rr data not present")
def test_the_nightly_path_stages_a_real_record_as_the_evaluation_does() -> None:
    """An slpdb record sent as strap notifications: the nightly job rebuilds its beats from them and
    stages (nearly) every epoch as ``evaluate slpdb --source rr`` does from the record's beats."""
    from sleepstack.datasets.slpdb import read_record
    from sleepstack.evaluation.staging import slpdb_features

    rec = read_record(SLPDB, "slp04", "slp04")
    rows = _strap_rows(rec.beat_t_s, rec.rr_ms)
    epochs = stage_subject_night(rows, rr_staging=True, models=bundled())
    assert set(epochs["method"]) == {RR_MODEL}
    ours = epochs.set_index((epochs["epoch_start_ms"] - T0) // EPOCH_MS)["stage"]
    theirs = pd.Series(bundled().rr.predict(slpdb_features(rec, "rr")), index=np.arange(len(rec.stages)))
    both = ours.dropna().index.intersection(theirs.index)
    assert len(both) > 0.9 * len(theirs)
    assert (ours[both].astype(int) == theirs[both]).mean() > 0.85
    # slp04's scorers marked 73 respiratory events per hour of sleep: the screening index says severe
    assert summarize_night(epochs).iloc[0]["cvhr_per_hour"] > 30
