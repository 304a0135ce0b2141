"""Train and evaluate the RR apnoea detector (:mod:`core.nights.apnoea`) on the Apnea-ECG layout,
and score it on slpdb-rr's respiratory events.

Scoring follows the PhysioNet/CinC Challenge 2000 (Penzel et al. 2000): every labelled
minute counts (minutes labelled -1 are not scored) for event 2 (``minute_accuracy``,
``minute_sensitivity``, ``minute_specificity``, pooled over records); event 1 classes
whole records, scored on A and C records only (``event1_correct`` of ``event1_scored``).
Beside them: the AHI estimate against the polysomnogram's (Pearson r, mean absolute
error, and the screening cut-off of 15/h as sensitivity and specificity), and how many of
the records' subjects the scoring model was trained on. Figures the folder cannot give
(no labels, no AHI, no classes) are null.

``cross_validate`` deals subjects (never records: one person has several) to ``folds``
groups in an order shuffled by ``seed``; a model trained without each group scores it.
Training is deterministic (no random start) and runs with single-threaded BLAS
(threadpoolctl), so ``sleepstack train --model apnoea-rr-lr-v2`` rebuilds the committed
artefact byte for byte on one machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from core.errors import DatasetError
from core.nights.apnoea import APNOEA_MODEL, ApnoeaModel, LabelledNight, NightApnoea, fit_apnoea_model
from core.signals.apnoea_features import minute_features
from sleepstack.datasets.apnea_ecg import ApneaRecord, load_apnea_ecg
from sleepstack.datasets.slpdb import SlpdbRecord

__all__ = ["cross_validate", "evaluate", "evaluate_slpdb", "figures", "labelled", "slpdb_minutes", "train"]

_AHI_CUT: Final = 15.0


@dataclass(frozen=True)
class _Scored:
    """A record's truth beside the detector's night."""

    record: str
    subject: str
    labels: npt.NDArray[np.int8]
    ahi: float | None
    record_class: str | None
    night: NightApnoea


def labelled(records: Sequence[ApneaRecord]) -> list[LabelledNight]:
    """The records' minute features (:func:`core.signals.apnoea_features.minute_features`) and labels."""
    return [
        LabelledNight(r.subject, minute_features(r.beat_t_s, r.rr_ms, r.n_minutes), r.labels, r.ahi) for r in records
    ]


def _fit(nights: Sequence[LabelledNight], **kwargs: Any) -> ApnoeaModel:
    with threadpool_limits(limits=1):
        return fit_apnoea_model(nights, **kwargs)


def train(root: Path, *, name: str = APNOEA_MODEL) -> ApnoeaModel:
    """The committed model: every labelled record under ``root``."""
    records = [r for r in load_apnea_ecg(root) if r.labelled]
    if not records:
        raise DatasetError(str(root), "no record has an apnea/<record>.csv to train on")
    meta = {
        "dataset": "Apnea-ECG learning set (Penzel et al. 2000, PhysioNet/CinC Challenge 2000), RR from sqrs125 beats",
        "records": [r.record for r in records],
        "subjects": sorted({r.subject for r in records}),
    }
    return _fit(labelled(records), name=name, training=meta)


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def figures(scored: Sequence[_Scored]) -> dict[str, Any]:
    """The challenge's figures and the AHI's over ``scored`` records (module docstring)."""
    tp = fn = tn = fp = 0
    rows = []
    for s in scored:
        ok = s.labels >= 0
        called, truth = s.night.apnoea[ok], s.labels[ok] == 1  # one probability per labelled minute
        tp += int((called & truth).sum())
        fn += int((~called & truth).sum())
        tn += int((~called & ~truth).sum())
        fp += int((called & ~truth).sum())
        lo, hi = s.night.ahi_interval
        rows.append(
            {
                "record": s.record,
                "ahi_true": s.ahi,
                "ahi_est": round(s.night.ahi, 1),
                "ahi_interval": [round(lo, 1), round(hi, 1) if np.isfinite(hi) else None],
                "severity": s.night.severity,
                "apnea_min_true": int((s.labels == 1).sum()) if ok.any() else None,
                "apnea_min_pred": int(s.night.apnoea.sum()),
                "apnea_min_est": round(s.night.apnoea_minutes, 1),
                "class_true": s.record_class,
                "class_pred": s.night.record_class,
            }
        )
    n = tp + fn + tn + fp
    with_ahi = [r for r in rows if r["ahi_true"] is not None]
    truth = np.array([r["ahi_true"] for r in with_ahi], dtype=float)
    est = np.array([r["ahi_est"] for r in with_ahi], dtype=float)
    r_ahi = float(np.corrcoef(truth, est)[0, 1]) if len(with_ahi) >= 3 and np.ptp(truth) and np.ptp(est) else None
    pos, neg = truth >= _AHI_CUT, truth < _AHI_CUT
    event1 = [r for r in rows if r["class_true"] in ("A", "C")]
    inside = [s.night.ahi_interval[0] <= s.ahi <= s.night.ahi_interval[1] for s in scored if s.ahi is not None]
    return {
        "minute_accuracy": _round((tp + tn) / n if n else None),
        "minute_sensitivity": _round(tp / (tp + fn) if tp + fn else None),
        "minute_specificity": _round(tn / (tn + fp) if tn + fp else None),
        "minutes_scored": n,
        "records": len(rows),
        "ahi_pearson_r": _round(r_ahi),
        "ahi_mae": _round(float(np.mean(np.abs(est - truth))) if with_ahi else None, 2),
        "ahi_interval_coverage": _round(float(np.mean(inside)) if inside else None),
        "event1_correct": sum(r["class_true"] == r["class_pred"] for r in event1),
        "event1_scored": len(event1),
        "ahi15_sensitivity": _round(float(np.mean(est[pos] >= _AHI_CUT)) if pos.any() else None),
        "ahi15_specificity": _round(float(np.mean(est[neg] < _AHI_CUT)) if neg.any() else None),
        "per_record": rows,
    }


def _score(model: ApnoeaModel, r: ApneaRecord, features: npt.NDArray[np.float64]) -> _Scored:
    return _Scored(r.record, r.subject, r.labels, r.ahi, r.record_class, model.night(model.predict_proba(features)))


def evaluate(root: Path, model: ApnoeaModel) -> dict[str, Any]:
    """Figures of ``model`` on every record under ``root``; says how many of their subjects it saw."""
    records = load_apnea_ecg(root)
    seen = set(model.training.get("subjects", [])) & {r.subject for r in records}
    nights = labelled(records)
    out = figures([_score(model, r, n.features) for r, n in zip(records, nights, strict=True)])
    return {"model": model.name, "mode": "fixed model", "subjects_seen_in_training": len(seen), **out}


def cross_validate(root: Path, *, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Subject-grouped ``folds``-fold figures (0: one fold per subject); ``seed`` shuffles subjects to folds."""
    records = load_apnea_ecg(root)
    nights = labelled(records)
    subjects = sorted({r.subject for r in records})
    k = len(subjects) if folds <= 0 else min(folds, len(subjects))
    if k < 2:
        raise DatasetError(str(root), "cross-validation needs at least two subjects")
    order = np.random.default_rng(seed).permutation(len(subjects))
    group = {subjects[j]: i % k for i, j in enumerate(order)}
    scored: list[_Scored | None] = [None] * len(records)
    for g in range(k):
        train_on = [n for r, n in zip(records, nights, strict=True) if group[r.subject] != g and r.labelled]
        try:
            model = _fit(train_on)
        except ValueError as exc:
            raise DatasetError(str(root), f"fold {g + 1} of {k} cannot be trained: {exc}") from None
        for i, (r, n) in enumerate(zip(records, nights, strict=True)):
            if group[r.subject] == g:
                scored[i] = _score(model, r, n.features)
    out = figures([s for s in scored if s is not None])
    mode = f"{k}-fold cross-validation grouped by subject, seed {seed}"
    return {"model": APNOEA_MODEL, "mode": mode, "subjects_seen_in_training": 0, **out}


#: slpdb respiratory event codes (as :mod:`sleepstack.evaluation.apnea`): hypopnoea, obstructive, central apnoea.
_RESPIRATORY: Final = frozenset({"H", "HA", "OA", "X", "CA", "CAA"})


def slpdb_minutes(rec: SlpdbRecord) -> tuple[npt.NDArray[np.int8], float | None]:
    """A slpdb record's per-minute labels (n_minutes,) from its 30-s epochs and its scored AHI.

    A minute (``[60 m, 60 m + 60)`` s) is apnoea when an epoch starting in it carries a
    respiratory code, normal when its epochs carry none, -1 when it has no scored epoch.
    AHI: respiratory codes per hour of PSG sleep (as ``evaluate cvhr``); None without sleep.
    """
    minute = (rec.epoch_t_s // 60).astype(int)
    n = int(minute.max()) + 1 if len(minute) else 0
    labels = np.full(n, -1, dtype=np.int8)
    events = np.array([sum(c in _RESPIRATORY for c in ev.split()) for ev in rec.events], dtype=int)
    scored = rec.stages >= 0
    labels[minute[scored]] = 0
    labels[minute[scored & (events > 0)]] = 1
    sleep = scored & (rec.stages != 0)
    hours = float(sleep.sum()) / 120.0
    return labels, (round(float(events[sleep].sum()) / hours, 1) if hours else None)


def evaluate_slpdb(root: Path, model: ApnoeaModel) -> dict[str, Any]:
    """The same model on slpdb-rr's records scored for respiration (records with no event code of any
    kind were not scored for it and are left out, named)."""
    from sleepstack.evaluation.staging import load_slpdb

    scored, skipped = [], []
    for rec in load_slpdb(root):
        if not any(ev.strip() for ev in rec.events):
            skipped.append(rec.record)
            continue
        labels, ahi = slpdb_minutes(rec)
        night = model.night(model.predict_proba(minute_features(rec.beat_t_s, rec.rr_ms, len(labels))))
        scored.append(_Scored(rec.record, rec.subject, labels, ahi, None, night))
    if not scored:
        raise DatasetError(str(root), "no record carries respiratory event codes")
    seen = set(model.training.get("subjects", [])) & {s.subject for s in scored}
    return {
        "model": model.name,
        "mode": "fixed model, another laboratory (MIT-BIH slpdb; AHI truth per hour of PSG sleep)",
        "subjects_seen_in_training": len(seen),
        "records_not_scored_for_respiration": skipped,
        **figures(scored),
    }
