"""Apnoea screening from beat-to-beat intervals: the cyclic variation of heart rate (CVHR).

Obstructive apnoeas and hypopnoeas leave a signature in the heart rate: it falls during
each event and surges when breathing resumes with an arousal, so a run of events gives
heart-rate cycles of 25-120 s (Guilleminault C. et al., Lancet 1(8369):126-131, 1984).
Counting those cycles per hour screens for sleep apnoea from an ECG or a strap alone
(Hayano J. et al., Circ. Arrhythm. Electrophysiol. 4(1):64-72, 2011, whose ACAT detector
this follows in principle: cyclic dips of heart rate, accepted only when they recur at
apnoea periods; Penzel T. et al., Med. Biol. Eng. Comput. 40:402-407, 2002, the
PhysioNet/CinC Apnea-ECG challenge).

Method, with every parameter fixed in advance from those papers, not fitted:

1. clean NN intervals (:func:`core.signals.hrv.clean_rr`), heart rate 60000/NN interpolated at
   :data:`FS_HZ` over gaps up to :data:`MAX_GAP_S` (longer gaps are not analysed);
2. band-pass 1/120-1/25 Hz (4th-order Butterworth, zero phase): the apnoea-cycle band;
3. surges: peaks of the filtered heart rate at least :data:`MIN_SURGE_BPM` above the
   troughs on either side (prominence), at least 25 s apart;
4. a surge counts as a CVHR cycle when it belongs to a run of at least
   :data:`MIN_RUN` surges whose successive intervals are all 25-120 s: isolated surges
   (an arousal, a position change) are not apnoea cycles.

The index is cycles per hour of analysed time (sleep time when the caller masks wake):
a screening figure, not an apnoea-hypopnoea index scored from airflow. Inputs: beat end
times ``beat_t_s`` (n_beats,) s; intervals ``rr_ms`` (n_beats,) ms. Nothing here raises
on bad beats: too few or no clean beats give no cycles and zero analysed time.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, find_peaks, sosfiltfilt

from core.signals.hrv import clean_rr

__all__ = ["FS_HZ", "MAX_GAP_S", "MIN_RUN", "MIN_SURGE_BPM", "Cvhr", "cvhr_cycles"]

FS_HZ: Final = 2.0  # heart-rate resampling rate (Hayano 2011)
MAX_GAP_S: Final = 20.0  # longer stretches without clean beats split the analysis
MIN_SURGE_BPM: Final = 5.0  # surge prominence; apnoea surges are 10-30 bpm (Guilleminault 1984)
MIN_RUN: Final = 3  # surges in a row at apnoea periods
PERIOD_S: Final = (25.0, 120.0)  # apnoea-cycle lengths (Hayano 2011)
_MIN_SEGMENT_S: Final = 4 * PERIOD_S[1]  # shorter clean stretches cannot hold a run of cycles


@dataclass(frozen=True)
class Cvhr:
    """Detected cycles: surge times ``t_s`` (n_cycles,) s, and the seconds analysed."""

    t_s: npt.NDArray[np.float64]
    analysed_s: float

    def per_hour(self) -> float | None:
        """Cycles per hour of analysed time; None with no analysed time."""
        return len(self.t_s) / (self.analysed_s / 3600.0) if self.analysed_s > 0 else None


def _segments(t: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    """Index ranges of beats with no gap over :data:`MAX_GAP_S`."""
    cuts = np.flatnonzero(np.diff(t) > MAX_GAP_S) + 1
    bounds = [0, *cuts.tolist(), len(t)]
    return [(a, b) for a, b in pairwise(bounds) if b > a]


def _runs_of_cycles(peaks_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Peaks that sit in runs of :data:`MIN_RUN` or more with every interval in :data:`PERIOD_S`."""
    if len(peaks_s) < MIN_RUN:
        return np.zeros(0)
    gaps = np.diff(peaks_s)
    cyclic = (gaps >= PERIOD_S[0]) & (gaps <= PERIOD_S[1])
    keep = np.zeros(len(peaks_s), dtype=bool)
    start = 0
    for i in range(len(cyclic) + 1):
        if i == len(cyclic) or not cyclic[i]:
            if i + 1 - start >= MIN_RUN:  # peaks start..i joined by cyclic intervals
                keep[start : i + 1] = True
            start = i + 1
    out: npt.NDArray[np.float64] = peaks_s[keep]
    return out


def cvhr_cycles(beat_t_s: npt.ArrayLike, rr_ms: npt.ArrayLike) -> Cvhr:
    """CVHR cycles of a night's beats (see the module docstring)."""
    t = np.asarray(beat_t_s, dtype=float)
    rr = np.asarray(rr_ms, dtype=float)
    if len(t) != len(rr) or len(t) < 2:
        return Cvhr(np.zeros(0), 0.0)
    order = np.argsort(t, kind="stable")
    t, rr = t[order], rr[order]
    keep = clean_rr(rr) & np.isfinite(t)
    t, hr = t[keep], 60000.0 / rr[keep]
    sos = butter(4, [1.0 / PERIOD_S[1], 1.0 / PERIOD_S[0]], btype="bandpass", fs=FS_HZ, output="sos")
    found: list[npt.NDArray[np.float64]] = []
    analysed = 0.0
    for a, b in _segments(t):
        if t[b - 1] - t[a] < _MIN_SEGMENT_S:
            continue
        grid = np.arange(t[a], t[b - 1], 1.0 / FS_HZ)
        x = sosfiltfilt(sos, np.interp(grid, t[a:b], hr[a:b]))
        peaks, _ = find_peaks(x, prominence=MIN_SURGE_BPM, distance=int(PERIOD_S[0] * FS_HZ))
        found.append(_runs_of_cycles(grid[peaks]))
        analysed += float(grid[-1] - grid[0])
    cycles = np.concatenate(found) if found else np.zeros(0)
    return Cvhr(cycles, analysed)
