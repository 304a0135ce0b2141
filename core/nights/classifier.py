"""A small neural network that stages 30-s epochs from heart-rate features.

Model: standardised features (:mod:`core.signals.hr_features`) -> one tanh hidden layer ->
softmax over the four :class:`~core.nights.stages.SleepStage` classes; a multilayer perceptron
trained by L-BFGS on cross-entropy with an L2 penalty (Bishop, *Pattern Recognition and
Machine Learning*, 2006, ch. 5). Training epochs are weighted by ``prior ** -0.5`` so the
rare classes (wake, deep) are not drowned by light sleep. :meth:`StageModel.predict_proba`
divides that weighting back out (a calibrated posterior); :meth:`StageModel.predict`
keeps it, i.e. takes the arg-max of the posterior times ``prior ** -0.5``, which trades
some light-sleep accuracy for wake and deep recall and gave the best kappa in
cross-validation. Hyper-parameters were fixed by leave-subjects-out cross-validation on the
training corpus, never per night.

:meth:`StageModel.predict_proba` divides the networks' logits by the model's ``temperature``
before the softmax (temperature scaling, Guo et al. 2017: :mod:`core.nights.calibration`),
fitted on held-out subjects' logits when the model is trained, so its probabilities are
calibrated; the stage called does not depend on it.

A model may be a seed ensemble (Dietterich, "Ensemble methods in machine learning", MCS
2000): M networks trained alike from different random starts, whose posteriors are
averaged. On small corpora the single network's figures move by several hundredths of κ
from seed to seed; averaging removes most of that spread.

The artefact is JSON (numbers and strings only: loading it runs no code) holding the
version, the feature names it expects, the standardisation, the weights and the ids of
the training subjects, so an evaluation can tell which nights the model has seen.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from core.nights.apnoea import ApnoeaModel
from core.nights.calibration import scaled
from core.signals.hr_features import FEATURE_NAMES
from core.signals.hrv_features import RR_FEATURE_NAMES

__all__ = [
    "DEFAULT_MODEL",
    "FEATURE_SETS",
    "MEMBERS",
    "RR_MODEL",
    "StageModel",
    "StageModels",
    "fit_stage_model",
]

DEFAULT_MODEL: Final = "hr-mlp-v1"
#: The model for nights with beat-to-beat intervals (strap RR): heart rate and HRV features,
#: trained on both corpora with RR missing on part of its nights (``rr_present`` 0).
RR_MODEL: Final = "rr-mlp-v3"
#: Input sets a model may be trained on: heart rate alone, or heart rate and HRV.
FEATURE_SETS: Final = {"hr": FEATURE_NAMES, "rr": (*FEATURE_NAMES, *RR_FEATURE_NAMES)}
#: Networks per model of each input set (seed ensembles; chosen in grouped cross-validation).
MEMBERS: Final = {"hr": 1, "rr": 3}
_N_CLASSES: Final = 4
_FORMAT: Final = "sleepstack.stage-model/1"
_MEMBER_ARRAYS: Final = ("w1", "b1", "w2", "b2")

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StageModel:
    """Weights of the staging networks; shapes: w1 (M, F, H), b1 (M, H), w2 (M, H, 4), b2 (M, 4)
    for M ensemble members (M = 1: one network)."""

    name: str
    feature_names: tuple[str, ...]
    mean: Array
    scale: Array
    w1: Array
    b1: Array
    w2: Array
    b2: Array
    log_prior_shift: Array  # (4,) log of the training weights' class shift, removed at prediction
    training: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0  # divides the logits of predict_proba (core.nights.calibration)

    @property
    def members(self) -> int:
        return int(self.w1.shape[0])

    @property
    def source(self) -> str:
        """The input set it reads: a key of :data:`FEATURE_SETS` (``hr`` or ``rr``)."""
        return next(k for k, names in FEATURE_SETS.items() if names == self.feature_names)

    def _outputs(self, features: npt.ArrayLike) -> Array:
        """Each member's network output, shape (M, n_epochs, 4)."""
        x = (np.asarray(features, dtype=float) - self.mean) / self.scale
        out: Array = np.stack(
            [np.tanh(x @ w1 + b1) @ w2 + b2 for w1, b1, w2, b2 in zip(self.w1, self.b1, self.w2, self.b2, strict=True)]
        )
        return out

    def logits(self, features: npt.ArrayLike) -> Array:
        """Each member's network output less the prior shift, shape (M, n_epochs, 4)."""
        out: Array = self._outputs(features) - self.log_prior_shift
        return out

    def predict_proba(self, features: npt.ArrayLike) -> Array:
        """Calibrated posterior stage probabilities, shape (n_epochs, 4), from features (n_epochs, F):
        the members' mean of softmax(:meth:`logits` / ``temperature``) (Guo et al. 2017)."""
        return scaled(self.logits(features), self.temperature)

    def predict(self, features: npt.ArrayLike) -> npt.NDArray[np.int8]:
        """Stage codes, shape (n_epochs,): the prior-balanced arg-max (see module docstring)."""
        out: npt.NDArray[np.int8] = scaled(self._outputs(features)).argmax(axis=1).astype(np.int8)
        return out

    def to_json(self) -> str:
        doc = {
            "format": _FORMAT,
            "name": self.name,
            "feature_names": list(self.feature_names),
            "arrays": {
                k: (a[0] if k in _MEMBER_ARRAYS and self.members == 1 else a).tolist()  # one network: its own arrays
                for k in ("mean", "scale", "w1", "b1", "w2", "b2", "log_prior_shift")
                for a in [np.asarray(getattr(self, k))]
            },
            "temperature": self.temperature,
            "training": self.training,
        }
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StageModel:
        doc = json.loads(text)
        if doc.get("format") != _FORMAT:
            raise ValueError(f"not a sleepstack stage model (format {doc.get('format')!r}, expected {_FORMAT!r})")
        names = tuple(doc["feature_names"])
        if names not in FEATURE_SETS.values():
            raise ValueError(f"model {doc['name']!r} expects other features than this code computes")
        arrays = {k: np.asarray(v, dtype=float) for k, v in doc["arrays"].items()}
        if arrays["w1"].ndim == 2:  # one network
            arrays.update({k: arrays[k][None] for k in _MEMBER_ARRAYS})
        temperature = float(doc.get("temperature", 1.0))  # artefacts before calibration: none
        return cls(name=doc["name"], feature_names=names, training=doc["training"], temperature=temperature, **arrays)


@dataclass(frozen=True)
class StageModels:
    """The committed models staging chooses between: ``hr`` (heart rate alone) and ``rr``
    (heart rate and HRV), and the apnoea detector the nightly job runs on a strap's beats
    (:mod:`core.nights.apnoea`; None: no apnoea columns). The core never reads them:
    :func:`batch_layer.stage_models.bundled` loads the artefacts shipped in
    ``core/nights/models/`` and callers pass them in."""

    hr: StageModel
    rr: StageModel
    apnoea: ApnoeaModel | None = None

    def for_source(self, source: str) -> StageModel:
        """The model of an input set (``hr`` or ``rr``)."""
        return self.rr if source == "rr" else self.hr


def _unpack(p: Array, f: int, h: int) -> tuple[Array, Array, Array, Array]:
    i = f * h
    w1, b1 = p[:i].reshape(f, h), p[i : i + h]
    j = i + h + h * _N_CLASSES
    return w1, b1, p[i + h : j].reshape(h, _N_CLASSES), p[j:]


def fit_stage_model(
    nights: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    name: str = DEFAULT_MODEL,
    hidden: int = 24,
    l2: float = 1e-3,
    max_iter: int = 300,
    seed: int = 0,
    members: int = 1,
    training: dict[str, Any] | None = None,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
) -> StageModel:
    """Train on ``nights`` of (features (n, F), stages (n,)); stages < 0 (unscored) are skipped.

    ``feature_names`` names the F columns (one of :data:`FEATURE_SETS`); ``members``
    networks are trained from the random starts of seeds ``seed`` .. ``seed + members - 1``."""
    x = np.vstack([np.asarray(f, dtype=float) for f, _ in nights])
    y = np.concatenate([np.asarray(s, dtype=int) for _, s in nights])
    if x.shape[1] != len(feature_names):
        raise ValueError(f"{x.shape[1]} feature columns, but {len(feature_names)} feature names")
    keep = y >= 0
    x, y = x[keep], y[keep]
    if len(y) == 0:
        raise ValueError("no scored epochs to train on")
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    xs = (x - mean) / scale
    prior = np.bincount(y, minlength=_N_CLASSES) / len(y)
    if (prior == 0).any():
        raise ValueError(f"every stage needs training epochs; class counts {np.bincount(y, minlength=_N_CLASSES)}")
    weight = prior[y] ** -0.5
    weight /= weight.sum()
    shift = prior**0.5  # the weighted training set's class balance relative to the data's
    log_shift = np.log(shift / shift.sum())
    f, h = xs.shape[1], hidden
    onehot = np.eye(_N_CLASSES)[y]
    rows = np.arange(len(y))

    def loss(p: Array) -> tuple[float, Array]:
        w1, b1, w2, b2 = _unpack(p, f, h)
        a = np.tanh(xs @ w1 + b1)
        z = a @ w2 + b2
        z -= z.max(axis=1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(axis=1, keepdims=True)
        value = -float(weight @ np.log(prob[rows, y] + 1e-12)) + l2 * float((w1**2).sum() + (w2**2).sum())
        g = (prob - onehot) * weight[:, None]
        ga = (g @ w2.T) * (1.0 - a**2)
        grad = np.concatenate([(xs.T @ ga + 2 * l2 * w1).ravel(), ga.sum(0), (a.T @ g + 2 * l2 * w2).ravel(), g.sum(0)])
        return value, grad

    nets = []
    for member_seed in range(seed, seed + members):
        rng = np.random.default_rng(member_seed)
        p0 = np.concatenate(
            [
                rng.normal(0.0, f**-0.5, f * h),
                np.zeros(h),
                rng.normal(0.0, h**-0.5, h * _N_CLASSES),
                np.zeros(_N_CLASSES),
            ]
        )
        res = minimize(loss, p0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
        nets.append(_unpack(res.x, f, h))
    w1, b1, w2, b2 = (np.stack(a) for a in zip(*nets, strict=True))
    meta = {
        "hidden": hidden,
        "l2": l2,
        "max_iter": max_iter,
        "seed": seed,
        **({"members": members} if members > 1 else {}),
        "epochs": len(y),
        "class_counts": np.bincount(y, minlength=_N_CLASSES).tolist(),
        **(training or {}),
    }
    return StageModel(name, feature_names, mean, scale, w1, b1, w2, b2, log_shift, meta)
