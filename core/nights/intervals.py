"""90 % intervals for a night's staging metrics, by conformal prediction over held-out subjects.

A staged night's TST, efficiency, WASO and minutes per stage are estimates: the stager errs
by a different amount on every night. Split conformal prediction (Vovk V., Gammerman A.,
Shafer G., *Algorithmic Learning in a Random World*, 2005; Lei J. et al., "Distribution-free
predictive inference for regression", JASA 113:1094-1111, 2018) turns the absolute errors
the model made on subjects it never saw (the out-of-fold nights of a subject-grouped
cross-validation) into an interval ``estimate ± q`` that holds the truth for a share
``level`` of new subjects, if they are exchangeable with those: ``q`` is the
``ceil((n + 1) * level)``-th smallest of the ``n`` absolute errors (infinite when that
exceeds ``n``: too few subjects to promise the level).

Its coverage is measured, not assumed (:func:`loo_coverage`): each subject in turn is left
out, ``q`` is computed from the others' errors, and the subject's own error is inside or
not; the share inside is the coverage on held-out subjects.

Arrays: ``abs_errors`` shape (n_subjects,), minutes or percentage points as the metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.nights.metrics import night_metrics

__all__ = [
    "INTERVAL_LEVEL",
    "INTERVAL_METRICS",
    "conformal_halfwidth",
    "loo_coverage",
    "metric_intervals",
    "night_intervals",
]

INTERVAL_LEVEL: Final = 0.90
#: The night metrics that carry an interval, and their bounds (a value outside is impossible).
INTERVAL_METRICS: Final = {
    "total_sleep_time_min": (0.0, math.inf),
    "sleep_efficiency_pct": (0.0, 100.0),
    "waso_min": (0.0, math.inf),
    "wake_min": (0.0, math.inf),
    "light_min": (0.0, math.inf),
    "deep_min": (0.0, math.inf),
    "rem_min": (0.0, math.inf),
}


def conformal_halfwidth(abs_errors: npt.ArrayLike, level: float = INTERVAL_LEVEL) -> float:
    """The split-conformal half-width of ``abs_errors`` (module docstring)."""
    e = np.sort(np.asarray(abs_errors, dtype=float)[np.isfinite(np.asarray(abs_errors, dtype=float))])
    k = math.ceil((len(e) + 1) * level)
    return float(e[k - 1]) if 0 < k <= len(e) else math.inf


def loo_coverage(abs_errors: npt.ArrayLike, level: float = INTERVAL_LEVEL) -> float:
    """The share of subjects whose error is inside the half-width the others give (module docstring)."""
    e = np.asarray(abs_errors, dtype=float)
    e = e[np.isfinite(e)]
    if len(e) < 2:
        return math.nan
    inside = [e[i] <= conformal_halfwidth(np.delete(e, i), level) for i in range(len(e))]
    return float(np.mean(inside))


def metric_intervals(
    truth: Sequence[npt.ArrayLike], predicted: Sequence[npt.ArrayLike], level: float = INTERVAL_LEVEL
) -> dict[str, dict[str, Any]]:
    """Per metric of :data:`INTERVAL_METRICS`: the half-width, its measured coverage on held-out
    subjects and the subjects it rests on, from one night per subject: ``truth[i]`` and
    ``predicted[i]`` shape (n_epochs_i,) stage codes, -1 unscored (the prediction is scored where
    the truth is)."""
    errors: dict[str, list[float]] = {m: [] for m in INTERVAL_METRICS}
    for t, p in zip(truth, predicted, strict=True):
        ta, pa = np.asarray(t), np.asarray(p).copy()
        pa[ta < 0] = -1
        mt, mp = night_metrics(ta), night_metrics(pa)
        for m in INTERVAL_METRICS:
            errors[m].append(abs(float(mp[m]) - float(mt[m])))
    return {
        m: {
            "halfwidth": round(conformal_halfwidth(e, level), 2),
            "coverage": round(loo_coverage(e, level), 3),
            "subjects": int(np.isfinite(e).sum()),
        }
        for m, e in ((m, np.asarray(v, dtype=float)) for m, v in errors.items())
    }


def night_intervals(
    summary: Mapping[str, Any], intervals: Mapping[str, Mapping[str, Any]]
) -> dict[str, tuple[float, float]]:
    """A night's ``(lo, hi)`` per metric with a measured half-width in ``intervals`` (a model
    card's ``intervals_90``), clipped to the metric's bounds; metrics the night lacks are left out."""
    out: dict[str, tuple[float, float]] = {}
    for m, (lo_bound, hi_bound) in INTERVAL_METRICS.items():
        value, spec = summary.get(m), intervals.get(m)
        if value is None or spec is None or not math.isfinite(float(value)):
            continue
        q = float(spec["halfwidth"])
        out[m] = (max(lo_bound, float(value) - q), min(hi_bound, float(value) + q))
    return out
