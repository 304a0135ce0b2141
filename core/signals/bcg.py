"""Vitals from an under-mattress ballistocardiogram (BCG) / pressure channel.

All functions take one window of samples, ``x`` of shape (n,) in ADC counts at
``fs_hz``, and use nothing outside it, so a window's result never depends on how the
stream was batched. Each has a ``*_rows`` form taking a stack of equal-length windows,
shape (m, n), that computes every row at once (filters, transforms and order statistics
run along the last axis); the one-window functions call it with one row, so both give
the same numbers. Batching epochs this way is what makes a 10,000-record Lambda batch or
a night of 100 Hz data cheap. So does working at the rate each band needs: block means
decimate the signal first (:func:`heart_fs`: a quarter of the sensor's rate from 80 Hz up
for the heart band; half for the presence band; ~10 Hz, :func:`breath_fs`, for the
respiratory band), so the filters, the Hilbert transform and the autocorrelations run on
a quarter to a tenth of the samples. Movement stays at the full rate.

* Heart rate: band-pass 3-15 Hz (the BCG's I-J-K complex; capped at 0.45 x the working
  rate, i.e. 3-11.25 Hz for a 100 Hz sensor), Hilbert envelope, and the first dominant
  peak of the envelope's autocorrelation between 0.33 and 1.5 s (40-180 bpm), refined by
  parabolic interpolation. Window-level inter-beat-interval estimation
  after Brüser C. et al., "Adaptive beat-to-beat heart rate estimation in
  ballistocardiograms", IEEE Trans. Inf. Technol. Biomed. 15(5), 2011 (autocorrelation
  estimator), with the usual guard against picking the second harmonic of the period.
* Breathing rate: low-pass 0.7 Hz, decimate to 10 Hz, peaks at least 2 s apart with a
  prominence relative to the window's spread; rate = 60 / median peak-to-peak interval.
  (Peak-interval respiratory rate from BCG/pressure mats, e.g. Sadek I. et al.,
  "Ballistocardiogram signal processing: a review", Health Inf. Sci. Syst. 7, 2019.)
* Movement index: fraction of 1-s segments whose detrended standard deviation exceeds
  the profile's movement threshold (gross body movement saturates the BCG).
* Presence: the 0.1-20 Hz band's amplitude, read at the 90th percentile of its absolute
  deviations, exceeds ``presence_factor`` times the empty-bed noise floor. Not the median:
  a person lying still without breathing (an apnoea) still shows the BCG complex of every
  heartbeat, which fills only a tenth of the window and which a median misses; an
  empty bed's noise stays below the floor either way.
* Breathing pauses: the respiratory band's excursion (max - min) over a sliding 1.5-s
  window falls below 10 % of the window's breathing amplitude (its 5-95 % range) and
  below no less than the profile's floor — the AASM rule of a >= 90 % drop in the
  respiratory signal's excursion (Berry R.B. et al., AASM Manual for the Scoring of Sleep
  and Associated Events, v2.6, 2020), applied to the BCG's respiratory effort channel as
  in bed-sensor apnoea screening (e.g. Sadek I. et al., 2019, above). Seconds with gross
  movement are never a pause. Whether a pause lasts >= 10 s is decided by the caller,
  which can join pauses across window edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import signal
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from core.signals.runs import true_runs

__all__ = [
    "BedSensorProfile",
    "breath_band",
    "breath_fs",
    "breathing_pauses",
    "breathing_pauses_rows",
    "breathing_rate_per_min",
    "breathing_rate_rows",
    "heart_envelope",
    "heart_fs",
    "heart_rate_bpm",
    "heart_rate_rows",
    "movement_index",
    "presence",
    "presence_rows",
    "segment_std",
]

FloatArray = npt.NDArray[np.float64]
_MIN_HR_BPM: Final = 40.0
_MAX_HR_BPM: Final = 180.0
_P90_PER_STD: Final = 1.6449  # 90th percentile of |N(0, 1)|


@dataclass(frozen=True, slots=True)
class BedSensorProfile:
    """Device constants of a bed-sensor model (ADC counts). Defaults: sleepstack's profile."""

    noise_floor_counts: float = 15.0  # std of the empty-bed signal
    presence_factor: float = 3.0  # in bed when band amplitude > factor x noise floor
    movement_std_counts: float = 350.0  # a 1-s segment with larger detrended std is movement
    #: skip a 10-s window's HR when more of it is movement: one second of gross movement
    #: already breaks the beat rhythm's autocorrelation (windows at 0.2 gave 100-150 bpm
    #: spikes at wake transitions while the truth stayed near 70)
    max_movement_for_hr: float = 0.0
    pause_floor_counts: float = 75.0  # respiratory excursion below this is never breathing


@lru_cache(maxsize=16)
def _filter(kind: str, fs_hz: float) -> tuple[FloatArray, FloatArray, int]:
    """(sos, steady-state zi, odd-extension pad length) of a zero-phase filter, cached."""
    if kind == "heart":
        sos = signal.butter(4, [3.0, min(15.0, 0.45 * fs_hz)], btype="bandpass", fs=fs_hz, output="sos")
    elif kind == "breath":
        sos = signal.butter(4, 0.7, btype="lowpass", fs=fs_hz, output="sos")
    else:
        sos = signal.butter(2, [0.1, min(20.0, 0.45 * fs_hz)], btype="bandpass", fs=fs_hz, output="sos")
    pad = 3 * (2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum())))
    return sos, signal.sosfilt_zi(sos), pad


def _filtfilt(kind: str, fs_hz: float, x: FloatArray) -> FloatArray:
    """Forward-backward filtering of each row of ``x`` (shape (m, n)) with odd extension.

    Equals ``scipy.signal.sosfiltfilt(sos, x, axis=-1)``; one call filters every row.
    """
    sos, zi, pad = _filter(kind, fs_hz)
    pad = min(pad, x.shape[-1] - 1)
    ext = np.concatenate([2 * x[:, :1] - x[:, pad:0:-1], x, 2 * x[:, -1:] - x[:, -2 : -pad - 2 : -1]], axis=1)
    y, _ = signal.sosfilt(sos, ext, axis=-1, zi=zi[:, None, :] * ext[None, :, :1])
    y = y[:, ::-1]
    y, _ = signal.sosfilt(sos, y, axis=-1, zi=zi[:, None, :] * y[None, :, :1])
    out: FloatArray = y[:, ::-1][:, pad : pad + x.shape[-1]]
    return out


def _block_mean(x: FloatArray, factor: int) -> FloatArray:
    """Means of consecutive blocks of ``factor`` samples along the last axis (a remainder is dropped).

    The cheapest decimation: a boxcar anti-alias filter (nulls at multiples of the new
    rate) followed by taking every block. Shape (..., n) -> (..., n // factor).
    """
    if factor <= 1:
        return x
    n = x.shape[-1] // factor
    total = x[..., 0 : n * factor : factor].copy()
    for k in range(1, factor):  # strided adds: far cheaper than a reduction over a tiny axis
        total += x[..., k : n * factor : factor]
    out: FloatArray = total / factor
    return out


def breath_fs(fs_hz: float) -> float:
    """Sample rate (Hz) of :func:`breath_band`'s output: the input decimated to ~10 Hz."""
    return fs_hz / max(1, int(fs_hz // 10))


def _rows(x: npt.ArrayLike) -> FloatArray:
    """One window as a one-row stack, shape (1, n)."""
    return np.asarray(x, dtype=float).reshape(1, -1)


def segment_std(x: npt.ArrayLike, fs_hz: float) -> FloatArray:
    """Linearly detrended std of each whole 1-s segment along the last axis of ``x``.

    ``x``: shape (n,) or (m, n); returns shape (n_segments,) or (m, n_segments). The
    least-squares line's residual variance in closed form: var(x) - cov(x, t)^2 / var(t).
    """
    xf = np.asarray(x, dtype=float)
    per = round(fs_hz)
    n = xf.shape[-1] // per
    segs = xf[..., : n * per].reshape(*xf.shape[:-1], n, per)
    t = np.arange(per, dtype=float) - (per - 1) / 2
    centred = segs - segs.mean(axis=-1, keepdims=True)
    cov = centred @ t / per
    var = (centred * centred).mean(axis=-1) - cov * cov / (t @ t / per)
    std: FloatArray = np.sqrt(np.maximum(var, 0.0))
    return std


def movement_index(x: npt.ArrayLike, fs_hz: float, profile: BedSensorProfile = BedSensorProfile()) -> float:
    """Fraction (0-1) of 1-s segments of ``x`` whose linearly detrended std marks movement."""
    std = segment_std(x, fs_hz)
    if len(std) == 0:
        return float("nan")
    return float(np.mean(std > profile.movement_std_counts))


def presence_rows(x: FloatArray, fs_hz: float, profile: BedSensorProfile = BedSensorProfile()) -> npt.NDArray[np.bool_]:
    """:func:`presence` of each row of ``x`` (shape (m, n)); shape (m,)."""
    factor = 2 if fs_hz >= 80 else 1  # the 0.1-20 Hz band needs no more than 40 Hz
    band = _filtfilt("presence", fs_hz / factor, _block_mean(x, factor))
    deviation = np.abs(band - np.median(band, axis=1, keepdims=True))
    amplitude = np.percentile(deviation, 90, axis=1) / _P90_PER_STD
    out: npt.NDArray[np.bool_] = amplitude > profile.presence_factor * profile.noise_floor_counts
    return out


def presence(x: npt.ArrayLike, fs_hz: float, profile: BedSensorProfile = BedSensorProfile()) -> bool:
    """Whether someone lies on the sensor: 0.1-20 Hz amplitude above the noise floor.

    The amplitude is the 90th percentile of the absolute deviations from the median,
    scaled to a std (/ 1.645, exact for Gaussian noise): it sees the heartbeats of a
    person who has stopped breathing, and a movement burst in an otherwise empty window
    still has to fill a tenth of it.
    """
    return bool(presence_rows(_rows(x), fs_hz, profile)[0])


def heart_fs(fs_hz: float) -> float:
    """Sample rate (Hz) of :func:`heart_envelope`'s output: a quarter of ``fs_hz`` from 80 Hz up (>= 20 Hz)."""
    return fs_hz / 4 if fs_hz >= 80 else fs_hz


def heart_envelope(x: npt.ArrayLike, fs_hz: float) -> FloatArray:
    """Hilbert envelope of the 3-15 Hz band along the last axis of ``x`` ((n,) or (m, n)), at :func:`heart_fs`.

    From 80 Hz up ``x`` is first decimated 4x by block means and the band's top edge is
    capped at 0.45 x the new rate (11.25 Hz for a 100 Hz sensor): the beat envelope's
    period is what matters, and a quarter of the samples quarters the filtering, the
    Hilbert transform and the autocorrelation. Output shape (..., n // 4). Compute once per epoch and pass
    windows of it to :func:`heart_rate_rows` with ``fs_hz=heart_fs(fs_hz)``.
    """
    xf = np.asarray(x, dtype=float)
    fs_env = heart_fs(fs_hz)
    low = _block_mean(xf.reshape(-1, xf.shape[-1]), round(fs_hz / fs_env))
    band = _filtfilt("heart", fs_env, low)
    env: FloatArray = np.abs(signal.hilbert(band, axis=-1)).reshape(*xf.shape[:-1], band.shape[-1])
    return env


def heart_rate_rows(envelope: FloatArray, fs_hz: float) -> FloatArray:
    """Mean heart rate (beats/min) of each row of envelope windows, shape (m, n) -> (m,).

    Rows shorter than 4 s, or without a rhythm, give NaN. The autocorrelations of all
    rows come from one FFT; the peak choice is per row.
    """
    m, n = envelope.shape
    out = np.full(m, np.nan)
    lo, hi = int(fs_hz * 60 / _MAX_HR_BPM), min(int(fs_hz * 60 / _MIN_HR_BPM), n // 2)
    if m == 0 or n < 4 * fs_hz or hi <= lo + 2:
        return out
    env = envelope - envelope.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(env, 2 * n, axis=1)
    acf = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :n]
    zero = acf[:, :1].copy()
    ok = zero[:, 0] > 0
    acf[ok] /= zero[ok] * (n - np.arange(n)) / n  # unbiased, normalised
    rows = np.flatnonzero(ok)
    if len(rows):
        out[rows] = _acf_rates(acf[rows], lo, hi, fs_hz)
    return out


def _acf_rates(acf: FloatArray, lo: int, hi: int, fs_hz: float) -> FloatArray:
    """Beats/min from each row of normalised autocorrelations (m, n): its dominant beat-period peak.

    A peak is a lag in (lo, hi) above both neighbours. The strongest is taken, unless an
    earlier peak near half its lag is almost as strong (the fundamental, not the second
    harmonic); NaN without a peak or when the strongest is below 0.15. The lag is refined
    by parabolic interpolation. Every row at once; shape (m,).
    """
    m = len(acf)
    seg = acf[:, lo : hi + 1]
    lags = np.arange(lo + 1, hi)
    inner = seg[:, 1:-1]
    peak = (inner > seg[:, :-2]) & (inner > seg[:, 2:])  # (m, hi - lo - 1)
    value = np.where(peak, inner, -np.inf)
    k = np.argmax(value, axis=1)
    strongest = value[np.arange(m), k]
    best = lags[k].astype(float)
    ok = np.isfinite(strongest) & (strongest >= 0.15)
    # prefer the fundamental: the first earlier peak near half the lag that is almost as strong
    half = (
        peak
        & (lags[None, :] < best[:, None])
        & (np.abs(lags[None, :] - best[:, None] / 2) <= 0.12 * best[:, None])
        & (inner >= 0.65 * strongest[:, None])
    )
    has_half = half.any(axis=1)
    best = np.where(has_half, lags[np.argmax(half, axis=1)], best)
    b_idx = best.astype(int)
    rows = np.arange(m)
    a, b, c = acf[rows, b_idx - 1], acf[rows, b_idx], acf[rows, b_idx + 1]
    denom = a - 2 * b + c
    lag = best + np.where(denom < 0, 0.5 * (a - c) / np.where(denom < 0, denom, -1.0), 0.0)
    out: FloatArray = np.where(ok, 60.0 * fs_hz / lag, np.nan)
    return out


def heart_rate_bpm(x: npt.ArrayLike, fs_hz: float, *, envelope: FloatArray | None = None) -> float:
    """Mean heart rate (beats/min) of one window (>= 4 s) of BCG; NaN when no rhythm.

    ``envelope`` may pass this window's slice of :func:`heart_envelope` computed over a
    longer stretch, which saves refiltering and avoids window-edge transients.
    """
    env = heart_envelope(x, fs_hz) if envelope is None else np.asarray(envelope, dtype=float)
    return float(heart_rate_rows(_rows(env), heart_fs(fs_hz))[0])


def breath_band(x: npt.ArrayLike, fs_hz: float) -> FloatArray:
    """The respiratory band along the last axis of ``x`` ((n,) or (m, n)), at :func:`breath_fs`.

    ``x`` is decimated to ~10 Hz by block means first, then low-passed at 0.7 Hz
    (zero-phase Butterworth): breathing lives below 1 Hz, so filtering at 10 Hz instead of
    the sensor's rate gives the same band for a tenth of the work. Output shape
    (..., n // factor) with factor = fs_hz / breath_fs(fs_hz).
    """
    xf = np.asarray(x, dtype=float)
    low = _block_mean(xf.reshape(-1, xf.shape[-1]), round(fs_hz / breath_fs(fs_hz)))
    return _filtfilt("breath", breath_fs(fs_hz), low).reshape(*xf.shape[:-1], low.shape[-1])


def breathing_rate_rows(band: FloatArray, fs_hz: float) -> FloatArray:
    """:func:`breathing_rate_per_min` of each row of respiratory bands, shape (m, n) -> (m,).

    ``fs_hz`` is the band's own rate (:func:`breath_fs` for :func:`breath_band`'s output).
    """
    m, n = band.shape
    out = np.full(m, np.nan)
    if m == 0 or n < 15 * fs_hz:
        return out
    step = max(1, int(fs_hz // 10))
    r = signal.detrend(band[:, ::step], axis=1)
    fs_r = fs_hz / step
    p5, p95 = np.percentile(r, [5, 95], axis=1)
    spread = p95 - p5
    for i in np.flatnonzero(spread > 0):
        peaks, _ = signal.find_peaks(r[i], distance=int(2.0 * fs_r), prominence=0.3 * spread[i])
        if len(peaks) >= 3:
            gaps = sorted((peaks[1:] - peaks[:-1]).tolist())  # the median of a few intervals, without numpy's overhead
            k = len(gaps)
            out[i] = 60.0 * fs_r / ((gaps[(k - 1) // 2] + gaps[k // 2]) / 2)
    return out


def breathing_rate_per_min(x: npt.ArrayLike, fs_hz: float, *, band: FloatArray | None = None) -> float:
    """Breathing rate (breaths/min) of one window (>= 15 s); NaN with < 2 full breaths.

    ``band`` may pass :func:`breath_band` of ``x`` when the caller has it already.
    """
    low = breath_band(x, fs_hz) if band is None else band
    return float(breathing_rate_rows(_rows(low), breath_fs(fs_hz))[0])


_PAUSE_WINDOW_S: Final = 1.5
_PAUSE_DROP: Final = 0.10  # excursion below 10 % of the breathing amplitude: no breathing


def breathing_pauses_rows(
    band: FloatArray,
    fs_hz: float,
    profile: BedSensorProfile = BedSensorProfile(),
    *,
    moving_s: npt.NDArray[np.bool_] | None = None,
    min_s: float = 1.0,
) -> list[list[tuple[float, float]]]:
    """:func:`breathing_pauses` of each row of respiratory bands (shape (m, n)) at their rate ``fs_hz``.

    ``moving_s``: shape (m, n_seconds), or None. Returns one list of pauses per row.
    """
    m, n = band.shape
    if n < 2 * fs_hz:
        return [[] for _ in range(m)]
    step = max(1, int(fs_hz // 10))
    r = band[:, ::step]
    fs_r = fs_hz / step
    size = max(2, round(_PAUSE_WINDOW_S * fs_r))
    excursion = maximum_filter1d(r, size, axis=1, mode="nearest") - minimum_filter1d(r, size, axis=1, mode="nearest")
    p5, p95 = np.percentile(r, [5, 95], axis=1)
    still = excursion < np.maximum(_PAUSE_DROP * (p95 - p5), profile.pause_floor_counts)[:, None]
    if moving_s is not None and moving_s.shape[-1]:
        sec = np.minimum((np.arange(r.shape[1]) / fs_r).astype(int), moving_s.shape[-1] - 1)
        still &= ~np.asarray(moving_s, dtype=bool)[:, sec]
    # a flat window centred on a sample means the signal is flat half a window either side
    half = size // 2
    if half:
        still = maximum_filter1d(still.astype(np.uint8), 2 * half + 1, axis=1, mode="constant").astype(bool)
    out: list[list[tuple[float, float]]] = []
    for row in still:
        pauses: list[tuple[float, float]] = []
        for a, b in true_runs(row):
            start_s, end_s = a / fs_r, b / fs_r
            if end_s - start_s >= min_s or a == 0 or b == len(row):
                pauses.append((round(start_s, 1), round(end_s, 1)))
        out.append(pauses)
    return out


def breathing_pauses(
    x: npt.ArrayLike,
    fs_hz: float,
    profile: BedSensorProfile = BedSensorProfile(),
    *,
    moving_s: npt.NDArray[np.bool_] | None = None,
    min_s: float = 1.0,
    band: FloatArray | None = None,
) -> list[tuple[float, float]]:
    """Stretches without respiratory movement in ``x`` (shape (n,), counts at ``fs_hz``).

    Returns ``(start_s, end_s)`` pairs in seconds from the first sample, at 0.1-s
    resolution; stretches shorter than ``min_s`` are dropped unless they touch an end of
    ``x`` (the caller may join them with the neighbouring window's). ``moving_s`` flags
    1-s segments with gross movement (from :func:`segment_std`), which are never pauses.
    """
    low = breath_band(x, fs_hz) if band is None else band
    moving = None if moving_s is None else np.asarray(moving_s, dtype=bool).reshape(1, -1)
    return breathing_pauses_rows(_rows(low), breath_fs(fs_hz), profile, moving_s=moving, min_s=min_s)[0]
