"""The apnoea detector in the nightly job: per-epoch probabilities and the night's AHI estimate
(core.nights.nightly), checked against the detector run directly and against simulated
nights whose apnoeas are known; and the heart-rate cycles the simulator's apnoeas leave."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from batch_layer.stage_models import bundled
from core.contract import to_row
from core.contract.epochs import night_of
from core.nights.apnoea import APNOEA_MODEL, detect_apnoea
from core.nights.apnoea_screens import severity
from core.nights.classifier import StageModels
from core.nights.nightly import stage_subject_night, summarize_night
from core.signals.hrv import notification_beats
from simulator.nights import FIRST_NIGHT_T0_MS, SimConfig, night_records, simulate_night


@cache
def _night(apnea_per_hour: float, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = simulate_night(SimConfig("s1", FIRST_NIGHT_T0_MS, seed, apnea_per_hour=apnea_per_hour))
    raw = pd.DataFrame([to_row(r) for r in night_records(sim, strap_device="strap-1", bed_device="bed-1")])
    raw["night"] = night_of(sim.t0_ms)
    epochs = stage_subject_night(raw, models=bundled())
    return epochs, summarize_night(epochs, bundled())


def test_the_nights_ahi_is_the_detector_run_on_the_nights_beats() -> None:
    """The curated figures are the model's own output on the same beats (nothing lost on the way)."""
    epochs, summary = _night(30.0)
    row = summary.iloc[0]
    sim = simulate_night(SimConfig("s1", FIRST_NIGHT_T0_MS, 1, apnea_per_hour=30.0))
    strap = [r for r in night_records(sim, strap_device="strap-1", bed_device=None)]
    t_ms, rr = notification_beats(np.array([r.event_time_ms for r in strap], float), [list(r.rr_ms) for r in strap])
    t0 = int(epochs["epoch_start_ms"].iloc[0])
    model = bundled().apnoea
    assert model is not None
    direct = detect_apnoea(model, (t_ms - t0) / 1000.0, rr, -(-len(epochs) // 2))
    prob = epochs["apnoea_prob"].to_numpy()
    scored = np.isfinite(prob)
    assert scored.mean() > 0.9
    np.testing.assert_allclose(prob[scored], np.repeat(direct.probability, 2)[: len(epochs)][scored])
    assert row["apnoea_model"] == APNOEA_MODEL and row["ahi_severity"] == severity(row["ahi_est"])
    assert row["ahi_lo"] <= row["ahi_est"] <= row["ahi_hi"]
    assert row["apnoea_hours"] == pytest.approx(row["in_bed_hours"], abs=0.5)


def test_more_apnoeas_give_a_higher_estimate_and_none_without_a_detector() -> None:
    calm, severe = _night(0.0)[1].iloc[0], _night(45.0)[1].iloc[0]
    # measured 0.0 (C) and 64.6 /h (A, interval 34-95 /h) for the bed's 45.2 pauses per hour
    assert calm["ahi_est"] < 5.0 and calm["ahi_severity"] == "normal" and calm["apnoea_class"] == "C"
    assert severe["apnoea_class"] == "A" and severe["ahi_lo"] <= severe["pauses_per_hour"] <= severe["ahi_hi"]
    assert severe["ahi_severity"] == "severe"
    models = bundled()
    bare = StageModels(hr=models.hr, rr=models.rr)
    epochs = stage_subject_night(_night(0.0)[0].head(0), models=bare)  # no rows: no columns filled
    assert epochs.empty
    e, _ = _night(45.0)
    row = summarize_night(e, bare).iloc[0]
    assert row["ahi_est"] is None and row["apnoea_model"] is None


def test_the_simulators_apnoeas_leave_heart_rate_cycles() -> None:
    """Guilleminault 1984: heart rate slows during the pause and surges after it."""
    sim = simulate_night(SimConfig("s1", FIRST_NIGHT_T0_MS, 3, apnea_per_hour=30.0))
    beats = np.asarray(sim.beat_t_s)
    hr_t, hr = beats[1:], 60.0 / np.diff(beats)
    rises = []
    for ev in (e for e in sim.events if e["kind"] == "apnea"):
        end = float(ev["end_s"])
        during = hr[(hr_t >= end - 5) & (hr_t < end)]
        surge = hr[(hr_t >= end + 3) & (hr_t < end + 8)]
        if len(during) and len(surge):
            rises.append(surge.mean() - during.mean())
    assert len(rises) > 50 and np.median(rises) > 6.0
    quiet = simulate_night(SimConfig("s1", FIRST_NIGHT_T0_MS, 3, apnea_per_hour=0.0))
    assert not [e for e in quiet.events if e["kind"] == "apnea"]
