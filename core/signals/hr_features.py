"""Per-epoch heart-rate features for sleep staging from heart rate alone.

The staging model sees only the heart rate of each 30-s epoch, so it works the same for
any source: a strap's RR intervals, a bed sensor's beats, or wrist PPG heart rate sampled
irregularly (~every 5 s), each reduced to one mean per epoch. The features follow the
cardiac signatures used by heart-rate staging (Walch et al., SLEEP 2019, "Sleep stage
prediction with raw acceleration and photoplethysmography heart rate data derived from a
consumer wearable device", doi:10.1093/sleep/zsz180: windowed, night-normalised heart
rate and its variability plus a clock proxy; Radha et al., Sci. Rep. 9:14149, 2019:
multi-minute context around each epoch): heart rate is lowest and steadiest in deep
sleep, raised and variable in REM and wake, and shows surges at arousals.

Input ``hr_bpm`` shape (n_epochs,), bpm on the consecutive 30-s grid of one night, NaN
where the epoch has no heart rate (gaps are interpolated for context; the share of
missing epochs is reported separately as coverage). Output shape (n_epochs,
len(FEATURE_NAMES)), dimensionless (robust z units, ranks, hours).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["FEATURE_NAMES", "hr_epoch_features"]

_MEAN_WINDOWS: Final = (3, 5, 11, 21, 41, 81, 161, 241)  # epochs (1.5 min .. 2 h), centred
_SPREAD_WINDOWS: Final = (5, 11, 21, 41)
_SURGE_WINDOWS: Final = (5, 11, 21)
_FLOOR_WINDOWS: Final = (161, 241)
_EDGE_EPOCHS: Final = 60.0  # decay (epochs) of the start-/end-of-recording terms
_EPOCH_H: Final = 30.0 / 3600.0

FEATURE_NAMES: Final = (
    "z",
    "rank",
    *(f"mean_{w}" for w in _MEAN_WINDOWS),
    *(f"{k}_{w}" for w in _SPREAD_WINDOWS for k in ("std", "absdiff", "min", "max")),
    *(f"floor_{w}" for w in _FLOOR_WINDOWS),
    "above_floor",
    "dev_41",
    "dev_5_81",
    "slope_5min",
    *(f"surge_{w}" for w in _SURGE_WINDOWS),
    "elapsed_frac",
    "elapsed_frac_sq",
    "elapsed_h",
    "remaining_h",
    "start_level",
    "end_level",
)


def _robust_z(hr: pd.Series) -> pd.Series:
    med = hr.median()
    iqr = hr.quantile(0.75) - hr.quantile(0.25)
    return (hr - med) / (iqr / 1.349 if iqr > 0 else 1.0)


def hr_epoch_features(hr_bpm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Feature matrix (n_epochs, len(FEATURE_NAMES)) of one night's epoch heart rates."""
    hr = pd.Series(np.asarray(hr_bpm, dtype=float))
    n = len(hr)
    if n == 0 or hr.notna().sum() == 0:
        raise ValueError("hr_epoch_features needs at least one epoch with a heart rate")
    hr = hr.interpolate(limit_direction="both")
    z = _robust_z(hr)
    f: dict[str, pd.Series | npt.NDArray[np.float64]] = {"z": z, "rank": hr.rank(pct=True)}

    def roll(w: int, min_periods: int = 1) -> pd.api.typing.Rolling[pd.Series]:
        return z.rolling(w, center=True, min_periods=min_periods)

    for w in _MEAN_WINDOWS:
        f[f"mean_{w}"] = roll(w).mean()
    absdiff = z.diff().abs()
    for w in _SPREAD_WINDOWS:
        f[f"std_{w}"] = roll(w, 2).std().fillna(0.0)
        f[f"absdiff_{w}"] = absdiff.rolling(w, center=True, min_periods=1).mean().fillna(0.0)
        f[f"min_{w}"] = roll(w).min()
        f[f"max_{w}"] = roll(w).max()
    for w in _FLOOR_WINDOWS:
        f[f"floor_{w}"] = roll(w).quantile(0.1)
    f["above_floor"] = f["mean_5"] - f["floor_161"]
    f["dev_41"] = z - f["mean_41"]
    f["dev_5_81"] = f["mean_5"] - f["mean_81"]
    ahead = z.rolling(11, min_periods=1).mean()
    f["slope_5min"] = (ahead.shift(-10).bfill().ffill() - ahead).fillna(0.0)
    surge = z.diff().clip(lower=0).fillna(0.0)
    for w in _SURGE_WINDOWS:
        f[f"surge_{w}"] = surge.rolling(w, center=True, min_periods=1).max()
    k = np.arange(n, dtype=float)
    frac = k / max(n - 1, 1)
    f["elapsed_frac"] = frac
    f["elapsed_frac_sq"] = frac**2
    f["elapsed_h"] = k * _EPOCH_H
    f["remaining_h"] = (n - 1 - k) * _EPOCH_H
    f["start_level"] = f["mean_11"] * np.exp(-k / _EDGE_EPOCHS)
    f["end_level"] = f["mean_11"] * np.exp(-(n - 1 - k) / _EDGE_EPOCHS)
    out: npt.NDArray[np.float64] = np.column_stack([np.asarray(f[name], dtype=float) for name in FEATURE_NAMES])
    return out
