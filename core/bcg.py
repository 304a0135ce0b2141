"""Vitals from an under-mattress ballistocardiogram (BCG) / pressure channel.

All functions take one window of samples, ``x`` of shape (n,) in ADC counts at
``fs_hz``, and use nothing outside it, so a window's result never depends on how the
stream was batched. Each has a ``*_rows`` form taking a stack of equal-length windows,
shape (m, n), that computes every row at once (filters, transforms and order statistics
run along the last axis); the one-window functions call it with one row, so both give
the same numbers. Batching epochs this way is what makes a 10,000-record Lambda batch or
a night of 100 Hz data cheap.

* Heart rate: band-pass 3-15 Hz (the BCG's I-J-K complex), Hilbert envelope, and the
  first dominant peak of the envelope's autocorrelation between 0.33 and 1.5 s (40-180
  bpm), refined by parabolic interpolation. Window-level inter-beat-interval estimation
  after Brüser C. et al., "Adaptive beat-to-beat heart rate estimation in
  ballistocardiograms", IEEE Trans. Inf. Technol. Biomed. 15(5), 2011 (autocorrelation
  estimator), with the usual guard against picking the second harmonic of the period.
* Breathing rate: low-pass 0.7 Hz, decimate to 10 Hz, peaks at least 2 s apart with a
  prominence relative to the window's spread; rate = 60 / median peak-to-peak interval.
  (Peak-interval respiratory rate from BCG/pressure mats, e.g. Sadek I. et al.,
  "Ballistocardiogram signal processing: a review", Health Inf. Sci. Syst. 7, 2019.)
* Movement index: fraction of 1-s segments whose detrended standard deviation exceeds
  the profile's movement threshold (gross body movement saturates the BCG).
* Presence: the 0.1-20 Hz band's robust amplitude exceeds ``presence_factor`` times the
  empty-bed noise floor.
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

from core.runs import true_runs

__all__ = [
    "BedSensorProfile",
    "breath_band",
    "breathing_pauses",
    "breathing_pauses_rows",
    "breathing_rate_per_min",
    "breathing_rate_rows",
    "heart_envelope",
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


@dataclass(frozen=True, slots=True)
class BedSensorProfile:
    """Device constants of a bed-sensor model (ADC counts). Defaults: sleepstack's profile."""

    noise_floor_counts: float = 15.0  # std of the empty-bed signal
    presence_factor: float = 3.0  # in bed when band amplitude > factor x noise floor
    movement_std_counts: float = 350.0  # a 1-s segment with larger detrended std is movement
    max_movement_for_hr: float = 0.2  # skip HR when more of the window is movement
    pause_floor_counts: float = 75.0  # respiratory excursion below this is never breathing


@lru_cache(maxsize=16)
def _filter(kind: str, fs_hz: float) -> tuple[FloatArray, FloatArray, int]:
    """(sos, steady-state zi, odd-extension pad length) of a zero-phase filter, cached."""
    if kind == "heart":
        sos = signal.butter(4, [3.0, 15.0], btype="bandpass", fs=fs_hz, output="sos")
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


def _rows(x: npt.ArrayLike) -> FloatArray:
    """One window as a one-row stack, shape (1, n)."""
    return np.asarray(x, dtype=float).reshape(1, -1)


@lru_cache(maxsize=16)
def _detrend_projector(n: int) -> FloatArray:
    """(n, n) matrix removing the least-squares line from a length-n vector."""
    a = np.column_stack([np.ones(n), np.arange(n, dtype=float)])
    proj: FloatArray = np.eye(n) - a @ np.linalg.pinv(a)
    return proj


def segment_std(x: npt.ArrayLike, fs_hz: float) -> FloatArray:
    """Linearly detrended std of each whole 1-s segment along the last axis of ``x``.

    ``x``: shape (n,) or (m, n); returns shape (n_segments,) or (m, n_segments).
    """
    xf = np.asarray(x, dtype=float)
    per = round(fs_hz)
    n = xf.shape[-1] // per
    segs = xf[..., : n * per].reshape(*xf.shape[:-1], n, per)
    std: FloatArray = (segs @ _detrend_projector(per)).std(axis=-1)
    return std


def movement_index(x: npt.ArrayLike, fs_hz: float, profile: BedSensorProfile = BedSensorProfile()) -> float:
    """Fraction (0-1) of 1-s segments of ``x`` whose linearly detrended std marks movement."""
    std = segment_std(x, fs_hz)
    if len(std) == 0:
        return float("nan")
    return float(np.mean(std > profile.movement_std_counts))


def presence_rows(x: FloatArray, fs_hz: float, profile: BedSensorProfile = BedSensorProfile()) -> npt.NDArray[np.bool_]:
    """:func:`presence` of each row of ``x`` (shape (m, n)); shape (m,)."""
    band = _filtfilt("presence", fs_hz, x)
    mad = 1.4826 * np.median(np.abs(band - np.median(band, axis=1, keepdims=True)), axis=1)
    out: npt.NDArray[np.bool_] = mad > profile.presence_factor * profile.noise_floor_counts
    return out


def presence(x: npt.ArrayLike, fs_hz: float, profile: BedSensorProfile = BedSensorProfile()) -> bool:
    """Whether someone lies on the sensor: 0.1-20 Hz amplitude above the noise floor.

    The amplitude is the median absolute deviation scaled to a std (x 1.4826), robust to
    a movement burst in an otherwise empty window.
    """
    return bool(presence_rows(_rows(x), fs_hz, profile)[0])


def heart_envelope(x: npt.ArrayLike, fs_hz: float) -> FloatArray:
    """Hilbert envelope of the 3-15 Hz band along the last axis of ``x`` ((n,) or (m, n)).

    Compute once per epoch and pass windows of it to :func:`heart_rate_rows`.
    """
    xf = np.asarray(x, dtype=float)
    band = _filtfilt("heart", fs_hz, xf.reshape(-1, xf.shape[-1]))
    env: FloatArray = np.abs(signal.hilbert(band, axis=-1)).reshape(xf.shape)
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
    for i in np.flatnonzero(ok):
        out[i] = _acf_rate(acf[i], lo, hi, fs_hz)
    return out


def _acf_rate(acf: FloatArray, lo: int, hi: int, fs_hz: float) -> float:
    """Beats/min from one normalised autocorrelation: its dominant beat-period peak."""
    peaks, _ = signal.find_peaks(acf[lo : hi + 1])
    if len(peaks) == 0:
        return float("nan")
    peaks = peaks + lo
    best = int(peaks[np.argmax(acf[peaks])])
    if acf[best] < 0.15:
        return float("nan")
    # prefer the fundamental: an earlier peak near half the lag that is almost as strong
    for p in peaks[peaks < best]:
        if abs(p - best / 2) <= 0.12 * best and acf[p] >= 0.65 * acf[best]:
            best = int(p)
            break
    lag = float(best)
    if 0 < best < len(acf) - 1:  # parabolic interpolation of the peak
        a, b, c = acf[best - 1], acf[best], acf[best + 1]
        denom = a - 2 * b + c
        if denom < 0:
            lag += 0.5 * (a - c) / denom
    return 60.0 * fs_hz / lag


def heart_rate_bpm(x: npt.ArrayLike, fs_hz: float, *, envelope: FloatArray | None = None) -> float:
    """Mean heart rate (beats/min) of one window (>= 4 s) of BCG; NaN when no rhythm.

    ``envelope`` may pass this window's slice of :func:`heart_envelope` computed over a
    longer stretch, which saves refiltering and avoids window-edge transients.
    """
    env = heart_envelope(x, fs_hz) if envelope is None else np.asarray(envelope, dtype=float)
    return float(heart_rate_rows(_rows(env), fs_hz)[0])


def breath_band(x: npt.ArrayLike, fs_hz: float) -> FloatArray:
    """The respiratory band (zero-phase low-pass 0.7 Hz) along the last axis of ``x`` ((n,) or (m, n))."""
    xf = np.asarray(x, dtype=float)
    return _filtfilt("breath", fs_hz, xf.reshape(-1, xf.shape[-1])).reshape(xf.shape)


def breathing_rate_rows(band: FloatArray, fs_hz: float) -> FloatArray:
    """:func:`breathing_rate_per_min` of each row of respiratory bands, shape (m, n) -> (m,)."""
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
            out[i] = 60.0 * fs_r / np.median(np.diff(peaks))
    return out


def breathing_rate_per_min(x: npt.ArrayLike, fs_hz: float, *, band: FloatArray | None = None) -> float:
    """Breathing rate (breaths/min) of one window (>= 15 s); NaN with < 2 full breaths.

    ``band`` may pass :func:`breath_band` of ``x`` when the caller has it already.
    """
    low = breath_band(x, fs_hz) if band is None else band
    return float(breathing_rate_rows(_rows(low), fs_hz)[0])


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
    """:func:`breathing_pauses` of each row of respiratory bands (shape (m, n)).

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
    return breathing_pauses_rows(_rows(low), fs_hz, profile, moving_s=moving, min_s=min_s)[0]
