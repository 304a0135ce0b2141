"""Apnoea detection from RR intervals: the Apnea-ECG reader, the features, the model artefact, the evaluate command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from batch_layer.stage_models import load_apnoea_model, model_resource
from core.errors import DatasetError
from core.nights.apnoea import APNOEA_MODEL, ApnoeaModel, LabelledNight, detect_apnoea, fit_apnoea_model, record_class
from core.signals.apnoea_features import FEATURE_NAMES, minute_features
from sleepstack.cli import main
from sleepstack.datasets.apnea_ecg import load_apnea_ecg
from sleepstack.evaluation.apnea_ecg import figures, labelled, train

APNEA_ECG = Path(__file__).resolve().parents[2] / "shared" / "data" / "apnea-ecg"
needs_data = pytest.mark.skipif(not APNEA_ECG.is_dir(), reason="../shared/data/apnea-ecg not present")

KEYS = {
    "minute_accuracy",
    "minute_sensitivity",
    "minute_specificity",
    "records",
    "ahi_pearson_r",
    "ahi_mae",
    "event1_correct",
    "event1_scored",
    "ahi15_sensitivity",
    "ahi15_specificity",
    "subjects_seen_in_training",
    "per_record",
}
ROW_KEYS = {"record", "ahi_true", "ahi_est", "apnea_min_true", "apnea_min_pred", "class_true", "class_pred"}


def _beats(minutes: int, *, apnoea: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic night: 60 bpm with breathing; ``apnoea`` adds a 60-s heart-rate cycle of ±8 bpm."""
    rng = np.random.default_rng(seed)
    t, out_t, out_rr = 0.0, [], []
    while t < minutes * 60:
        hr = 60 + 3 * np.sin(2 * np.pi * 0.25 * t) + (8 * np.sin(2 * np.pi * t / 60.0) if apnoea else 0.0)
        rr = 60.0 / hr + rng.normal(0, 0.01)
        t += rr
        out_t.append(t)
        out_rr.append(rr * 1000.0)
    return np.asarray(out_t), np.asarray(out_rr)


def _write_folder(root: Path, *, with_class: bool = False, labelled_records: bool = True) -> None:
    (root / "rr").mkdir(parents=True)
    (root / "apnea").mkdir()
    meta = ["record,subject,ahi" + (",class" if with_class else "")]
    for i, (name, ap) in enumerate([("a01", True), ("x02", False), ("c03", False)]):
        t, rr = _beats(30, apnoea=ap, seed=i)
        lines = ["beat_end_s,rr_s,beat_types"] + [f"{a:.2f},{b / 1000:.3f},NN" for a, b in zip(t, rr, strict=True)]
        (root / "rr" / f"{name}.csv").write_text("\n".join(lines) + "\n")
        if labelled_records:
            labels = ["minute,apnea"] + [f"{m},{-1 if m == 0 else int(ap)}" for m in range(30)]
            (root / "apnea" / f"{name}.csv").write_text("\n".join(labels) + "\n")
        meta.append(f"{name},s{i % 2},{40.0 if ap else 1.0}" + (",B" if with_class else ""))
    (root / "meta.csv").write_text("\n".join(meta) + "\n")


def test_reader_on_a_synthetic_folder(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    recs = load_apnea_ecg(tmp_path)
    assert [r.record for r in recs] == ["a01", "x02", "c03"]
    assert [r.subject for r in recs] == ["s0", "s1", "s0"]
    assert [r.record_class for r in recs] == ["A", None, "C"]  # first letter where it is A, B or C
    a = recs[0]
    assert a.n_minutes == 30 and a.labels[0] == -1 and (a.labels[1:] == 1).all() and a.ahi == 40.0
    assert np.all(np.diff(a.beat_t_s) > 0) and 900 < np.median(a.rr_ms) < 1100


def test_class_column_wins_and_labels_may_be_absent(tmp_path: Path) -> None:
    _write_folder(tmp_path, with_class=True, labelled_records=False)
    recs = load_apnea_ecg(tmp_path)
    assert [r.record_class for r in recs] == ["B", "B", "B"]
    assert not recs[0].labelled and (recs[0].labels == -1).all() and recs[0].n_minutes == 30


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda r: (r / "meta.csv").unlink(), "meta.csv: missing file"),
        (lambda r: (r / "meta.csv").write_text("name,subject\na01,s\n"), "expected the columns record"),
        (lambda r: (r / "rr" / "x02.csv").unlink(), "x02.csv: missing file"),
        (lambda r: (r / "rr" / "a01.csv").write_text("beat_end_s,rr_s\n1.0,zero\n"), "column rr_s"),
        (lambda r: (r / "apnea" / "a01.csv").write_text("minute,apnea\n0,2\n"), "must hold 1, 0 or -1"),
        (lambda r: (r / "meta.csv").write_text("record,class\na01,D\n"), "not A, B or C"),
        (lambda r: (r / "meta.csv").write_text("record\n../a01\n"), "is not a record name"),
    ],
)
def test_bad_folders_name_the_file(tmp_path: Path, mangle: object, message: str) -> None:
    _write_folder(tmp_path)
    mangle(tmp_path)  # type: ignore[operator]
    with pytest.raises(DatasetError, match=message):
        load_apnea_ecg(tmp_path)


def test_evaluate_bad_dir_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "apnea-ecg", str(tmp_path / "nowhere"), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sleepstack: error: ") and "no such dataset directory" in err and "\n" not in err


def test_feature_shapes_and_no_holes() -> None:
    t, rr = _beats(40, apnoea=True, seed=0)
    rr[100:140] = 5000.0  # artefacts, removed by clean_rr
    keep = (t < 600) | (t > 900)  # a 5-min gap
    x = minute_features(t[keep], rr[keep], 45)  # 5 minutes past the last beat
    assert x.shape == (45, len(FEATURE_NAMES)) and np.isfinite(x).all()
    assert x[:, FEATURE_NAMES.index("coverage")][12] == 0.0 and x[:, FEATURE_NAMES.index("coverage")][20] > 0.9
    assert minute_features([], [], 10).shape == (10, len(FEATURE_NAMES))
    assert minute_features([1.0, 2.0], [1000.0], 3).shape == (3, len(FEATURE_NAMES))  # mismatched: all missing
    cyclic = minute_features(*_beats(30, apnoea=True, seed=1), 30)
    flat = minute_features(*_beats(30, apnoea=False, seed=1), 30)
    j = FEATURE_NAMES.index("cycle_amp")
    assert np.median(cyclic[:, j]) > np.median(flat[:, j]) + 1.0  # ln(1 + bpm) of the apnoea-band heart rate


def _surges(at_s: np.ndarray, minutes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Beats of 60 bpm with a 12-bpm surge (5-s rise, 6-s decay) at each of ``at_s``."""
    rng = np.random.default_rng(seed)
    t, out_t, out_rr = 0.0, [], []
    while t < minutes * 60:
        after = t - at_s[at_s <= t]
        extra = float(np.sum(12.0 * (after / 5.0) * np.exp(1.0 - after / 5.0) * (after < 60)))
        rr = 60.0 / (60.0 + extra) + rng.normal(0, 0.01)
        t += rr
        out_t.append(t)
        out_rr.append(rr * 1000.0)
    return np.asarray(out_t), np.asarray(out_rr)


def test_regular_heart_rate_cycles_read_as_periodic_and_the_same_surges_at_random_do_not() -> None:
    """The features measure how regularly the heart rate cycles (Hayano 2011), not only how much."""
    minutes = 30
    regular = np.arange(30.0, minutes * 60, 60.0)  # one surge a minute: a run of apnoeas
    scattered = np.sort(np.random.default_rng(3).uniform(0, minutes * 60, len(regular)))
    peak, lag = FEATURE_NAMES.index("acf_peak"), FEATURE_NAMES.index("cycle_s")
    x_regular = minute_features(*_surges(regular, minutes, 0), minutes)[5:-5]
    x_scattered = minute_features(*_surges(scattered, minutes, 0), minutes)[5:-5]
    assert np.median(x_regular[:, peak]) > 0.5 > np.median(x_scattered[:, peak])
    assert np.median(x_regular[:, lag]) == pytest.approx(60.0, abs=3.0)  # the cycle's length, s


def test_record_classes_follow_the_challenge() -> None:
    assert [record_class(m) for m in (0, 4.9, 5, 99, 100, 400)] == ["C", "C", "B", "B", "A", "A"]


def _synthetic_model() -> ApnoeaModel:
    nights = []
    for i in range(6):
        ap = i % 2 == 0
        x = minute_features(*_beats(30, apnoea=ap, seed=i), 30)
        nights.append(LabelledNight(f"s{i}", x, np.full(30, int(ap), np.int8), 40.0 if ap else 1.0))
    return fit_apnoea_model(nights, inner_folds=3)


def test_model_separates_synthetic_cycles_and_round_trips_as_json() -> None:
    model = _synthetic_model()
    night = detect_apnoea(model, *_beats(30, apnoea=True, seed=9), 30)
    assert night.probability.shape == (30,) and night.apnoea.mean() > 0.8
    assert night.ahi_interval[0] <= night.ahi <= night.ahi_interval[1]
    quiet = detect_apnoea(model, *_beats(30, apnoea=False, seed=9), 30)
    assert quiet.apnoea.mean() < 0.2 and quiet.ahi < night.ahi
    again = ApnoeaModel.from_json(model.to_json())
    assert again.to_json() == model.to_json()
    with pytest.raises(ValueError, match="not a sleepstack apnoea model"):
        ApnoeaModel.from_json(json.dumps({"format": "other"}))


def test_figures_score_only_labelled_minutes_and_a_c_records() -> None:
    model = _synthetic_model()
    from sleepstack.evaluation.apnea_ecg import _Scored

    night = model.night(np.r_[np.ones(10), np.zeros(10)])
    labels = np.r_[np.ones(10), np.zeros(5), -np.ones(5)].astype(np.int8)
    fig = figures([_Scored("b01", "s", labels, None, "B", night), _Scored("c01", "t", labels, 0.0, "C", night)])
    assert fig["minute_accuracy"] == 1.0 and fig["event1_scored"] == 1
    assert fig["ahi_pearson_r"] is None and fig["records"] == 2


def test_committed_artefact_loads_through_the_batch_layer() -> None:
    model = load_apnoea_model()
    assert model.name == APNOEA_MODEL and model.w.shape == (len(FEATURE_NAMES),)
    assert model.training["subjects"] and model.ahi_halfwidth > 0


@needs_data
def test_evaluate_json_keys_on_a_real_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Four records (two subjects' apnoea nights, two controls): the keys, and the committed model saw them."""
    for sub in ("rr", "apnea"):
        (tmp_path / sub).mkdir()
    picked = ("a01", "a14", "c01", "c02")
    rows = (APNEA_ECG / "meta.csv").read_text().splitlines()
    (tmp_path / "meta.csv").write_text("\n".join([rows[0], *(r for r in rows if r.split(",")[0] in picked)]) + "\n")
    for name in picked:
        for sub in ("rr", "apnea"):
            shutil.copy(APNEA_ECG / sub / f"{name}.csv", tmp_path / sub / f"{name}.csv")
    assert main(["evaluate", "apnea-ecg", str(tmp_path), "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert set(fig) >= KEYS and fig["records"] == 4 and fig["event1_scored"] == 4
    assert fig["subjects_seen_in_training"] == 3  # a01 and a14 are one person
    assert all(set(r) >= ROW_KEYS for r in fig["per_record"])
    assert 0.5 <= fig["minute_accuracy"] <= 1.0
    assert main(["evaluate", "apnea-ecg", str(tmp_path), "--cv", "2", "--json"]) == 0
    cv = json.loads(capsys.readouterr().out)
    assert set(cv) >= KEYS and cv["subjects_seen_in_training"] == 0 and cv["records"] == 4


@needs_data
@pytest.mark.slow
def test_train_rebuilds_the_committed_artefact_byte_for_byte() -> None:
    """Byte for byte on one machine (single-threaded BLAS, no random start); the committed artefact
    is matched in what it decides on other CPUs."""
    first, second = train(APNEA_ECG), train(APNEA_ECG)
    assert first.to_json() == second.to_json()
    committed = ApnoeaModel.from_json(model_resource(APNOEA_MODEL).read_text())
    assert first.training == committed.training
    nights = labelled(load_apnea_ecg(APNEA_ECG)[:3])
    x = np.vstack([n.features for n in nights])
    assert np.mean((first.predict_proba(x) >= 0.5) == (committed.predict_proba(x) >= 0.5)) >= 0.99
