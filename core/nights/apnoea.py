"""Per-minute apnoea detection and a night's AHI estimate from beat-to-beat (RR) intervals.

Task and reference: the PhysioNet/Computers in Cardiology Challenge 2000 (Penzel T. et
al., "The Apnea-ECG Database", Computers in Cardiology 27:255-258, 2000): label every minute of
an overnight record apnoea (an apnoea or hypopnoea in it) or normal (event 2), and class
whole records A (apnoea), B (borderline) or C (control) (event 1).

Method (fixed in advance, checked in subject-grouped cross-validation, not tuned per record):

1. per-minute RR features (:mod:`core.signals.apnoea_features`: de Chazal et al., IEEE
   Trans. Biomed. Eng. 50(6):686-696, 2003, time-domain and spectral RR features, plus
   CVHR, with neighbouring-minute context);
2. L2-penalised logistic regression on the standardised features (Bishop, *Pattern
   Recognition and Machine Learning*, 2006, ch. 4), fitted by L-BFGS; a minute is apnoea
   when its probability is at least :data:`THRESHOLD`;
3. the night: its called apnoea minutes per hour of recording, mapped to an AHI (events
   per hour) by a straight line through the origin fitted to out-of-fold predictions of the training records (an inner
   cross-validation grouped by subject, so the map corrects the detector's bias on
   nights it did not see); the AHI's 90 % interval is ± a quantile of those
   out-of-fold absolute AHI errors taken as split-conformal scores: the
   ``ceil((n + 1) 0.9)``-th smallest of the ``n`` errors
   (:func:`core.nights.intervals.conformal_halfwidth`; Vovk et al., *Algorithmic Learning
   in a Random World*, 2005; Lei et al., JASA 2018); severity is the AASM band of the
   estimate (:func:`core.nights.apnoea_screens.severity`);
4. the record class from the called apnoea minutes by the challenge's definitions:
   A at 100 minutes or more, C under 5 (controls), B between. (Mapping the called minutes
   by a line fitted like the AHI's, as ``apnoea-rr-lr-v1`` did, classed fewer records right
   in cross-validation: its intercept lifted every control above 5 minutes.)

The artefact is JSON (numbers and strings: loading it runs no code). The core never reads
it: :func:`batch_layer.stage_models.load_apnoea_model` does and passes it in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from core.nights.apnoea_screens import severity
from core.nights.intervals import INTERVAL_LEVEL, conformal_halfwidth
from core.signals.apnoea_features import FEATURE_NAMES, minute_features

__all__ = [
    "APNOEA_MODEL",
    "THRESHOLD",
    "ApnoeaModel",
    "LabelledNight",
    "NightApnoea",
    "detect_apnoea",
    "fit_apnoea_model",
    "record_class",
]

APNOEA_MODEL: Final = "apnoea-rr-lr-v2"
#: Minute probability at or above which a minute is called apnoea.
THRESHOLD: Final = 0.5
#: Challenge record classes by apnoea minutes: A >= 100, C < 5, B between (Penzel et al. 2000).
CLASS_A_MIN: Final = 100.0
CLASS_C_MIN: Final = 5.0
_FORMAT: Final = "sleepstack.apnoea-model/2"

Array = npt.NDArray[np.float64]


def record_class(apnoea_minutes: float) -> str:
    """The challenge's record class of a night with ``apnoea_minutes`` minutes of apnoea."""
    if apnoea_minutes >= CLASS_A_MIN:
        return "A"
    return "C" if apnoea_minutes < CLASS_C_MIN else "B"


@dataclass(frozen=True)
class NightApnoea:
    """A night's apnoea figures: ``probability`` and ``apnoea`` shape (n_minutes,), one per minute
    from the record's start; AHI in events per hour of recording with its 90 % interval."""

    probability: Array
    apnoea: npt.NDArray[np.bool_]
    apnoea_minutes: float  # called by the detector
    ahi: float
    ahi_interval: tuple[float, float]
    severity: str
    record_class: str


@dataclass(frozen=True)
class ApnoeaModel:
    """Logistic weights ``w`` shape (F,), ``b``; standardisation ``mean``/``scale`` (F,);
    the night's AHI map ``ahi_map`` (slope, intercept on called apnoea minutes per hour);
    ``ahi_halfwidth`` the 90 % interval's half-width, events/h."""

    name: str
    feature_names: tuple[str, ...]
    mean: Array
    scale: Array
    w: Array
    b: float
    ahi_map: tuple[float, float]
    ahi_halfwidth: float
    training: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, features: npt.ArrayLike) -> Array:
        """Apnoea probability per minute, shape (n_minutes,), from features (n_minutes, F)."""
        z = ((np.asarray(features, dtype=float) - self.mean) / self.scale) @ self.w + self.b
        out: Array = 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))
        return out

    def night(self, probability: npt.ArrayLike) -> NightApnoea:
        """The night's figures from its minute probabilities (module docstring, steps 3-4)."""
        p = np.asarray(probability, dtype=float)
        hours = len(p) / 60.0
        minutes = float((p >= THRESHOLD).sum())
        rate = minutes / hours if hours else 0.0  # called apnoea minutes per hour
        ahi = max(0.0, self.ahi_map[0] * rate + self.ahi_map[1])
        half = self.ahi_halfwidth if np.isfinite(self.ahi_halfwidth) else float("inf")  # too few nights to size it
        lo, hi = max(0.0, ahi - half), ahi + half
        band = severity(ahi) or "normal"
        return NightApnoea(p, p >= THRESHOLD, minutes, ahi, (lo, hi), band, record_class(minutes))

    def to_json(self) -> str:
        doc = {
            "format": _FORMAT,
            "name": self.name,
            "feature_names": list(self.feature_names),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "w": self.w.tolist(),
            "b": self.b,
            "ahi_map": list(self.ahi_map),
            "ahi_halfwidth": self.ahi_halfwidth,
            "training": self.training,
        }
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ApnoeaModel:
        doc = json.loads(text)
        if doc.get("format") != _FORMAT:
            raise ValueError(f"not a sleepstack apnoea model (format {doc.get('format')!r}, expected {_FORMAT!r})")
        if tuple(doc["feature_names"]) != FEATURE_NAMES:
            raise ValueError(f"model {doc['name']!r} expects other features than this code computes")
        ahi_map = doc["ahi_map"]
        return cls(
            name=doc["name"],
            feature_names=FEATURE_NAMES,
            mean=np.asarray(doc["mean"], dtype=float),
            scale=np.asarray(doc["scale"], dtype=float),
            w=np.asarray(doc["w"], dtype=float),
            b=float(doc["b"]),
            ahi_map=(float(ahi_map[0]), float(ahi_map[1])),
            ahi_halfwidth=float(doc["ahi_halfwidth"]),
            training=doc["training"],
        )


def detect_apnoea(model: ApnoeaModel, beat_t_s: npt.ArrayLike, rr_ms: npt.ArrayLike, n_minutes: int) -> NightApnoea:
    """A night's apnoea minutes and AHI from its beats: ``beat_t_s`` (n_beats,) s from the
    night's start, ``rr_ms`` (n_beats,) ms; ``n_minutes`` one-minute segments from the start."""
    return model.night(model.predict_proba(minute_features(beat_t_s, rr_ms, n_minutes)))


@dataclass(frozen=True)
class LabelledNight:
    """A training night: ``features`` (n_minutes, F), ``labels`` (n_minutes,) 1/0/-1 (unscored),
    the polysomnogram's ``ahi`` (events/h, or None: the night then joins the minute fit only)."""

    subject: str
    features: Array
    labels: npt.NDArray[np.int8]
    ahi: float | None


def _fit_logistic(x: Array, y: Array, l2: float, max_iter: int) -> tuple[Array, Array, Array, float]:
    """Standardisation and weights of an L2-penalised logistic regression (mean cross-entropy + l2 |w|²)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    xs = (x - mean) / scale
    f = xs.shape[1]

    def loss(p: Array) -> tuple[float, Array]:
        w, b = p[:f], p[f]
        prob = 1.0 / (1.0 + np.exp(-np.clip(xs @ w + b, -40.0, 40.0)))
        value = -float(np.mean(y * np.log(prob + 1e-12) + (1 - y) * np.log(1 - prob + 1e-12))) + l2 * float(w @ w)
        g = (prob - y) / len(y)
        return value, np.concatenate([xs.T @ g + 2 * l2 * w, [g.sum()]])

    res = minimize(loss, np.zeros(f + 1), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return mean, scale, res.x[:f], float(res.x[f])


def _line(x: Array, y: Array) -> tuple[float, float]:
    """Least-squares slope of y on x through the origin, and intercept 0 (slope 1 with fewer than 3 points).

    Through the origin: a night without called apnoea minutes carries no evidence of
    events. A free intercept (``apnoea-rr-lr-v2``'s first fit) put every calm night at
    about 9 events/h, because the learning set's few severe nights the detector misses
    lift it; through the origin the cross-validated AHI error fell from 12.8 to 9.9
    events/h and r rose from 0.72 to 0.76 (seeds 0-2, ``docs/evaluation.md``)."""
    if len(x) < 3 or np.ptp(x) == 0:
        return 1.0, 0.0
    return float(x @ y / (x @ x)), 0.0


def _minute_model(nights: Sequence[LabelledNight], l2: float, max_iter: int) -> ApnoeaModel:
    x = np.vstack([n.features[n.labels >= 0] for n in nights])
    y = np.concatenate([n.labels[n.labels >= 0] for n in nights]).astype(float)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("training needs scored minutes of both kinds (apnoea and normal)")
    mean, scale, w, b = _fit_logistic(x, y, l2, max_iter)
    return ApnoeaModel(APNOEA_MODEL, FEATURE_NAMES, mean, scale, w, b, (1.0, 0.0), 0.0)


def fit_apnoea_model(
    nights: Sequence[LabelledNight],
    *,
    name: str = APNOEA_MODEL,
    l2: float = 1e-2,
    max_iter: int = 500,
    inner_folds: int = 5,
    training: dict[str, Any] | None = None,
) -> ApnoeaModel:
    """The minute model on every scored minute of ``nights``, and the night maps on out-of-fold
    predictions of ``inner_folds`` folds grouped by subject (subjects dealt to folds in
    sorted order: deterministic, no random state)."""
    if any(n.features.shape[1] != len(FEATURE_NAMES) for n in nights):
        raise ValueError(f"features must have {len(FEATURE_NAMES)} columns")
    final = _minute_model(nights, l2, max_iter)
    subjects = sorted({n.subject for n in nights})
    k = min(inner_folds, len(subjects))
    fold = {s: i % k for i, s in enumerate(subjects)}
    rate: list[float] = []
    ahi_true: list[float] = []
    for g in range(k) if k >= 2 else ():
        rest = [n for n in nights if fold[n.subject] != g]
        if len({int(v) for n in rest for v in np.unique(n.labels[n.labels >= 0])}) < 2:
            continue  # this inner fold's training has one kind of minute only: no out-of-fold figures from it
        inner = _minute_model(rest, l2, max_iter)
        for n in (n for n in nights if fold[n.subject] == g):
            hours = len(n.labels) / 60.0
            rate.append(float((inner.predict_proba(n.features) >= THRESHOLD).sum()) / hours)
            ahi_true.append(np.nan if n.ahi is None else n.ahi)
    r, at = np.asarray(rate), np.asarray(ahi_true)
    ok_a = np.isfinite(at)
    ahi_map = _line(r[ok_a], at[ok_a])
    residual = np.abs(np.maximum(0.0, ahi_map[0] * r[ok_a] + ahi_map[1]) - at[ok_a])
    halfwidth = conformal_halfwidth(residual, INTERVAL_LEVEL) if len(residual) else float("nan")
    meta = {
        "l2": l2,
        "max_iter": max_iter,
        "inner_folds": k,
        "minutes": int(sum(int((n.labels >= 0).sum()) for n in nights)),
        "apnoea_minutes": int(sum(int((n.labels == 1).sum()) for n in nights)),
        **(training or {}),
    }
    return ApnoeaModel(
        name,
        FEATURE_NAMES,
        final.mean,
        final.scale,
        final.w,
        final.b,
        ahi_map,
        round(halfwidth, 6),
        meta,
    )
