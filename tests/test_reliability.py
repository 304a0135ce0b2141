"""'Staging unreliable': nights unlike those the stager learnt from (core.nights.reliability)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from batch_layer.stage_models import bundled
from core.contract import to_row
from core.contract.epochs import night_of
from core.nights.nightly import stage_subject_night, summarize_night
from core.nights.reliability import MIN_HR_SD_BPM, unreliable_reason
from simulator.nights import FIRST_NIGHT_T0_MS, SimConfig, night_records, simulate_night

SLEEP_ACCEL = Path("..") / "shared" / "data" / "sleep-accel"


@cache
def _raw() -> pd.DataFrame:
    sim = simulate_night(SimConfig("s1", FIRST_NIGHT_T0_MS, 3, apnea_per_hour=5.0))
    raw = pd.DataFrame([to_row(r) for r in night_records(sim, strap_device="strap-1", bed_device=None)])
    raw["night"] = night_of(sim.t0_ms)
    return raw


def _summary(raw: pd.DataFrame) -> pd.Series:
    return summarize_night(stage_subject_night(raw, models=bundled()), bundled()).iloc[0]


def test_a_simulated_sinus_rhythm_night_is_reliable() -> None:
    row = _summary(_raw())
    assert row["staging_reliable"] is True or row["staging_reliable"] == True  # noqa: E712 - numpy bool
    assert row["staging_unreliable_reason"] is None


def test_a_flat_heart_rate_is_flagged() -> None:
    raw = _raw().copy()
    raw["rr_ms"] = [None if r is None else [1000.0] * len(r) for r in raw["rr_ms"]]  # paced at 60/min
    raw["hr_bpm"] = 60
    row = _summary(raw)
    assert row["staging_reliable"] == False and "heart rate flat (SD 0.0" in row["staging_unreliable_reason"]  # noqa: E712


def test_rr_as_irregular_as_atrial_fibrillation_is_flagged() -> None:
    rng = np.random.default_rng(5)
    raw = _raw().copy()
    raw["rr_ms"] = [None if r is None else list(rng.uniform(450.0, 1100.0, len(r))) for r in raw["rr_ms"]]
    row = _summary(raw)
    assert row["staging_reliable"] == False and "as in atrial fibrillation" in row["staging_unreliable_reason"]  # noqa: E712


def test_too_little_heart_rate_is_flagged_before_anything_else() -> None:
    assert unreliable_reason([60.0] * 200, [1.0] * 200, 40.0).startswith("heart rate in 40 % of the night")
    assert unreliable_reason(np.r_[[60.0] * 200, [np.nan] * 50], [np.nan] * 250, 90.0).startswith("heart rate flat")
    assert unreliable_reason(np.linspace(50, 70, 200), [0.0] * 200, 90.0) is None


@pytest.mark.skipif(not SLEEP_ACCEL.exists(), reason="../shared/data/sleep-accel not present")
def test_the_flat_threshold_is_well_below_every_training_night() -> None:
    from sleepstack.datasets.sleep_accel import epoch_mean_hr
    from sleepstack.evaluation.staging import load_corpus

    sds = []
    for n in load_corpus(SLEEP_ACCEL):
        hr = np.asarray(epoch_mean_hr(n), dtype=float)
        sds.append(float(np.nanstd(hr[n.stages >= 0])))
    assert len(sds) == 21 and round(min(sds), 1) == 3.6 and round(max(sds), 1) == 12.4  # as the docstring says
    assert 0.6 * min(sds) >= MIN_HR_SD_BPM
