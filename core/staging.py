"""Sleep staging of a subject-night from per-epoch cardiorespiratory features.

Baseline method (rule-based, no trained model): the physiological signatures that
cardiorespiratory staging builds on — wake shows movement, absence from bed and high
heart rate; deep (N3) sleep the lowest heart rate with the most regular breathing; REM a
raised, variable heart rate with irregular breathing and no movement, rarely in the first
hour of sleep (Penzel T. et al., "Modulations of heart rate, ECG, and cardio-respiratory
coupling observed in polysomnography", Front. Physiol. 7, 2016; Sadeh A. et al. 1994 for
activity-based wake rules). Heart rate is normalised within the night (robust z-score),
so the rules need no per-subject calibration.

Input: a DataFrame with one row per 30-s epoch, sorted by ``epoch_start_ms``; columns
``hr_bpm`` (required; NaN allowed), and optionally ``movement`` (0-1), ``presence``
(bool), ``br_per_min``. Output: ``SleepStage`` codes, shape (n_epochs,).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.stages import SleepStage

__all__ = ["STAGING_METHOD", "stage_night"]

STAGING_METHOD: Final = "rules-v1"
_ONSET_QUIET_EPOCHS: Final = 10  # 5 min without movement marks sleep onset
_REM_LATENCY_MIN_EPOCHS: Final = 90  # no REM in the first 45 min after onset


def _robust_z(x: pd.Series) -> pd.Series:
    med = x.median()
    iqr = x.quantile(0.75) - x.quantile(0.25)
    return (x - med) / (iqr / 1.349 if iqr > 0 else 1.0)


def stage_night(features: pd.DataFrame) -> npt.NDArray[np.int8]:
    """Four-class stage per epoch (see module docstring for the method and inputs)."""
    n = len(features)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    hr = features["hr_bpm"].astype(float).interpolate(limit_direction="both")
    move = features.get("movement", pd.Series(np.zeros(n), index=features.index)).astype(float).fillna(0.0)
    present = (
        features.get("presence", pd.Series(np.ones(n, dtype=bool), index=features.index)).fillna(False).astype(bool)
    )
    br = features.get("br_per_min", pd.Series(np.full(n, np.nan), index=features.index)).astype(float)

    moving = move.rolling(3, center=True, min_periods=1).max() > 0.05
    wake = (~present) | moving
    if hr.notna().any():
        z = _robust_z(hr).rolling(5, center=True, min_periods=1).median()
    else:
        z = pd.Series(np.zeros(n), index=features.index)
    wake |= (z > 2.0).to_numpy()

    # sleep onset: first run of quiet, present epochs; everything before it is wake
    quiet = (~wake).astype(int).rolling(_ONSET_QUIET_EPOCHS).sum() >= _ONSET_QUIET_EPOCHS
    onset = int(np.argmax(quiet.to_numpy())) - _ONSET_QUIET_EPOCHS + 1 if quiet.any() else n
    wake.iloc[: max(onset, 0)] = True

    br_var = br.rolling(9, center=True, min_periods=3).std()
    var_ref = br_var[~wake].median() if (~wake).any() and br_var[~wake].notna().any() else np.nan
    irregular = (br_var > var_ref).fillna(False) if np.isfinite(var_ref) else pd.Series(False, index=features.index)
    regular = (br_var < var_ref).fillna(True) if np.isfinite(var_ref) else pd.Series(True, index=features.index)

    stage = np.full(n, SleepStage.LIGHT, dtype=np.int8)
    since_onset = np.arange(n) - max(onset, 0)
    deep = (z < -0.5) & regular
    rem = (z > 0.2) & irregular & (since_onset > _REM_LATENCY_MIN_EPOCHS)
    stage[deep.to_numpy()] = SleepStage.DEEP
    stage[rem.to_numpy()] = SleepStage.REM
    stage[wake.to_numpy()] = SleepStage.WAKE
    # a stage lasts at least 1.5 min: smooth isolated epochs with a rolling mode
    s = pd.Series(stage)
    smoothed = s.rolling(3, center=True, min_periods=1).apply(lambda w: np.bincount(w.astype(int)).argmax(), raw=True)
    out = smoothed.to_numpy().astype(np.int8)
    out[wake.to_numpy()] = SleepStage.WAKE
    return out
