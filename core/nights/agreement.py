"""Epoch-by-epoch agreement between two hypnograms: confusion matrices and Cohen's kappa.

Inputs are :class:`~core.nights.stages.SleepStage` codes of the same epochs, shape (n_epochs,);
kappa is Cohen's (Cohen J., Educ. Psychol. Meas. 20:37-46, 1960), pooled over whatever
epochs are passed. ``staging_agreement`` reports the three usual granularities: four
classes, wake/NREM/REM and sleep/wake.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from core.contract.epochs import EPOCH_S
from core.nights.stages import SleepStage, to_sleep_wake, to_three_class

__all__ = ["cohen_kappa", "confusion", "staging_agreement"]


def confusion(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> npt.NDArray[np.int64]:
    """Counts, shape (n_classes, n_classes): rows are the truth, columns the prediction."""
    t, p = np.asarray(truth, dtype=int), np.asarray(pred, dtype=int)
    if t.shape != p.shape:
        raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def cohen_kappa(cm: npt.NDArray[np.int64]) -> float:
    """Cohen's kappa of a confusion matrix; NaN when there are no epochs, 0 when chance is 1."""
    n = cm.sum()
    if n == 0:
        return float("nan")
    po = np.trace(cm) / n
    pe = float((cm.sum(axis=0) * cm.sum(axis=1)).sum()) / n**2
    return 0.0 if pe >= 1.0 else float((po - pe) / (1.0 - pe))


def staging_agreement(truth: npt.ArrayLike, pred: npt.ArrayLike) -> dict[str, Any]:
    """Kappa and accuracy at 4/3/2 classes, plus total sleep time (min) of each hypnogram."""
    t, p = np.asarray(truth, dtype=int), np.asarray(pred, dtype=int)
    out: dict[str, Any] = {"epochs": len(t)}
    for k, collapse in ((4, np.asarray), (3, to_three_class), (2, to_sleep_wake)):
        cm = confusion(collapse(t), collapse(p), k)
        out[f"kappa_{k}"] = cohen_kappa(cm)
        out[f"accuracy_{k}"] = float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan")
    out["tst_truth_min"] = float((t != SleepStage.WAKE).sum() * EPOCH_S / 60)
    out["tst_pred_min"] = float((p != SleepStage.WAKE).sum() * EPOCH_S / 60)
    out["tst_error_min"] = out["tst_pred_min"] - out["tst_truth_min"]
    return out
