"""Train and evaluate the staging model on PSG-labelled nights: sleep-accel, and slpdb-rr.

The slpdb-rr records (:mod:`sleepstack.datasets.slpdb`, men with sleep apnoea) are scored
from heart rate (the NN beats of each epoch), or from heart rate and HRV, by a fixed model
or cross-validated grouped by subject, on slpdb alone or with sleep-accel's subjects in
the folds (``evaluate_slpdb``, ``cross_validate_slpdb``). ``train_rr`` fits the committed
RR model on both corpora.

``train`` fits :func:`core.nights.classifier.fit_stage_model` on every night of the corpus.
``evaluate`` stages each night with a model through :func:`core.nights.staging.stage_hr` (the
function the nightly job uses) and pools epochs over nights. ``cross_validate`` does the
same out of fold: subjects are split into ``folds`` groups (leave-subjects-out), a model
is trained without each group and stages only that group's nights, so every figure is
on nights the scoring model never saw.

Training runs with single-threaded BLAS (threadpoolctl): with several threads the
floating-point sums, and therefore L-BFGS's path, depend on the thread count, so the
artefact would differ from machine to machine. With one thread ``sleepstack train``
rebuilds the committed artefact byte for byte (for the same numpy/BLAS build).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from batch_layer.stage_models import bundled
from core.errors import DatasetError
from core.nights.agreement import confusion, staging_agreement
from core.nights.calibration import expected_calibration_error, fit_temperature, mean_nll, scaled
from core.nights.classifier import DEFAULT_MODEL, FEATURE_SETS, MEMBERS, RR_MODEL, StageModel, fit_stage_model
from core.nights.intervals import metric_intervals
from core.nights.stages import SleepStage
from core.nights.staging import Beats, stage_hr, staging_features
from core.signals.hr_features import hr_epoch_features
from simulator.nights import SimulatedNight
from sleepstack.datasets.sleep_accel import AccelNight, epoch_mean_hr, list_subjects, read_night
from sleepstack.datasets.slpdb import SlpdbRecord, list_records, read_record
from sleepstack.datasets.slpdb import epoch_mean_hr as slpdb_epoch_hr
from sleepstack.evaluation.anchor import ANCHOR_MODEL, Stager, anchor_predictions

__all__ = [
    "anchor_slpdb",
    "cross_validate",
    "cross_validate_slpdb",
    "evaluate",
    "evaluate_slpdb",
    "load_corpus",
    "load_slpdb",
    "simulated_staging",
    "slpdb_features",
    "train",
    "train_rr",
    "training_set",
]

_PER_SUBJECT_KEYS = ("kappa_4", "kappa_3", "kappa_2", "accuracy_4", "tst_truth_min", "tst_pred_min", "tst_error_min")


def load_corpus(root: Path) -> list[AccelNight]:
    subjects = list_subjects(root)
    if not subjects:
        raise DatasetError(str(root), "no heart_rate/<id>_heartrate.txt with a labels/<id>_labeled_sleep.txt")
    return [read_night(root, s) for s in subjects]


def training_set(nights: list[AccelNight]) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]]:
    return [(hr_epoch_features(epoch_mean_hr(n)), n.stages) for n in nights]


def train(root: Path, *, name: str = DEFAULT_MODEL, seed: int = 0, max_iter: int = 300) -> StageModel:
    """The heart-rate model on every night under ``root``, its temperature fitted out of fold (:func:`_calibrated`)."""
    nights = load_corpus(root)
    meta = {"dataset": "sleep-accel (Walch et al. 2019)", "subjects": [n.subject for n in nights]}
    items = _labelled_accel(nights, "hr")
    model = _fit(items, "hr", name=name, seed=seed, max_iter=max_iter, training=meta)
    return _calibrated(model, items, "hr", seed=seed, max_iter=max_iter)


#: Subject-grouped folds whose out-of-fold logits fit a model's temperature.
CALIBRATION_FOLDS = 5


def _calibrated(model: StageModel, items: Sequence[_Labelled], source: str, **kwargs: Any) -> StageModel:
    """``model`` with its temperature (:func:`core.nights.calibration.fit_temperature`) fitted on the
    out-of-fold logits of :data:`CALIBRATION_FOLDS` folds of ``items``' subjects (dealt in sorted
    order: deterministic), each fold's network trained as ``model`` was on the other folds.

    ``training["calibration"]`` records the temperature and the calibration on held-out subjects
    before scaling and after it, nested: each fold's probabilities scaled by the temperature
    fitted on the other folds' logits, so no epoch is scored by a temperature it helped fit."""
    subjects = sorted({it.subject for it in items})
    k = min(CALIBRATION_FOLDS, len(subjects))
    group = {s: i % k for i, s in enumerate(subjects)}
    parts: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], int]] = []
    for g in range(k):
        fold_model = _fit([it for it in items if group[it.subject] != g], source, **kwargs)
        for it in (it for it in items if group[it.subject] == g):
            for x, y in it.pairs():
                scored = y >= 0
                parts.append((fold_model.logits(x)[:, scored], y[scored], g))
    logits = np.concatenate([z for z, _, _ in parts], axis=1)
    labels = np.concatenate([y for _, y, _ in parts])
    fold = np.concatenate([np.full(len(y), g) for _, y, g in parts])
    nested = np.empty((len(labels), logits.shape[2]))
    for g in range(k):
        held = fold == g
        nested[held] = scaled(logits[:, held], fit_temperature(logits[:, ~held], labels[~held]))
    temperature = round(fit_temperature(logits, labels), 4)
    before = scaled(logits, 1.0)
    calibration = {
        "method": "temperature scaling (Guo et al. 2017) on out-of-fold logits",
        "folds": k,
        "epochs": len(labels),
        "temperature": temperature,
        "ece_15_before": round(expected_calibration_error(before, labels), 4),
        "ece_15_after": round(expected_calibration_error(nested, labels), 4),
        "nll_before": round(mean_nll(before, labels), 4),
        "nll_after": round(mean_nll(nested, labels), 4),
        "after_is": "nested: each fold scaled by the temperature fitted on the other folds",
    }
    return dataclasses.replace(model, temperature=temperature, training={**model.training, "calibration": calibration})


class _Night(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def stages(self) -> npt.NDArray[np.int8]: ...


def _figures(nights: Sequence[_Night], preds: list[npt.NDArray[np.int8]]) -> dict[str, Any]:
    truth_all, pred_all, per_subject = [], [], []
    for night, pred in zip(nights, preds, strict=True):
        scored = night.stages >= 0
        truth_all.append(night.stages[scored])
        pred_all.append(pred[scored])
        fig = staging_agreement(night.stages[scored], pred[scored])
        per_subject.append(
            {"subject": night.subject, "epochs": fig["epochs"], **{k: round(fig[k], 4) for k in _PER_SUBJECT_KEYS}}
        )
    pooled = staging_agreement(np.concatenate(truth_all), np.concatenate(pred_all))
    out: dict[str, Any] = {
        k: round(pooled[k], 4) for k in (f"{m}_{c}" for m in ("kappa", "accuracy") for c in (4, 3, 2))
    }
    out["tst_abs_error_min_median"] = statistics.median(abs(s["tst_error_min"]) for s in per_subject)
    out["kappa_4_subject_median"] = statistics.median(s["kappa_4"] for s in per_subject)
    out["confusion_4"] = confusion(np.concatenate(truth_all), np.concatenate(pred_all), 4).tolist()
    out["intervals_90"] = metric_intervals([n.stages for n in nights], preds)
    out["subjects"] = len(per_subject)
    out["epochs"] = pooled["epochs"]
    out["per_subject"] = per_subject
    return out


def evaluate(root: Path, model: StageModel) -> dict[str, Any]:
    """Figures of ``model`` on every night under ``root``; says how many it was trained on."""
    nights = load_corpus(root)
    seen = set(model.training.get("subjects", [])) & {n.subject for n in nights}
    figures = _figures(nights, [stage_hr(epoch_mean_hr(n), model) for n in nights])
    return {"model": model.name, "mode": "fixed model", "subjects_seen_in_training": len(seen), **figures}


def cross_validate(root: Path, *, folds: int = 0, seed: int = 0, max_iter: int = 300) -> dict[str, Any]:
    """Leave-subjects-out figures: ``folds`` groups by subject (0 = leave one subject out)."""
    nights = load_corpus(root)
    k, group = _folds([n.subject for n in nights], folds, root)
    preds, _ = _out_of_fold(_labelled_accel(nights, "hr"), k, group, "hr", seed=seed, max_iter=max_iter)
    return {
        "model": DEFAULT_MODEL,
        "mode": f"leave-subjects-out, {k} folds",
        "subjects_seen_in_training": 0,
        **_figures(nights, preds),
    }


@dataclass(frozen=True)
class _SubjectNight:
    """A subject's scored epochs, its records' in order (what :func:`_figures` pools per subject)."""

    subject: str
    stages: npt.NDArray[np.int8]


def _per_subject(
    records: list[SlpdbRecord], preds: list[npt.NDArray[np.int8]]
) -> tuple[list[_SubjectNight], list[npt.NDArray[np.int8]]]:
    subjects = sorted({r.subject for r in records})
    nights, merged = [], []
    for s in subjects:
        mine = [(r, p) for r, p in zip(records, preds, strict=True) if r.subject == s]
        nights.append(_SubjectNight(s, np.concatenate([r.stages for r, _ in mine])))
        merged.append(np.concatenate([p for _, p in mine]))
    return nights, merged


def slpdb_features(rec: SlpdbRecord, source: str, *, with_rr: bool = True) -> npt.NDArray[np.float64]:
    """A record's model inputs (:func:`core.nights.staging.staging_features`): heart-rate
    features, and with ``source="rr"`` the HRV features of all its beats (ectopic and
    artefact beats removed by cleaning, as from a strap); ``with_rr=False`` gives the "no RR"
    input instead, as a night without beat-to-beat intervals has."""
    beats = Beats(rec.beat_t_s, rec.rr_ms) if with_rr else None
    return staging_features(slpdb_epoch_hr(rec), source, beats, rec.epoch_t_s)


@dataclass(frozen=True)
class _Labelled:
    """A night's model inputs and PSG stages; ``without_rr``: the same night with RR withheld
    (slpdb under an ``rr`` model: the model learns to stage from heart rate when RR is missing)."""

    subject: str
    x: npt.NDArray[np.float64]
    stages: npt.NDArray[np.int8]
    without_rr: npt.NDArray[np.float64] | None = None

    def pairs(self) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]]:
        return [(self.x, self.stages)] + ([] if self.without_rr is None else [(self.without_rr, self.stages)])


def _labelled_slpdb(records: list[SlpdbRecord], source: str, *, withhold: bool) -> list[_Labelled]:
    return [
        _Labelled(
            r.subject,
            slpdb_features(r, source),
            r.stages,
            slpdb_features(r, source, with_rr=False) if withhold and source == "rr" else None,
        )
        for r in records
    ]


def _labelled_accel(nights: list[AccelNight], source: str) -> list[_Labelled]:
    return [_Labelled(n.subject, staging_features(epoch_mean_hr(n), source), n.stages) for n in nights]


def _fit(items: Sequence[_Labelled], source: str, **kwargs: Any) -> StageModel:
    """A model on ``source``'s inputs, with that input set's number of members unless given."""
    kwargs.setdefault("members", MEMBERS[source])
    with threadpool_limits(limits=1):
        pairs = [p for item in items for p in item.pairs()]
        return fit_stage_model(pairs, feature_names=FEATURE_SETS[source], **kwargs)


def train_rr(
    slpdb_root: Path, accel_root: Path, *, name: str = RR_MODEL, seed: int = 0, max_iter: int = 300
) -> StageModel:
    """The RR model: heart rate and HRV features, trained on every slpdb-rr record under
    ``slpdb_root`` (with its RR, and again with RR withheld) and every sleep-accel night under
    ``accel_root`` (heart rate only: RR missing)."""
    records, nights = load_slpdb(slpdb_root), load_corpus(accel_root)
    meta = {
        "dataset": "slpdb-rr (MIT-BIH Polysomnographic Database, Ichimaru & Moody 1999), each record with and"
        " without its RR; sleep-accel (Walch et al. 2019), heart rate only",
        "subjects": sorted({r.subject for r in records} | {n.subject for n in nights}),
    }
    items = _labelled_slpdb(records, "rr", withhold=True) + _labelled_accel(nights, "rr")
    model = _fit(items, "rr", name=name, seed=seed, max_iter=max_iter, training=meta)
    return _calibrated(model, items, "rr", seed=seed, max_iter=max_iter)


def load_slpdb(root: Path) -> list[SlpdbRecord]:
    records = list_records(root)
    if not records:
        raise DatasetError(str(root), "no meta.csv records with rr/<record>.csv and stages/<record>.csv")
    return [read_record(root, rec, subject) for rec, subject in records]


def evaluate_slpdb(root: Path, model: StageModel) -> dict[str, Any]:
    """Figures of ``model`` on the slpdb-rr records under ``root``, from the inputs it was trained on."""
    records = load_slpdb(root)
    seen = set(model.training.get("subjects", [])) & {r.subject for r in records}
    source = model.source
    nights, preds = _per_subject(records, [model.predict(slpdb_features(r, source)) for r in records])
    return {
        "model": model.name,
        "source": source,
        "mode": "fixed model",
        "subjects_seen_in_training": len(seen),
        **_figures(nights, preds),
    }


def _folds(subjects: Sequence[str], folds: int, root: Path) -> tuple[int, dict[str, int]]:
    """``folds`` groups of subjects (0: one per subject), assigned in their first-seen order."""
    ordered = list(dict.fromkeys(subjects))
    k = len(ordered) if folds <= 0 else min(folds, len(ordered))
    if k < 2:
        raise DatasetError(str(root), "cross-validation needs at least two subjects")
    return k, {s: i % k for i, s in enumerate(ordered)}


def _out_of_fold(
    items: list[_Labelled], k: int, group: dict[str, int], source: str, **kwargs: Any
) -> tuple[list[npt.NDArray[np.int8]], list[npt.NDArray[np.int8]]]:
    """Each item staged by the model trained without its group: from all its inputs, and
    (items with ``without_rr``) with RR withheld."""
    preds: list[npt.NDArray[np.int8]] = [np.zeros(0, np.int8)] * len(items)
    withheld = list(preds)
    for g in range(k):
        model = _fit([it for it in items if group[it.subject] != g], source, **kwargs)
        for i, it in enumerate(items):
            if group[it.subject] == g:
                preds[i] = model.predict(it.x)
                if it.without_rr is not None:
                    withheld[i] = model.predict(it.without_rr)
    return preds, withheld


def cross_validate_slpdb(
    root: Path,
    *,
    source: str = "hr",
    folds: int = 0,
    seed: int = 0,
    members: int | None = None,
    max_iter: int = 300,
    also_train_on: Path | None = None,
) -> dict[str, Any]:
    """Subjects split into ``folds`` groups (0: one per subject; records of a subject stay together);
    a model on ``source``'s inputs (``hr`` or ``rr``) is trained on the other groups' records and
    stages the held-out ones.

    ``also_train_on``: a sleep-accel directory, whose subjects join the folds (pooled corpora,
    grouped by subject across both). Its nights have heart rate only; an ``rr`` model gets
    them with RR missing, and every slpdb record a second time with RR withheld. The figures
    are slpdb's; ``sleep_accel`` and ``pooled`` (both corpora's subjects) come beside them,
    and for ``rr`` ``slpdb_without_rr`` (the same fold models staging slpdb from heart rate).
    ``members``: networks per model (default: :data:`core.nights.classifier.MEMBERS`, as committed),
    from seeds ``seed`` on.
    """
    m = MEMBERS[source] if members is None else members
    records = load_slpdb(root)
    pooled = also_train_on is not None
    items = _labelled_slpdb(records, source, withhold=pooled)
    accel = load_corpus(also_train_on) if also_train_on is not None else []
    extra = _labelled_accel(accel, source)
    k, group = _folds(sorted({it.subject for it in items + extra}), folds, root)
    preds, withheld = _out_of_fold(items + extra, k, group, source, seed=seed, members=m, max_iter=max_iter)
    slpdb_nights, slpdb_preds = _per_subject(records, preds[: len(items)])
    out: dict[str, Any] = {
        "model": f"{source}-mlp (trained per fold on the other "
        + ("subjects of slpdb-rr and sleep-accel)" if pooled else "slpdb subjects)"),
        "source": source,
        "mode": f"leave-subjects-out, {k} folds, grouped by subject" + (" over both corpora" if pooled else ""),
        "subjects_seen_in_training": 0,
        "seeds": list(range(seed, seed + m)),
        **_figures(slpdb_nights, slpdb_preds),
    }
    if pooled:
        out["sleep_accel"] = _figures(accel, preds[len(items) :])
        out["pooled"] = _figures([*slpdb_nights, *accel], [*slpdb_preds, *preds[len(items) :]])
        if source == "rr":
            out["slpdb_without_rr"] = _figures(*_per_subject(records, withheld[: len(items)]))
    return out


def simulated_staging(night: SimulatedNight) -> dict[str, Any]:
    """Each committed model on a simulated night's strap beats against the simulator's stages.

    Not an accuracy figure (the simulator's heart is not real physiology; the PSG figures
    are): it shows how each model's total sleep time behaves on healthy-sleeper input."""
    e = night.epochs
    beats = Beats(night.beat_t_s[1:], np.diff(night.beat_t_s) * 1000.0)
    truth_tst = float((e.stage != SleepStage.WAKE).sum()) / 2.0
    out: dict[str, Any] = {"tst_truth_min": truth_tst}
    for source in ("hr", "rr"):
        model = bundled().for_source(source)
        pred = model.predict(staging_features(e.hr_bpm, source, beats, e.t_s))
        fig = staging_agreement(e.stage, pred)
        out[model.name] = {
            "kappa_4": round(fig["kappa_4"], 3),
            "accuracy_2": round(fig["accuracy_2"], 3),
            "tst_error_min": float((pred != SleepStage.WAKE).sum()) / 2.0 - truth_tst,
        }
    return out


def anchor_slpdb(root: Path, stager: Stager | None = None) -> dict[str, Any]:
    """SleepECG's pretrained stager on the slpdb-rr records under ``root``, scored as our models are.

    It stages wake, NREM and REM only, so the 4-class figures are null.
    """
    records = load_slpdb(root)
    out = _figures(*_per_subject(records, anchor_predictions(root, records, stager)))
    for key in ("kappa_4", "accuracy_4", "kappa_4_subject_median", "confusion_4"):
        out[key] = None
    for row in out["per_subject"]:
        row["kappa_4"] = row["accuracy_4"] = None
    return {
        "model": ANCHOR_MODEL,
        "source": "heartbeat times, age, sex",
        "mode": "anchor",
        "subjects_seen_in_training": 0,  # trained on MESA only
        **out,
    }
