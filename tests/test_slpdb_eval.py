"""``evaluate slpdb``: the slpdb-rr reader, and staging scored from heart rate grouped by subject."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from batch_layer.stage_models import load_model
from core.errors import DatasetError, InputError
from sleepstack.cli import main
from sleepstack.datasets.slpdb import SubjectInfo, epoch_mean_hr, list_records, read_record
from sleepstack.evaluation.anchor import anchor_predictions, sleepecg_stager
from sleepstack.evaluation.staging import anchor_slpdb, cross_validate_slpdb, evaluate_slpdb
from tests.conftest import DATA

SLPDB = DATA / "slpdb-rr"
needs_data = pytest.mark.skipif(not (SLPDB / "meta.csv").exists(), reason="shared slpdb-rr data not present")


def _write_record(root: Path, record: str, subject: str, rng: np.random.Generator, epochs: int = 160) -> None:
    """A record in the slpdb-rr layout: R&K stages cycling W, S2, S3, REM every 10 min, each with
    its heart rate (80, 60, 55, 68 bpm), one ectopic pair."""
    stages = np.array([0, 2, 3, 5])[(np.arange(epochs) // 20) % 4]
    rr_s = {0: 0.75, 2: 1.0, 3: 60 / 55, 5: 60 / 68}
    rows, t = ["beat_end_s,rr_s,beat_types"], 0.0
    for e in range(epochs):
        while t < (e + 1) * 30.0:
            rr = rr_s[int(stages[e])] + rng.normal(0, 0.02)
            t += rr
            rows.append(f"{t:.3f},{rr:.3f},{'NV' if len(rows) == 50 else 'NN'}")
    (root / "rr").mkdir(parents=True, exist_ok=True)
    (root / "stages").mkdir(parents=True, exist_ok=True)
    (root / "rr" / f"{record}.csv").write_text("\n".join(rows) + "\n")
    lines = ["t_s,stage,events", *(f"{30 * e},{s},{'OA' if e % 7 == 0 else ''}" for e, s in enumerate(stages))]
    (root / "stages" / f"{record}.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    meta = ["record,subject,start_clock,age_y,sex,weight_kg"]
    for record, subject in (("r1a", "p1"), ("r1b", "p1"), ("r2", "p2"), ("r3", "p3")):
        _write_record(tmp_path, record, subject, rng)
        meta.append(f"{record},{subject},23:00:00,50,M,90")
    (tmp_path / "meta.csv").write_text("\n".join(meta) + "\n")
    return tmp_path


def test_the_reader_maps_stages_and_keeps_only_normal_beats_for_heart_rate(corpus: Path) -> None:
    assert list_records(corpus) == [("r1a", "p1"), ("r1b", "p1"), ("r2", "p2"), ("r3", "p3")]
    rec = read_record(corpus, "r2", "p2")
    assert len(rec.stages) == 160 and set(rec.stages.tolist()) == {0, 1, 2, 3}  # W, S2 light, S3 deep, REM
    assert not rec.normal.all() and rec.events[0] == "OA"
    hr = epoch_mean_hr(rec)
    assert np.nanmean(hr[rec.stages == 0]) == pytest.approx(80, abs=3)
    assert np.nanmean(hr[rec.stages == 1]) == pytest.approx(60, abs=2)
    assert np.nanmean(hr[rec.stages == 2]) == pytest.approx(55, abs=2)


def test_cross_validation_groups_records_by_subject(corpus: Path) -> None:
    fig = cross_validate_slpdb(corpus, folds=0, max_iter=60)
    assert fig["mode"] == "leave-subjects-out, 3 folds, grouped by subject"
    assert fig["subjects"] == 3 and [s["subject"] for s in fig["per_subject"]] == ["p1", "p2", "p3"]
    assert fig["per_subject"][0]["epochs"] == 320  # both records of p1, scored together
    assert fig["kappa_2"] > 0.5  # heart rate separates this corpus's wake and sleep


def test_bad_folders_are_typed_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DatasetError, match=r"meta\.csv"):
        evaluate_slpdb(tmp_path, load_model())
    assert main(["evaluate", "slpdb", str(tmp_path), "--json"]) == 2
    assert "missing file" in capsys.readouterr().err
    (tmp_path / "meta.csv").write_text("record,subject\nx,y\n")
    (tmp_path / "rr").mkdir()
    (tmp_path / "stages").mkdir()
    (tmp_path / "rr" / "x.csv").write_text("beat_end_s,rr_s,beat_types\n1.0,abc,NN\n")
    (tmp_path / "stages" / "x.csv").write_text("t_s,stage,events\n0,9,\n")
    assert main(["evaluate", "slpdb", str(tmp_path)]) == 2
    assert "not a number" in capsys.readouterr().err


@needs_data
def test_the_committed_model_on_slpdb_from_heart_rate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "slpdb", str(SLPDB), "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert fig["subjects"] == 11 and fig["subjects_seen_in_training"] == 0 and fig["source"] == "hr"
    for key in ("kappa_4", "kappa_3", "kappa_2", "accuracy_4", "accuracy_3", "accuracy_2", "tst_abs_error_min_median"):
        assert key in fig
    assert 0.05 < fig["kappa_4"] < 0.3  # near chance on this population (README); a regression shows here


ACCEL = DATA / "sleep-accel"


@needs_data
@pytest.mark.slow
def test_train_rebuilds_the_committed_rr_model() -> None:
    """As for hr-mlp-v1: byte for byte on one machine, the same decisions on (nearly) every epoch elsewhere."""
    from batch_layer.stage_models import model_resource
    from core.nights.classifier import RR_MODEL, StageModel
    from sleepstack.evaluation.staging import load_slpdb, slpdb_features, train_rr

    first, second = train_rr(SLPDB, ACCEL), train_rr(SLPDB, ACCEL)
    assert first.to_json() == second.to_json()
    committed = StageModel.from_json(model_resource(RR_MODEL).read_text())
    assert (
        first.feature_names == committed.feature_names and first.training["subjects"] == committed.training["subjects"]
    )
    assert len(committed.training["subjects"]) == 32  # 11 slpdb-rr and 21 sleep-accel subjects
    x = np.concatenate([slpdb_features(r, "rr") for r in load_slpdb(SLPDB)])
    assert np.mean(first.predict(x) == committed.predict(x)) >= 0.99


@needs_data
def test_the_rr_model_reads_hrv_and_says_it_saw_these_subjects(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "slpdb", str(SLPDB), "--source", "rr", "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert fig["model"] == "rr-mlp-v3" and fig["source"] == "rr"
    assert fig["subjects_seen_in_training"] == 11  # in-sample: not an accuracy figure (README: --cv 0)
    assert main(["evaluate", "sleep-accel", str(SLPDB), "--source", "rr"]) == 2  # slpdb's flag only
    assert "--source" in capsys.readouterr().err


def _write_accel_night(root: Path, subject: str, rng: np.random.Generator, epochs: int = 160) -> None:
    """A sleep-accel night with the same stage cycle and heart rates as :func:`_write_record`, HR every 5 s."""
    stages = np.array([0, 2, 3, 5])[(np.arange(epochs) // 20) % 4]
    bpm = {0: 80.0, 2: 60.0, 3: 55.0, 5: 68.0}
    (root / "heart_rate").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    hr = [f"{t},{bpm[int(stages[t // 30])] + rng.normal(0, 1.5):.1f}" for t in range(0, 30 * epochs, 5)]
    (root / "heart_rate" / f"{subject}_heartrate.txt").write_text("\n".join(hr) + "\n")
    labels = [f"{30 * e},{s}" for e, s in enumerate(stages)]
    (root / "labels" / f"{subject}_labeled_sleep.txt").write_text("\n".join(labels) + "\n")


@pytest.fixture
def accel(tmp_path: Path) -> Path:
    rng = np.random.default_rng(4)
    root = tmp_path / "sleep-accel"
    for subject in ("a1", "a2"):
        _write_accel_night(root, subject, rng)
    return root


@pytest.mark.parametrize("source", ["hr", "rr"])
def test_pooled_cross_validation_holds_out_subjects_of_both_corpora(corpus: Path, accel: Path, source: str) -> None:
    fig = cross_validate_slpdb(corpus, source=source, folds=0, max_iter=60, also_train_on=accel)
    assert fig["mode"] == "leave-subjects-out, 5 folds, grouped by subject over both corpora"
    assert fig["subjects"] == 3 and fig["sleep_accel"]["subjects"] == 2 and fig["pooled"]["subjects"] == 5
    assert fig["pooled"]["epochs"] == fig["epochs"] + fig["sleep_accel"]["epochs"]
    assert [s["subject"] for s in fig["pooled"]["per_subject"]] == ["p1", "p2", "p3", "a1", "a2"]
    # the RR model stages slpdb a second time with RR withheld, as a night without RR is staged
    assert ("slpdb_without_rr" in fig) == (source == "rr")
    for block in (fig, fig["sleep_accel"], *([fig["slpdb_without_rr"]] if source == "rr" else [])):
        assert block["kappa_2"] > 0.5  # heart rate alone separates this corpus's wake and sleep


def test_rr_model_trains_on_both_corpora_and_stages_without_rr(corpus: Path, accel: Path) -> None:
    from core.nights.staging import stage_hr
    from sleepstack.datasets.sleep_accel import epoch_mean_hr as accel_hr
    from sleepstack.datasets.sleep_accel import read_night
    from sleepstack.evaluation.staging import train_rr

    model = train_rr(corpus, accel, max_iter=60)
    assert model.training["subjects"] == ["a1", "a2", "p1", "p2", "p3"]
    night = read_night(accel, "a1")
    assert np.mean(stage_hr(accel_hr(night), model) == night.stages) > 0.5  # the "no RR" input


def test_pooling_needs_cross_validation_and_slpdb(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "slpdb", str(corpus), "--also-train-on", str(corpus)]) == 2
    assert "--cv" in capsys.readouterr().err
    assert main(["evaluate", "sleep-accel", str(corpus), "--cv", "0", "--also-train-on", str(corpus)]) == 2
    assert "--also-train-on" in capsys.readouterr().err  # slpdb's flag only
    assert main(["train", "--sleep-accel", str(corpus)]) == 2
    assert "rr-mlp-v3" in capsys.readouterr().err


# --------------------------------------------------------------------------- the SleepECG anchor

_TO_SLEEPECG = {0: 3, 1: 1, 2: 1, 3: 2}  # our wake/light/deep/REM -> SleepECG's wake-rem-nrem labels


def test_the_anchor_is_scored_like_our_models_on_three_classes(corpus: Path) -> None:
    calls: list[tuple[float, int, SubjectInfo]] = []

    def oracle(beats_s: np.ndarray, epochs: int, info: SubjectInfo) -> np.ndarray:
        calls.append((float(beats_s[0]), epochs, info))
        rec = next(r for r in records if len(r.epoch_t_s) == epochs and abs(r.beat_t_s[0] - beats_s[1]) < 1e-9)
        return np.array([_TO_SLEEPECG[int(s)] for s in rec.stages])

    records = [read_record(corpus, r, s) for r, s in list_records(corpus)]
    figures = anchor_slpdb(corpus, oracle)
    assert figures["kappa_3"] == figures["kappa_2"] == 1.0
    assert figures["kappa_4"] is None and figures["confusion_4"] is None
    assert all(row["kappa_4"] is None for row in figures["per_subject"])
    assert figures["subjects"] == 3 and figures["subjects_seen_in_training"] == 0
    assert {c[2] for c in calls} == {SubjectInfo("23:00:00", 50, "M")}
    assert all(0 <= c[0] < 2 for c in calls)  # the first beat's start, one interval before its end


def test_epochs_the_anchor_leaves_undefined_or_short_count_as_wake(corpus: Path) -> None:
    def lazy(beats_s: np.ndarray, epochs: int, info: SubjectInfo) -> np.ndarray:
        out = np.ones(epochs - 10, dtype=int)  # NREM throughout, ten epochs short
        out[:5] = 0
        return out

    figures = anchor_slpdb(corpus, lazy)
    # p1 has two records of 160 epochs: 5 undefined and 10 missing epochs each are wake
    assert figures["per_subject"][0]["tst_pred_min"] == pytest.approx(2 * (160 - 15) * 0.5)


def test_anchor_input_errors_are_typed(
    corpus: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["evaluate", "slpdb", str(corpus), "--anchor", "sleepecg", "--cv", "2"]) == 2
    assert "--anchor" in capsys.readouterr().err
    assert main(["evaluate", "sleep-accel", str(corpus), "--anchor", "sleepecg"]) == 2
    assert "--anchor" in capsys.readouterr().err
    (corpus / "meta.csv").write_text("record,subject,start_clock,age_y,sex,weight_kg\nr1a,p1,23:00:00,50,M,90\n")
    with pytest.raises(InputError, match="no age and sex"):
        anchor_predictions(corpus, [read_record(corpus, "r2", "p2")], lambda *_: np.zeros(0))
    monkeypatch.setitem(sys.modules, "sleepecg.classification", None)  # the extra is not installed
    with pytest.raises(InputError, match="anchors extra"):
        sleepecg_stager()
