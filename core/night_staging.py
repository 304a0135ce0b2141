"""Sleep staging of a subject-night: the heart-rate model, plus bed-sensor evidence of wake.

Method: each 30-s epoch is staged by :class:`core.stage_classifier.StageModel` from heart-rate
features alone (:mod:`core.hr_features`), so the same model serves a strap, a bed
sensor or wrist PPG. When a bed sensor is there, two of its signals override the model
with wake, as actigraphy does (Cole R.J. et al., SLEEP 15:461-469, 1992; Sadeh A. et al.,
SLEEP 17:201-207, 1994): epochs out of bed, and epochs within one epoch of body movement.
Breathing is not used for staging (the training corpus has none); it feeds the night's
breathing-pause index instead.

Input: a DataFrame with one row per consecutive 30-s epoch of the night; ``hr_bpm``
(required; NaN where missing) and optionally ``movement`` (0-1 share of moving windows)
and ``presence`` (bool). Output: :class:`~core.sleep_stages.SleepStage` codes, shape (n_epochs,).
A night without any heart rate is staged from the bed signals alone: wake where absent or
moving, light sleep elsewhere (the night summary marks it insufficient).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.hr_features import hr_epoch_features
from core.sleep_stages import SleepStage
from core.stage_classifier import DEFAULT_MODEL, StageModel, load_model

__all__ = ["STAGING_METHOD", "default_model", "stage_hr", "stage_night"]

STAGING_METHOD: Final = DEFAULT_MODEL
_MOVING: Final = 0.05  # share of 10-s windows with movement above which an epoch counts as moving


@lru_cache(maxsize=1)
def default_model() -> StageModel:
    return load_model(DEFAULT_MODEL)


def stage_hr(hr_bpm: npt.ArrayLike, model: StageModel | None = None) -> npt.NDArray[np.int8]:
    """Stages from epoch heart rates alone, shape (n_epochs,) -> (n_epochs,)."""
    return (model or default_model()).predict(hr_epoch_features(hr_bpm))


def stage_night(features: pd.DataFrame, model: StageModel | None = None) -> npt.NDArray[np.int8]:
    """Four-class stage per epoch (see module docstring for the method and inputs)."""
    n = len(features)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    hr = features["hr_bpm"].to_numpy(dtype=float)
    has_hr = np.isfinite(hr).any()
    stage = stage_hr(hr, model) if has_hr else np.full(n, SleepStage.LIGHT, dtype=np.int8)
    wake = np.zeros(n, dtype=bool)
    if "presence" in features:
        wake |= ~features["presence"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if "movement" in features:
        move = features["movement"].astype(float).fillna(0.0)
        wake |= (move.rolling(3, center=True, min_periods=1).max() > _MOVING).to_numpy()
    stage[wake] = SleepStage.WAKE
    return stage
