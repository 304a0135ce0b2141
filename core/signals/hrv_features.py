"""Per-epoch heart-rate-variability features from beat-to-beat (RR) intervals, for sleep staging.

Sleep stages leave their mark on the autonomic balance that beat-to-beat intervals carry and
a 5-s heart rate does not: vagal (high-frequency) variability rises in deep sleep, REM and
wake bring sympathetic surges, lower RMSSD and higher LF/HF, and the short-term fractal
scaling of the NN series (DFA alpha-1) differs between NREM and REM/wake (Task Force of the ESC
and NASPE, Circulation 93(5):1043-1065, 1996; Penzel et al., IEEE Trans. Biomed. Eng.
50(10):1143-1151, 2003, "Dynamics of heart rate and sleep stages in normals and patients
with sleep apnea"; Radha et al., Sci. Rep. 9:14149, 2019).

Per 30-s epoch, over the NN intervals in a 5-min window centred on it (Task Force's
short-term recording length):

* time domain: ``log_rmssd`` (ln ms), ``log_sdnn`` (ln ms), ``pnn50`` (fraction of
  successive differences > 50 ms, over adjacent kept beats only);
* frequency domain: the NN series resampled at 4 Hz (cubic spline, as Kubios HRV does:
  linear interpolation flattens a 0.25 Hz breathing oscillation sampled once a second)
  and Welch's periodogram: ``log_lf`` (0.04-0.15 Hz), ``log_hf`` (0.15-0.40 Hz), ``log_lf_hf``
  (ln ms² and ln of the ratio);
* nonlinear: ``dfa_a1``, detrended fluctuation analysis over box sizes 4-16 beats
  (Peng et al., Chaos 5(1):82-87, 1995); ``sampen``, sample entropy of the NN series with
  template length m = 2 and tolerance r = 0.2 SD (Richman & Moorman, Am. J. Physiol. Heart
  Circ. Physiol. 278:H2039-H2049, 2000), lower and more regular in deep sleep than in REM
  and wake (Vigo et al., Physica A 389(5):1013-1021, 2010);
* ``coverage``: the share of the window's 5 min that kept NN intervals span.

The last column, ``rr_present``, is that coverage unscored (0 where the window had too few
beats or the night has no RR at all), so one model can tell real HRV from missing input:
:func:`rr_epoch_features` of no beats is the "no RR" input that heart-rate-only nights get.

Artefacts and ectopic beats are removed first by :func:`core.signals.hrv.clean_rr` (physiological
range and a 20 % deviation from the local median); an interval whose neighbour was
removed does not enter a successive difference. A window with fewer than
:data:`MIN_BEATS` kept intervals (a gap, a detached strap, a night's edge) has missing
features: they are reported as 0 after the night's robust z-scoring (the night's median),
with ``coverage`` telling the model how much it saw. Nothing here raises on bad beats:
unsorted beat times are sorted, zeros and negative intervals are dropped by cleaning, an
empty or short night gives all-missing features.

Each feature is z-scored per night (median and IQR), and smoothed context is appended
(centred means over 5, 21 and 61 epochs, standard deviations over 11 and 41 epochs), so
the model sees the multi-minute course around each epoch; ``rr_present`` comes last.

Inputs: ``beat_t_s`` shape (n_beats,) the end of each interval, s; ``rr_ms`` shape
(n_beats,) ms; ``epoch_t_s`` shape (n_epochs,) each epoch's start, s, on the same clock.
Output shape (n_epochs, len(RR_FEATURE_NAMES)), dimensionless (robust z units; coverage
in [0, 1] before scoring; ``rr_present`` in [0, 1]).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.interpolate import CubicSpline
from scipy.signal import welch

from core.contract.epochs import EPOCH_S
from core.signals.hrv import clean_rr

__all__ = ["BASE_FEATURES", "MIN_BEATS", "RR_FEATURE_NAMES", "WINDOW_S", "rr_epoch_features"]

#: Window around each epoch's centre, s (a short-term HRV recording).
WINDOW_S: Final = 300.0
#: Fewest kept NN intervals for a window's features.
MIN_BEATS: Final = 30
_RESAMPLE_HZ: Final = 4.0
_LF: Final = (0.04, 0.15)
_HF: Final = (0.15, 0.40)
_DFA_BOXES: Final = np.arange(4, 17)
_SAMPEN_M: Final = 2
_SAMPEN_R: Final = 0.2  # tolerance, in SDs of the window's NN series
_MEAN_WINDOWS: Final = (5, 21, 61)
_SPREAD_WINDOWS: Final = (11, 41)

BASE_FEATURES: Final = (
    "log_rmssd",
    "log_sdnn",
    "pnn50",
    "log_lf",
    "log_hf",
    "log_lf_hf",
    "dfa_a1",
    "sampen",
    "coverage",
)
RR_FEATURE_NAMES: Final = (
    *BASE_FEATURES,
    *(f"{f}_mean_{w}" for w in _MEAN_WINDOWS for f in BASE_FEATURES),
    *(f"{f}_std_{w}" for w in _SPREAD_WINDOWS for f in BASE_FEATURES),
    "rr_present",
)


def _dfa_alpha1(nn_ms: npt.NDArray[np.float64]) -> float:
    """Short-term DFA scaling exponent of an NN series (Peng et al. 1995), boxes of 4-16 beats."""
    if len(nn_ms) < 4 * _DFA_BOXES[-1]:
        return float("nan")
    profile = np.cumsum(nn_ms - nn_ms.mean())
    fluctuation = []
    for n in _DFA_BOXES:
        k = len(profile) // n
        boxes = profile[: k * n].reshape(k, n)
        x = np.arange(n, dtype=float)
        slope, intercept = np.polyfit(x, boxes.T, 1)
        trend = np.outer(slope, x) + intercept[:, None]
        fluctuation.append(np.sqrt(np.mean((boxes - trend) ** 2)))
    if min(fluctuation) <= 0.0:  # a paced, perfectly regular series has no fluctuation to scale
        return float("nan")
    return float(np.polyfit(np.log(_DFA_BOXES), np.log(fluctuation), 1)[0])


def _sample_entropy(nn_ms: npt.NDArray[np.float64]) -> float:
    """SampEn(m=2, r=0.2 SD) of an NN series, shape (n,) (Richman & Moorman 2000); NaN if undefined.

    -ln(A/B): B counts pairs of length-m templates within r of each other (Chebyshev
    distance, self-matches excluded), A the pairs that still match at length m + 1; both
    over the same n - m template starts.
    """
    n = len(nn_ms)
    sd = float(nn_ms.std())
    if n < 10 * _SAMPEN_M or sd <= 0:
        return float("nan")
    d = np.abs(nn_ms[:, None] - nn_ms[None, :]) <= _SAMPEN_R * sd  # (n, n): |x_i - x_j| within r
    starts = n - _SAMPEN_M
    match_m = np.ones((starts, starts), dtype=bool)
    for k in range(_SAMPEN_M):
        match_m &= d[k : k + starts, k : k + starts]
    match_m1 = match_m & d[_SAMPEN_M : _SAMPEN_M + starts, _SAMPEN_M : _SAMPEN_M + starts]
    b = (int(match_m.sum()) - starts) // 2  # pairs i < j; the diagonal (self-matches) removed
    a = (int(match_m1.sum()) - starts) // 2
    return float(-np.log(a / b)) if a > 0 and b > 0 else float("nan")


def _window_features(
    t: npt.NDArray[np.float64], nn: npt.NDArray[np.float64], adjacent: npt.NDArray[np.bool_]
) -> list[float]:
    """The base features of one window's kept NN intervals (``adjacent``: diff i uses two kept neighbours)."""
    diffs = np.diff(nn)[adjacent[1:]]
    rmssd = float(np.sqrt(np.mean(diffs**2))) if len(diffs) >= 2 else float("nan")
    pnn50 = float(np.mean(np.abs(diffs) > 50.0)) if len(diffs) >= 2 else float("nan")
    grid = np.arange(t[0], t[-1], 1.0 / _RESAMPLE_HZ)
    lf = hf = float("nan")
    rising = np.concatenate([[True], np.diff(t) > 0])  # the spline needs strictly increasing times
    if len(grid) >= 64 and rising.sum() >= 4:
        x = CubicSpline(t[rising], nn[rising])(grid)
        f, p = welch(x - x.mean(), fs=_RESAMPLE_HZ, nperseg=min(256, len(x)))
        df = f[1] - f[0]
        lf = float(p[(f >= _LF[0]) & (f < _LF[1])].sum() * df)
        hf = float(p[(f >= _HF[0]) & (f < _HF[1])].sum() * df)
    return [
        np.log(rmssd + 1.0),
        np.log(float(nn.std(ddof=1)) + 1.0),
        pnn50,
        np.log(lf + 1.0),
        np.log(hf + 1.0),
        np.log((lf + 1e-3) / (hf + 1e-3)),
        _dfa_alpha1(nn),
        _sample_entropy(nn),
        min(1.0, float(t[-1] - t[0]) / WINDOW_S),
    ]


def _robust_z(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per column: (x - median) / IQR over the night; missing values become 0 (the median)."""
    out = np.zeros_like(a)
    for j in range(a.shape[1]):
        col = a[:, j]
        ok = np.isfinite(col)
        if ok.sum() < 2:
            continue
        med = float(np.median(col[ok]))
        iqr = float(np.subtract(*np.percentile(col[ok], [75, 25])))
        out[ok, j] = (col[ok] - med) / (iqr if iqr > 0 else 1.0)
    return out


def rr_epoch_features(
    beat_t_s: npt.ArrayLike, rr_ms: npt.ArrayLike, epoch_t_s: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """HRV features of every epoch (see the module docstring): shape (n_epochs, len(RR_FEATURE_NAMES))."""
    t = np.asarray(beat_t_s, dtype=float)
    rr = np.asarray(rr_ms, dtype=float)
    epochs = np.asarray(epoch_t_s, dtype=float)
    base = np.full((len(epochs), len(BASE_FEATURES)), np.nan)
    if len(t) and len(t) == len(rr):
        order = np.argsort(t, kind="stable")
        t, rr = t[order], rr[order]
        keep = clean_rr(rr) & np.isfinite(t)
        adjacent = keep & np.concatenate([[False], keep[:-1]])
        centres = epochs + EPOCH_S / 2
        lo = np.searchsorted(t, centres - WINDOW_S / 2)
        hi = np.searchsorted(t, centres + WINDOW_S / 2)
        for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
            k = keep[a:b]
            if k.sum() >= MIN_BEATS:
                base[i] = _window_features(t[a:b][k], rr[a:b][k], adjacent[a:b][k])
    z = _robust_z(base)
    frame = pd.DataFrame(z)
    means = [frame.rolling(w, center=True, min_periods=1).mean().to_numpy() for w in _MEAN_WINDOWS]
    spreads = [frame.rolling(w, center=True, min_periods=2).std().fillna(0.0).to_numpy() for w in _SPREAD_WINDOWS]
    present = np.nan_to_num(base[:, -1:], nan=0.0)
    out: npt.NDArray[np.float64] = np.hstack([z, *means, *spreads, present])
    return out
