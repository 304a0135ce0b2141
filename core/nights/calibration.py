"""Calibrated stage probabilities: temperature scaling, and how to measure calibration.

A network trained on cross-entropy is often over-confident on data it has not seen:
among epochs it gives 0.9, fewer than 90 % are right. Temperature scaling (Guo C., Pleiss
G., Sun Y., Weinberger K.Q., "On Calibration of Modern Neural Networks", ICML 2017) divides
the network's logits by one scalar T > 0 fitted to minimise the negative log-likelihood of
held-out labels: T > 1 softens the probabilities, T < 1 sharpens them, and the arg-max
(the stage called) does not change. The staging models fit T on the out-of-fold logits of a
subject-grouped cross-validation (:mod:`sleepstack.evaluation.staging`), so it measures
over-confidence on people the network never saw.

Measures, on probabilities ``proba`` shape (n, K) and labels ``labels`` shape (n,) in 0..K-1:

* :func:`mean_nll`: the mean negative log-likelihood of the labels (nats; lower is better);
* :func:`expected_calibration_error`: the top-label ECE of Guo et al.: epochs binned by
  their largest probability into ``bins`` equal-width bins of [0, 1], the weighted mean
  over bins of |accuracy - mean confidence| (0: calibrated).

Logits ``logits`` have shape (M, n, K): M ensemble members' outputs (the model's prior
shift already removed); probabilities are the members' mean of softmax(logits / T).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar

__all__ = ["ECE_BINS", "TEMPERATURE_BOUNDS", "expected_calibration_error", "fit_temperature", "mean_nll", "scaled"]

#: Bins of the expected calibration error (Guo et al. 2017 use 15).
ECE_BINS: Final = 15
#: Temperatures searched, bounded.
TEMPERATURE_BOUNDS: Final = (0.05, 20.0)

Array = npt.NDArray[np.float64]


def scaled(logits: npt.ArrayLike, temperature: float = 1.0) -> Array:
    """Members' mean of softmax(logits / T): logits (M, n, K) -> probabilities (n, K)."""
    z = np.asarray(logits, dtype=float) / float(temperature)
    z = z - z.max(axis=2, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=2, keepdims=True)
    out: Array = p.mean(axis=0)
    return out


def mean_nll(proba: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mean negative log-likelihood (nats) of ``labels`` (n,) under ``proba`` (n, K)."""
    p = np.asarray(proba, dtype=float)
    y = np.asarray(labels, dtype=int)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))


def expected_calibration_error(proba: npt.ArrayLike, labels: npt.ArrayLike, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error (Guo et al. 2017) of ``proba`` (n, K) against ``labels`` (n,)."""
    p = np.asarray(proba, dtype=float)
    y = np.asarray(labels, dtype=int)
    confidence = p.max(axis=1)
    right = (p.argmax(axis=1) == y).astype(float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    hits = np.bincount(which, weights=right, minlength=bins)
    gap = np.abs(hits - np.bincount(which, weights=confidence, minlength=bins))
    return float(gap.sum() / count.sum()) if count.sum() else float("nan")


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The T in :data:`TEMPERATURE_BOUNDS` minimising :func:`mean_nll` of ``labels`` (n,) under
    ``scaled(logits, T)``, logits (M, n, K); searched on log T (bounded Brent)."""
    z = np.asarray(logits, dtype=float)
    y = np.asarray(labels, dtype=int)
    if z.ndim != 3 or z.shape[1] != len(y) or len(y) == 0:
        raise ValueError(f"logits must be (members, {len(y)}, classes), got {z.shape}")
    lo, hi = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    res = minimize_scalar(lambda u: mean_nll(scaled(z, float(np.exp(u))), y), bounds=(lo, hi), method="bounded")
    return float(np.exp(res.x))
