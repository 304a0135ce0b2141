"""Sleep staging of a subject-night: a cardiac model chosen by input, plus bed-sensor evidence of wake.

Method: each 30-s epoch is staged by a :class:`core.nights.classifier.StageModel`:

* by default, and always from heart rate alone (a bed sensor, wrist PPG, a strap without
  RR): ``hr-mlp-v1`` on heart-rate features (:mod:`core.signals.hr_features`);
* with ``use_rr`` (``SLEEPSTACK_STAGING_RR=on``) and beat-to-beat intervals (a strap's RR)
  covering at least an hour of epochs (:func:`choose_source`): ``rr-mlp-v3`` on heart-rate
  and HRV features (:mod:`core.signals.hrv_features`). It was trained with RR missing on part of
  its nights, so epochs whose 5-min window has too few clean beats are staged from heart
  rate within the same night. It is opt-in because its only beat-to-beat training and
  validation nights are of apnoea patients: it stages them better (κ) than the heart-rate
  model, but its total sleep time is further off, there and on the simulator's healthy
  nights (docs/science.md, "Staging from beat-to-beat intervals").

When a bed sensor is there, two of its signals override the model with wake, as
actigraphy does (Cole R.J. et al., SLEEP 15:461-469, 1992; Sadeh A. et al., SLEEP
17:201-207, 1994): epochs out of bed, and epochs within one epoch of body movement.
And one overrides a wake call with sleep: an epoch in bed, without movement, in which a
breathing pause (>= 10 s without respiratory movement, :mod:`core.nights.bed_events`)
starts, or in one of its neighbours (the runs of a pause every 50-90 s leave every other
epoch without a start), is staged light sleep where the model called it wake. Obstructive apnoeas are
events of sleep (the upper airway collapses as muscle tone falls; AASM scoring counts
respiratory events in sleep only), and the heart-rate surge that ends each one (Guilleminault
et al., Lancet 1984) is what makes a heart-rate stager call a run of them wake: on
simulated nights with runs of apnoeas, the stager without this rule called 100 of 450
minutes of apnoeic sleep wake and dropped a third of the night's pauses from its index.
Breathing is not otherwise used (the training corpora have none).

Stage probabilities: the staging model's calibrated posterior (:meth:`StageModel.predict_proba
<core.nights.classifier.StageModel.predict_proba>`, temperature-scaled on held-out subjects:
:mod:`core.nights.calibration`). The called stage is the prior-balanced arg-max
(:mod:`core.nights.classifier`), so it is not always the most probable stage, and its own
probability (:meth:`Staging.confidence`) can be low. Where a bed rule called wake the
probabilities are the rule's: 1 for wake. Where the pause rule called sleep, wake's
probability is 0 and the model's odds between light, deep and REM are kept. A night
without heart rate has none (NaN).

Input: a DataFrame with one row per consecutive 30-s epoch of the night; ``hr_bpm``
(required; NaN where missing) and optionally ``movement`` (0-1 share of moving windows),
``presence`` (bool) and ``breathing_pauses`` (pauses starting in the epoch; NaN where the
bed saw nothing); optionally the night's beats (:class:`Beats`), times on the
epochs' clock. Output: :class:`Staging`, stage codes shape (n_epochs,). A night without any
heart rate is staged from the bed signals alone: wake where absent or moving, light sleep
elsewhere (the night summary marks it insufficient).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.contract.epochs import EPOCH_S
from core.nights.classifier import DEFAULT_MODEL, RR_MODEL, StageModel, StageModels
from core.nights.stages import SleepStage
from core.signals.hr_features import FEATURE_NAMES, hr_epoch_features
from core.signals.hrv_features import rr_epoch_features

__all__ = [
    "LOW_CONFIDENCE",
    "MIN_RR_EPOCHS",
    "Beats",
    "Staging",
    "choose_source",
    "stage_hr",
    "stage_night",
    "staging_features",
]

#: An epoch whose called stage has a probability below this is uncertain: the hypnogram shades it.
LOW_CONFIDENCE: Final = 0.5
#: Epochs with HRV features a night needs for the RR model (one hour).
MIN_RR_EPOCHS: Final = 120
_MOVING: Final = 0.05  # share of 10-s windows with movement above which an epoch counts as moving


@dataclass(frozen=True)
class Beats:
    """A night's beats: ``t_s`` (n_beats,) end of each interval, s; ``rr_ms`` (n_beats,) ms.

    Any order, zeros and artefacts allowed: the HRV features sort and clean them."""

    t_s: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    rr_ms: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class Staging:
    """Stage codes (n_epochs,), the model that staged them, which epochs had HRV features
    (n_epochs,): the RR model's input where it staged the night, and the stage probabilities
    (n_epochs, 4) in :class:`~core.nights.stages.SleepStage` order (module docstring; NaN rows
    where nothing staged the epoch)."""

    stages: npt.NDArray[np.int8]
    method: str
    with_rr: npt.NDArray[np.bool_]
    proba: npt.NDArray[np.float64]

    def confidence(self) -> npt.NDArray[np.float64]:
        """The probability of each epoch's called stage, shape (n_epochs,); NaN where unstaged."""
        out: npt.NDArray[np.float64] = np.take_along_axis(self.proba, self.stages[:, None].astype(int), axis=1)[:, 0]
        return out


def staging_features(
    hr_bpm: npt.ArrayLike, source: str, beats: Beats | None = None, epoch_t_s: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """A model's inputs, shape (n_epochs, len(core.nights.classifier.FEATURE_SETS[source])).

    ``epoch_t_s``: each epoch's start on the beats' clock (default 0, 30, 60 ... s); with
    ``source="rr"`` and no beats the HRV block is the "missing" input."""
    hr = hr_epoch_features(hr_bpm)
    if source == "hr":
        return hr
    epochs = np.arange(len(hr)) * EPOCH_S if epoch_t_s is None else np.asarray(epoch_t_s, dtype=float)
    b = beats or Beats()
    return np.hstack([hr, rr_epoch_features(b.t_s, b.rr_ms, epochs)])


def _with_rr(features: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    out: npt.NDArray[np.bool_] = features[:, -1] > 0  # rr_present, the HRV block's last column
    return out


def choose_source(features: npt.NDArray[np.float64]) -> str:
    """``rr`` when the HRV block of ``rr`` inputs covers :data:`MIN_RR_EPOCHS`, else ``hr``."""
    return "rr" if int(_with_rr(features).sum()) >= MIN_RR_EPOCHS else "hr"


def stage_hr(hr_bpm: npt.ArrayLike, model: StageModel) -> npt.NDArray[np.int8]:
    """Stages from epoch heart rates alone, shape (n_epochs,) -> (n_epochs,).

    A model trained on HRV too gets the "no RR" input."""
    return model.predict(staging_features(hr_bpm, model.source))


def stage_night(
    features: pd.DataFrame, beats: Beats | None = None, *, models: StageModels, use_rr: bool = False
) -> Staging:
    """Four-class stage per epoch (see module docstring for the method and inputs); ``models``
    are the committed pair (:func:`batch_layer.stage_models.bundled`)."""
    n = len(features)
    hr = features["hr_bpm"].to_numpy(dtype=float)
    with_rr, method = np.zeros(n, dtype=bool), DEFAULT_MODEL
    proba = np.full((n, len(SleepStage)), np.nan)
    if not np.isfinite(hr).any():
        stage = np.full(n, SleepStage.LIGHT, dtype=np.int8)
    else:
        x = staging_features(hr, "rr", beats) if beats is not None and len(beats.t_s) else None
        with_rr = _with_rr(x) if x is not None else with_rr
        if use_rr and x is not None and choose_source(x) == "rr":
            model, inputs, method = models.rr, x, RR_MODEL
        else:  # the heart-rate block leads the rr inputs
            model = models.hr
            inputs = x[:, : len(FEATURE_NAMES)] if x is not None else hr_epoch_features(hr)
        stage, proba = model.predict(inputs), model.predict_proba(inputs)
    wake = np.zeros(n, dtype=bool)
    if "presence" in features:
        wake |= ~features["presence"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if "movement" in features:
        move = features["movement"].astype(float).fillna(0.0)
        wake |= (move.rolling(3, center=True, min_periods=1).max() > _MOVING).to_numpy()
    if "breathing_pauses" in features:
        pauses = features["breathing_pauses"].astype(float).fillna(0.0)
        paused = (pauses.rolling(3, center=True, min_periods=1).max() > 0).to_numpy()
        asleep = paused & ~wake & (stage == SleepStage.WAKE)
        stage[asleep] = SleepStage.LIGHT
        proba[asleep, SleepStage.WAKE] = 0.0  # asleep: the model's odds between the sleep stages stand
        proba[asleep] /= proba[asleep].sum(axis=1, keepdims=True)
    stage[wake] = SleepStage.WAKE
    proba[wake] = np.eye(len(SleepStage))[SleepStage.WAKE]
    return Staging(stage, method, with_rr, proba)
