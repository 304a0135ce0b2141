"""The heart-rate staging model: features, artefact, training, and accuracy on real PSG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from batch_layer.stage_models import load_model, model_resource
from core.errors import DatasetError
from core.nights.agreement import cohen_kappa, confusion, staging_agreement
from core.nights.classifier import DEFAULT_MODEL, StageModel
from core.nights.staging import stage_hr
from core.signals.hr_features import FEATURE_NAMES, hr_epoch_features
from sleepstack.datasets.sleep_accel import epoch_mean_hr, list_subjects, read_night
from sleepstack.evaluation.staging import cross_validate, evaluate, load_corpus, train, training_set

SLEEP_ACCEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "sleep-accel"
needs_data = pytest.mark.skipif(not SLEEP_ACCEL.is_dir(), reason="../shared/data/sleep-accel not present")


def test_kappa_of_known_tables() -> None:
    assert cohen_kappa(confusion([0, 1, 2, 3], [0, 1, 2, 3], 4)) == 1.0
    # Cohen's worked example: po = 0.7, pe = 0.5 -> kappa 0.4
    cm = np.array([[20, 5], [10, 15]])
    assert cohen_kappa(cm) == pytest.approx(0.4)
    fig = staging_agreement([0, 1, 2, 3, 3], [0, 1, 1, 3, 0])
    assert fig["accuracy_4"] == pytest.approx(0.6) and fig["accuracy_2"] == pytest.approx(0.8)
    assert fig["tst_error_min"] == pytest.approx(-0.5)


def test_features_have_no_holes_and_fixed_shape() -> None:
    rng = np.random.default_rng(0)
    hr = 60 + rng.normal(0, 3, 900)
    hr[100:160] = np.nan  # a 30-min dropout
    hr[0] = np.nan
    x = hr_epoch_features(hr)
    assert x.shape == (900, len(FEATURE_NAMES)) and np.isfinite(x).all()
    with pytest.raises(ValueError, match="at least one epoch"):
        hr_epoch_features(np.full(10, np.nan))


def test_artefact_is_plain_json_and_round_trips() -> None:
    text = model_resource().read_text()
    doc = json.loads(text)  # data only: no pickle, nothing executes on load
    assert doc["name"] == DEFAULT_MODEL and tuple(doc["feature_names"]) == FEATURE_NAMES
    model = load_model()
    assert model.to_json() == text
    with pytest.raises(ValueError, match="not a sleepstack stage model"):
        StageModel.from_json(json.dumps({"format": "pickle"}))
    with pytest.raises(KeyError, match="no stage model"):
        load_model("nope")


def test_prediction_is_a_posterior_and_stages_are_valid() -> None:
    rng = np.random.default_rng(1)
    hr = 58 + 4 * np.sin(np.arange(960) / 90) + rng.normal(0, 2, 960)
    model = load_model()
    p = model.predict_proba(hr_epoch_features(hr))
    assert p.shape == (960, 4) and np.allclose(p.sum(axis=1), 1.0)
    stages = stage_hr(hr, model)
    assert stages.dtype == np.int8 and set(np.unique(stages)) <= {0, 1, 2, 3}


@needs_data
def test_reader_accepts_either_delimiter_and_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "heart_rate").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "heart_rate" / "7_heartrate.txt").write_text("-50,70\n0,60\n5,62\n5,64\n31,61\n")
    (tmp_path / "labels" / "7_labeled_sleep.txt").write_text("0 0\n30 2\n")
    night = read_night(tmp_path, "7")
    assert night.stages.tolist() == [0, 1]
    assert np.allclose(epoch_mean_hr(night), [61.5, 61.0])  # repeated t=5 averaged, pre-study sample cropped
    (tmp_path / "labels" / "7_labeled_sleep.txt").write_text("0,9\n")
    with pytest.raises(DatasetError, match="unknown stage codes"):
        read_night(tmp_path, "7")
    (tmp_path / "labels" / "7_labeled_sleep.txt").write_text("0,zero\n")
    with pytest.raises(DatasetError, match="two numeric columns"):
        read_night(tmp_path, "7")
    assert list_subjects(SLEEP_ACCEL)[:2] == ["844359", "1066528"]
    out = subprocess.run(
        [sys.executable, "-m", "sleepstack.cli", "evaluate", "sleep-accel", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "no heart_rate/<id>_heartrate.txt" in out.stderr


@needs_data
def test_evaluate_prints_every_figure() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sleepstack.cli", "evaluate", "sleep-accel", str(SLEEP_ACCEL), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    fig = json.loads(out.stdout)
    for key in ("kappa_4", "kappa_3", "kappa_2", "accuracy_4", "accuracy_3", "accuracy_2", "tst_abs_error_min_median"):
        assert 0 <= fig[key] <= 600, key
    assert fig["subjects"] == 21 and len(fig["per_subject"]) == 21
    assert fig["subjects_seen_in_training"] == 21  # the committed model saw all of them: in-sample figures
    assert fig == evaluate(SLEEP_ACCEL, load_model())


@needs_data
@pytest.mark.slow
def test_train_is_byte_reproducible_and_rebuilds_the_committed_artefact() -> None:
    """Byte for byte on one machine; across CPUs OpenBLAS picks other kernels (SIMD width,
    summation order), so the committed artefact is matched in what it decides: the same
    features and training nights, and the same stage for (nearly) every epoch."""
    first, second = train(SLEEP_ACCEL), train(SLEEP_ACCEL)
    assert first.to_json() == second.to_json()
    committed = StageModel.from_json(model_resource().read_text())
    assert first.feature_names == committed.feature_names
    assert first.training["subjects"] == committed.training["subjects"]
    x = np.concatenate([f for f, _ in training_set(load_corpus(SLEEP_ACCEL))])
    assert np.mean(first.predict(x) == committed.predict(x)) >= 0.99


@needs_data
@pytest.mark.slow
def test_unseen_subjects_are_staged_well_above_chance() -> None:
    """3-fold leave-subjects-out (fewer iterations than the real model): a regression guard.

    The README's figures come from the full leave-one-subject-out run.
    """
    fig = cross_validate(SLEEP_ACCEL, folds=3, max_iter=150)
    assert fig["subjects_seen_in_training"] == 0
    assert fig["kappa_3"] > 0.35 and fig["kappa_4"] > 0.28, fig
    assert fig["tst_abs_error_min_median"] < 40
