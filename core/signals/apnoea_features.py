"""Per-minute features for apnoea detection from beat-to-beat (RR) intervals alone.

An obstructive apnoea or hypopnoea slows the heart while breathing is blocked and speeds it
up when breathing resumes, so a run of events leaves a cyclic variation of heart rate
(CVHR) of 25-120 s period (Guilleminault et al., Lancet 1984); the same events modulate the
respiratory sinus arrhythmia. The PhysioNet/Computers in Cardiology Challenge 2000 scored
apnoea detection per one-minute segment of overnight ECGs (Penzel T. et al., "The
Apnea-ECG Database", Computers in Cardiology 27:255-258, 2000). These features follow the
RR-interval features of de Chazal P. et al. (IEEE Trans. Biomed. Eng. 50(6):686-696,
2003: time-domain RR statistics and the RR power spectrum of each minute and of its
neighbours) and add the CVHR of :mod:`core.signals.cvhr`.

Method. Beats are cleaned by :func:`core.signals.hrv.clean_rr` (the core's rules: range,
local median, spikes); the kept NN intervals are interpolated onto a :data:`FS_HZ` grid
(stretches of more than :data:`MAX_GAP_S` without a kept beat count as missing). Per
one-minute segment ``m`` (``[60 m, 60 m + 60)`` s from the record's start):

* time domain (kept beats of the minute): ``mean_rr`` (ms), ``sd_rr`` (ms), ``rmssd``
  (ms, successive differences of adjacent kept beats), ``pnn50`` (fraction), ``hr_range``
  (bpm, max - min of the interpolated heart rate in the minute);
* spectrum of the NN series over a :data:`WINDOW_MIN`-minute window centred on the minute
  (Hann window, periodogram): ``p_apnoea`` (0.008-0.04 Hz, the 25-120 s CVHR band),
  ``p_lf`` (0.04-0.15 Hz), ``p_hf`` (0.15-0.40 Hz), in ln(1 + ms²), and ``apnoea_share``
  (band power / total power 0.008-0.40 Hz);
* CVHR: ``cvhr_amp`` (bpm, RMS of the heart rate band-passed to 25-120 s over the
  minute and its two neighbours) and ``cvhr_cycles`` (cycles of :func:`core.signals.cvhr.cvhr_cycles`
  within two minutes of the minute's centre);
* ``coverage``: the share of the minute's grid with kept beats.

These :data:`BASE_FEATURES` are returned on their absolute scale (``sd_rr``, ``rmssd`` and
``cvhr_amp`` as ln(1 + x): a severe night looks severe against another night), as
centred means over :data:`CONTEXT_MIN` minutes (the neighbouring minutes: apnoeas come in
runs of minutes), and the night's medians of the CVHR features (every minute of a night
with strong CVHR shares that prior). Minutes without enough beats are filled with the
night's median; ``coverage`` tells the model how much it saw. (Scoring each feature
against the night's own median and IQR was tried and lost 1-3 points of minute accuracy
in subject-grouped cross-validation: it hides how apnoeic the whole night is.)

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

from core.signals.cvhr import PERIOD_S, cvhr_cycles
from core.signals.hrv import clean_rr

__all__ = ["BASE_FEATURES", "CONTEXT_MIN", "FEATURE_NAMES", "FS_HZ", "MAX_GAP_S", "WINDOW_MIN", "minute_features"]

#: Resampling rate of the NN series, Hz.
FS_HZ: Final = 2.0
#: Longer stretches without a kept beat are missing, s.
MAX_GAP_S: Final = 10.0
#: Spectral window centred on each minute, minutes.
WINDOW_MIN: Final = 5
#: Centred windows of the context means, minutes.
CONTEXT_MIN: Final = (3, 7, 15, 31)
_PER_MIN: Final = int(60 * FS_HZ)
_BANDS: Final = {"p_apnoea": (1.0 / PERIOD_S[1], 1.0 / PERIOD_S[0]), "p_lf": (0.04, 0.15), "p_hf": (0.15, 0.40)}
_NIGHT: Final = ("cvhr_amp", "cvhr_cycles", "p_apnoea", "apnoea_share")
_LOGGED: Final = (1, 2, 9)  # sd_rr, rmssd, cvhr_amp: ln(1 + x)

BASE_FEATURES: Final = (
    "mean_rr",
    "sd_rr",
    "rmssd",
    "pnn50",
    "hr_range",
    "p_apnoea",
    "p_lf",
    "p_hf",
    "apnoea_share",
    "cvhr_amp",
    "cvhr_cycles",
    "coverage",
)
FEATURE_NAMES: Final = (
    *BASE_FEATURES,
    *(f"{f}_mean_{w}" for w in CONTEXT_MIN for f in BASE_FEATURES),
    *(f"night_{f}" for f in _NIGHT),
)

Array = npt.NDArray[np.float64]


def _per_minute_beats(t: Array, rr: Array, adjacent: npt.NDArray[np.bool_], n: int) -> Array:
    """mean_rr, sd_rr, rmssd, pnn50 of the kept beats of each minute: shape (n, 4), NaN where < 5 beats."""
    m = np.floor(t / 60.0).astype(int)
    inside = (m >= 0) & (m < n)
    m, rr, adjacent = m[inside], rr[inside], adjacent[inside]
    count = np.bincount(m, minlength=n).astype(float)
    total = np.bincount(m, weights=rr, minlength=n)
    square = np.bincount(m, weights=rr**2, minlength=n)
    d = np.diff(rr, prepend=np.nan)
    d_ok = adjacent & np.isfinite(d)
    dm = m[d_ok]
    dd = d[d_ok]
    n_d = np.bincount(dm, minlength=n).astype(float)
    sq_d = np.bincount(dm, weights=dd**2, minlength=n)
    big = np.bincount(dm, weights=(np.abs(dd) > 50.0).astype(float), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        sd = np.sqrt(np.maximum(square / count - mean**2, 0.0) * count / np.maximum(count - 1, 1))
        rmssd = np.sqrt(sq_d / n_d)
        pnn50 = big / n_d
    out = np.column_stack([mean, sd, rmssd, pnn50])
    out[count < 5] = np.nan
    return out


def _windows(x: Array, n: int, width_min: int) -> Array:
    """Grid samples of ``width_min`` minutes centred on each minute: shape (n, width_min * per minute)."""
    half = (width_min // 2) * _PER_MIN
    padded = np.concatenate([np.full(half, np.nan), x, np.full(half, np.nan)])
    view = np.lib.stride_tricks.sliding_window_view(padded, width_min * _PER_MIN)
    out: Array = view[: n * _PER_MIN : _PER_MIN]
    return out


def _spectra(nn_grid: Array, n: int) -> Array:
    """p_apnoea, p_lf, p_hf (ln(1 + ms²)) and apnoea_share per minute: shape (n, 4)."""
    w = _windows(nn_grid, n, WINDOW_MIN)
    valid = np.isfinite(w)
    enough = valid.mean(axis=1) >= 0.6
    mean = np.where(valid, w, 0.0).sum(axis=1, keepdims=True) / np.maximum(valid.sum(axis=1, keepdims=True), 1)
    x = np.where(valid, w - mean, 0.0)
    taper = np.hanning(w.shape[1])
    spec = np.abs(np.fft.rfft(x * taper, axis=1)) ** 2 / (FS_HZ * (taper**2).sum())
    f = np.fft.rfftfreq(w.shape[1], 1.0 / FS_HZ)
    df = f[1] - f[0]
    powers = [spec[:, (f >= lo) & (f < hi)].sum(axis=1) * df * 2 for lo, hi in _BANDS.values()]
    total = np.sum(powers, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = powers[0] / total
    out = np.column_stack([*(np.log1p(p) for p in powers), share])
    out[~enough] = np.nan
    return out


def minute_features(beat_t_s: npt.ArrayLike, rr_ms: npt.ArrayLike, n_minutes: int) -> Array:
    """Features of every one-minute segment (module docstring): shape (n_minutes, len(FEATURE_NAMES))."""
    n = max(int(n_minutes), 0)
    t = np.asarray(beat_t_s, dtype=float)
    rr = np.asarray(rr_ms, dtype=float)
    base = np.full((n, len(BASE_FEATURES)), np.nan)
    base[:, -1] = 0.0
    if n and len(t) == len(rr) and len(t) >= 10:
        order = np.argsort(t, kind="stable")
        t, rr = t[order], rr[order]
        keep = clean_rr(rr) & np.isfinite(t)
        adjacent = keep & np.concatenate([[False], keep[:-1]])
        base[:, 0:4] = _per_minute_beats(t[keep], rr[keep], adjacent[keep], n)
        tk, nk = t[keep], rr[keep]
        if len(tk) >= 10:
            grid = (np.arange(n * _PER_MIN) + 0.5) / FS_HZ
            nn = np.interp(grid, tk, nk)
            after = np.searchsorted(tk, grid)
            gap = tk[np.minimum(after, len(tk) - 1)] - tk[np.maximum(after - 1, 0)]
            covered = (after > 0) & (after < len(tk)) & (gap <= MAX_GAP_S)
            hr = 60000.0 / nn
            sos = butter(4, [1.0 / PERIOD_S[1], 1.0 / PERIOD_S[0]], btype="bandpass", fs=FS_HZ, output="sos")
            band = sosfiltfilt(sos, hr - hr.mean()) if len(hr) > 60 else np.zeros_like(hr)
            nn_grid = np.where(covered, nn, np.nan)
            hr_min = np.where(covered, hr, np.nan).reshape(n, _PER_MIN)
            cov = covered.reshape(n, _PER_MIN).mean(axis=1)
            spread = np.where(np.isfinite(hr_min), hr_min, -np.inf).max(axis=1)
            spread += np.where(np.isfinite(hr_min), -hr_min, -np.inf).max(axis=1)
            base[:, 4] = np.where(cov > 0.5, spread, np.nan)
            base[:, 5:9] = _spectra(nn_grid, n)
            amp_w = _windows(np.where(covered, band, np.nan), n, 3)
            ok = np.isfinite(amp_w).mean(axis=1) >= 0.5
            sq = np.where(np.isfinite(amp_w), amp_w**2, 0.0).sum(axis=1) / np.maximum(np.isfinite(amp_w).sum(axis=1), 1)
            base[:, 9] = np.where(ok, np.sqrt(sq), np.nan)
            cycles = cvhr_cycles(t, rr).t_s
            centres = np.arange(n) * 60.0 + 30.0
            base[:, 10] = np.searchsorted(cycles, centres + 120.0) - np.searchsorted(cycles, centres - 120.0)
            base[:, 11] = cov
    return _with_context(base)


def _with_context(base: Array) -> Array:
    """Median-filled features, their centred context means and the night's medians of :data:`_NIGHT`."""
    raw = base.copy()
    for j in _LOGGED:
        raw[:, j] = np.log1p(raw[:, j])
    medians = np.zeros(raw.shape[1])
    for j in range(raw.shape[1]):
        ok = np.isfinite(raw[:, j])
        medians[j] = float(np.median(raw[ok, j])) if ok.any() else 0.0
        raw[~ok, j] = medians[j]
    frame = pd.DataFrame(raw)
    means = [frame.rolling(w, center=True, min_periods=1).mean().to_numpy() for w in CONTEXT_MIN]
    night = np.tile(medians[[BASE_FEATURES.index(f) for f in _NIGHT]], (raw.shape[0], 1))
    out: Array = np.hstack([raw, *means, night])
    return out
