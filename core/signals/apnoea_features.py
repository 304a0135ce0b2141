"""Per-minute features for apnoea detection from beat-to-beat (RR) intervals alone.

An obstructive apnoea or hypopnoea slows the heart while breathing is blocked and speeds it
up when breathing resumes, so a run of events leaves a cyclic variation of heart rate
(CVHR) of 25-120 s period (Guilleminault et al., Lancet 1984). The PhysioNet/Computers in
Cardiology Challenge 2000 scored apnoea detection per one-minute segment of overnight ECGs
(Penzel T. et al., "The Apnea-ECG Database", Computers in Cardiology 27:255-258, 2000).

What tells apnoea minutes from others across *people* is that the heart rate cycles
**regularly**, at apnoea periods, not how much it varies: the size of heart-rate swings
differs several-fold between people (age, autonomic tone, drugs), while the regularity of
the cycles does not. These features therefore measure the periodicity of the heart rate by
its autocorrelation, the principle of Hayano J. et al.'s auto-correlated wave detection
(ACAT; Circ. Arrhythm. Electrophysiol. 4(1):64-72, 2011), and keep one amplitude feature.
(The earlier feature set, after de Chazal P. et al., IEEE Trans. Biomed. Eng.
50(6):686-696, 2003: time-domain RR statistics, RR band powers and CVHR counts, scored
0.756 minute accuracy in subject-grouped cross-validation on the Apnea-ECG learning set,
these 0.82; adding the old features to these lowered it to 0.80: ``docs/evaluation.md``.)

Method. Beats are cleaned by :func:`core.signals.hrv.clean_rr` (the core's rules: range,
local median, spikes); the kept NN intervals are interpolated onto a :data:`FS_HZ` grid
(stretches of more than :data:`MAX_GAP_S` without a kept beat count as missing), turned
into heart rate (bpm) and band-passed to :data:`BAND_HZ` (2nd-order Butterworth, zero
phase). Per one-minute segment ``m`` (``[60 m, 60 m + 60)`` s from the record's start),
over the :data:`WINDOW_MIN`-minute window centred on it (mean removed; the biased
autocorrelation, normalised to 1 at lag 0):

* ``acf_peak``: the largest autocorrelation at lags :data:`CYCLE_LAGS_S` (how regular the
  cycling is, -1..1);
* ``acf_depth``: ``acf_peak`` minus the smallest autocorrelation at lags
  :data:`HALF_CYCLE_LAGS_S` (a cycle has a trough at half its period);
* ``cycle_s``: the lag of ``acf_peak``, s (apnoea cycles are 30-90 s);
* ``cycle_amp``: ln(1 + RMS of the band-passed heart rate), ln(1 + bpm);
* ``coverage``: the share of the minute's grid with kept beats.

A window less than 60 % covered gives missing features, filled with the night's median.
The :data:`PERIODICITY` features are also returned as centred means over
:data:`CONTEXT_MIN` minutes (apnoeas come in runs of minutes). No feature is scored
against the night's own statistics: that hides how apnoeic the whole night is.

Inputs: ``beat_t_s`` shape (n_beats,) end of each interval, s from the record's start;
``rr_ms`` shape (n_beats,) ms; ``n_minutes`` the segments to describe. Output shape
(n_minutes, len(FEATURE_NAMES)). Nothing here raises on bad beats: a record with too few
clean beats gives all-missing (filled) features with ``coverage`` 0.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.signal import butter, sosfiltfilt

from core.signals.hrv import clean_rr

__all__ = [
    "BAND_HZ",
    "CONTEXT_MIN",
    "CYCLE_LAGS_S",
    "FEATURE_NAMES",
    "FS_HZ",
    "HALF_CYCLE_LAGS_S",
    "MAX_GAP_S",
    "PERIODICITY",
    "WINDOW_MIN",
    "minute_features",
]

#: Resampling rate of the heart rate, Hz.
FS_HZ: Final = 2.0
#: Longer stretches without a kept beat are missing, s.
MAX_GAP_S: Final = 10.0
#: Pass band of the heart rate: cycles of 15-150 s, Hz.
BAND_HZ: Final = (1.0 / 150.0, 1.0 / 15.0)
#: Window centred on each minute, minutes.
WINDOW_MIN: Final = 3
#: Lags searched for the cycle's peak, s.
CYCLE_LAGS_S: Final = (20.0, 120.0)
#: Lags searched for the half-cycle's trough, s.
HALF_CYCLE_LAGS_S: Final = (10.0, 60.0)
#: Centred windows of the context means, minutes.
CONTEXT_MIN: Final = (3, 7, 15, 31)
#: Features of the heart rate's periodicity (with context means).
PERIODICITY: Final = ("acf_peak", "acf_depth", "cycle_s", "cycle_amp")
FEATURE_NAMES: Final = (
    *PERIODICITY,
    *(f"{f}_mean_{w}" for w in CONTEXT_MIN for f in PERIODICITY),
    "coverage",
)
_PER_MIN: Final = int(60 * FS_HZ)
_MIN_COVERED: Final = 0.6

Array = npt.NDArray[np.float64]


def _windows(x: Array, n: int, width_min: int) -> Array:
    """Grid samples of ``width_min`` minutes centred on each minute: shape (n, width_min * per minute)."""
    half = (width_min // 2) * _PER_MIN
    padded = np.concatenate([np.full(half, np.nan), x, np.full(half, np.nan)])
    view = np.lib.stride_tricks.sliding_window_view(padded, width_min * _PER_MIN)
    out: Array = view[: n * _PER_MIN : _PER_MIN]
    return out


def _periodicity(band: Array, n: int) -> Array:
    """acf_peak, acf_depth, cycle_s, cycle_amp of each minute's window: shape (n, 4), NaN where < 60 % covered."""
    w = _windows(band, n, WINDOW_MIN)
    valid = np.isfinite(w)
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    x = np.where(valid, w, 0.0)
    x = np.where(valid, x - x.sum(axis=1, keepdims=True) / count, 0.0)
    width = x.shape[1]
    power = np.abs(np.fft.rfft(x, 2 * width, axis=1)) ** 2  # zero-padded: no circular wrap
    acf = np.fft.irfft(power, 2 * width, axis=1)[:, :width]
    acf = acf / np.maximum(acf[:, :1], 1e-12)
    lags = np.arange(width) / FS_HZ
    cycle = (lags >= CYCLE_LAGS_S[0]) & (lags <= CYCLE_LAGS_S[1])
    half = (lags >= HALF_CYCLE_LAGS_S[0]) & (lags <= HALF_CYCLE_LAGS_S[1])
    peak = acf[:, cycle].max(axis=1)
    out = np.column_stack(
        [
            peak,
            peak - acf[:, half].min(axis=1),
            lags[cycle][acf[:, cycle].argmax(axis=1)],
            np.log1p(np.sqrt((x**2).sum(axis=1) / count[:, 0])),
        ]
    )
    out[valid.mean(axis=1) < _MIN_COVERED] = np.nan
    return out


def minute_features(beat_t_s: npt.ArrayLike, rr_ms: npt.ArrayLike, n_minutes: int) -> Array:
    """Features of every one-minute segment (module docstring): shape (n_minutes, len(FEATURE_NAMES))."""
    n = max(int(n_minutes), 0)
    t = np.asarray(beat_t_s, dtype=float)
    rr = np.asarray(rr_ms, dtype=float)
    base = np.full((n, len(PERIODICITY)), np.nan)
    coverage = np.zeros(n)
    if n and len(t) == len(rr) and len(t) >= 10:
        order = np.argsort(t, kind="stable")
        t, rr = t[order], rr[order]
        keep = clean_rr(rr) & np.isfinite(t)
        tk, nk = t[keep], rr[keep]
        if len(tk) >= 10:
            grid = (np.arange(n * _PER_MIN) + 0.5) / FS_HZ
            nn = np.interp(grid, tk, nk)
            after = np.searchsorted(tk, grid)
            gap = tk[np.minimum(after, len(tk) - 1)] - tk[np.maximum(after - 1, 0)]
            covered = (after > 0) & (after < len(tk)) & (gap <= MAX_GAP_S)
            hr = 60000.0 / nn
            sos = butter(2, list(BAND_HZ), btype="bandpass", fs=FS_HZ, output="sos")
            band = sosfiltfilt(sos, hr - hr.mean()) if len(hr) > 60 else np.zeros_like(hr)
            base = _periodicity(np.where(covered, band, np.nan), n)
            coverage = covered.reshape(n, _PER_MIN).mean(axis=1)
    return _with_context(base, coverage)


def _with_context(base: Array, coverage: Array) -> Array:
    """Median-filled periodicity features, their centred context means, and the coverage."""
    filled = base.copy()
    for j in range(filled.shape[1]):
        ok = np.isfinite(filled[:, j])
        filled[~ok, j] = float(np.median(filled[ok, j])) if ok.any() else 0.0
    frame = pd.DataFrame(filled)
    means = [frame.rolling(w, center=True, min_periods=1).mean().to_numpy() for w in CONTEXT_MIN]
    out: Array = np.hstack([filled, *means, coverage[:, None]])
    return out
