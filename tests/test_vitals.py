from __future__ import annotations

import json

import numpy as np
import pytest

from core.contract import BedFrame
from core.signals.bcg import BedSensorProfile, breathing_rate_per_min, heart_rate_bpm, presence
from core.signals.hrv import clean_rr, hrv_summary
from core.signals.vitals import BedRun, bed_epoch_vitals, bed_runs_vitals, doc_id, strap_epoch_vitals
from simulator.nights import BED_NOISE_COUNTS, night_records
from simulator.vitals_accuracy import bed_vitals_accuracy
from tests.conftest import require_data, sim_night


@pytest.mark.parametrize("seed", [1, 2])
def test_bed_vitals_accuracy_against_simulator_truth(seed: int) -> None:
    acc = bed_vitals_accuracy(sim_night(seed=seed))
    assert acc["hr_coverage"] > 0.9
    assert acc["hr_mae_bpm"] <= 2.0
    assert acc["br_mae_per_min"] <= 1.0
    assert acc["presence_accuracy"] >= 0.99


@pytest.mark.slow
def test_evaluate_vitals_on_a_real_overnight_rr_series(capsys: pytest.CaptureFixture[str]) -> None:
    """Bed signal synthesised from a real night's RR (li2024): HR MAE within 3 bpm."""
    from sleepstack.cli import main

    path = require_data("li2024-rr/01_20231105_RR.csv")
    assert main(["evaluate", "vitals", "--rr", str(path), "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hr_mae_bpm"] <= 3.0
    assert out["br_mae_per_min"] <= 1.0
    assert out["presence_accuracy"] >= 0.99


def test_epochs_computed_together_equal_epochs_computed_alone() -> None:
    """Stacking frames of many devices (a Lambda batch, a night) changes no number."""
    frames = [
        r for r in night_records(sim_night(seed=4), strap_device=None, bed_device="bed") if isinstance(r, BedFrame)
    ]
    frames = frames[200:260]  # asleep, breathing pauses and movement included
    runs = [
        BedRun(f.samples, f.fs_hz, f.event_time_ms, f.subject_id, f"bed-{k % 3}", f.record_id)
        for k, f in enumerate(frames)
    ]
    together = bed_runs_vitals(runs)
    alone = [
        bed_epoch_vitals(
            r.samples, r.fs_hz, r.t0_ms, subject_id=r.subject_id, device_id=r.device_id, record_id=r.record_id
        )
        for r in runs
    ]
    assert together == alone
    assert any(d["hr_bpm"] for docs in together for d in docs)


def test_empty_bed_yields_no_vitals(rng: np.random.Generator) -> None:
    noise = rng.normal(0, BED_NOISE_COUNTS, 3000).astype(np.int16)
    (doc,) = bed_epoch_vitals(noise, 100.0, 1_767_651_000_000, subject_id="s", device_id="b")
    assert doc["presence"] is False and doc["hr_bpm"] is None and doc["br_per_min"] is None


def test_only_complete_aligned_epochs_are_computed(rng: np.random.Generator) -> None:
    x = rng.normal(0, 100, 9000).astype(np.int16)
    docs = bed_epoch_vitals(x, 100.0, 1_767_651_010_000, subject_id="s", device_id="b")  # 10 s after a boundary
    assert [d["epoch_start_ms"] for d in docs] == [1_767_651_030_000, 1_767_651_060_000]
    assert docs[0]["doc_id"] == doc_id("bed", "b", 1_767_651_030_000)


def test_real_bcg_smoke() -> None:
    """BioSPPy's 15 s of real BCG at 1000 Hz: a plausible resting heart rate comes out."""
    x = np.loadtxt(require_data("bcg-biosppy/bcg.txt"))
    x = x - x.mean()
    hr = heart_rate_bpm(x[:10_000], 1000.0)
    assert 45 <= hr <= 100
    assert presence(x, 1000.0, BedSensorProfile(noise_floor_counts=1.0))


def test_breathing_rate_of_a_clean_sinusoid() -> None:
    t = np.arange(0, 30, 0.01)
    x = 800 * np.sin(2 * np.pi * (14 / 60) * t)
    assert abs(breathing_rate_per_min(x, 100.0) - 14) < 0.5


def test_hrv_on_real_nn_series() -> None:
    """pyhrv's 60-min NN series (MIT-BIH NSR): clean data keeps its RMSSD and SDNN."""
    nn = np.load(require_data("pyhrv-nni/SampleNNISeriesLong.npy")).astype(float)
    s = hrv_summary(nn)
    kept = nn[clean_rr(nn)]
    assert s.artefact_fraction < 0.05
    assert abs(s.sdnn_ms - kept.std(ddof=1)) < 1e-9
    assert 20 < s.rmssd_ms < 150 and 40 < s.hr_bpm < 100


def test_rr_cleaning_rejects_artefacts_from_real_overnight_rr() -> None:
    from sleepstack.datasets.rr_files import read_rr_ms

    rr = read_rr_ms(require_data("li2024-rr/01_20231105_RR.csv"))
    keep = clean_rr(rr)
    assert not keep[(rr > 2000) | (rr < 300)].any()
    assert keep.mean() > 0.8
    s = hrv_summary(rr)
    assert 35 < s.hr_bpm < 100


def test_strap_epoch_vitals_handles_empty_and_ectopic() -> None:
    empty = strap_epoch_vitals([], 0, subject_id="s", device_id="d")
    assert empty["hr_bpm"] is None and empty["n_rr"] == 0
    rr = [1000.0] * 10 + [500.0] + [1000.0] * 10  # one premature beat
    d = strap_epoch_vitals(rr, 0, subject_id="s", device_id="d")
    assert d["hr_bpm"] == 60.0 and d["artefact_fraction"] > 0
