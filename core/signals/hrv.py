"""RR-interval cleaning and time-domain heart-rate variability.

Cleaning follows the usual rules: an absolute physiological range (300-2000 ms, i.e.
30-200 bpm); a relative rule that rejects an interval differing by more than 20 % from
the median of its neighbours (ectopic beats, missed or extra detections; cf. Task Force of
the ESC and NASPE, "Heart rate variability: standards of measurement", Circulation 93(5),
1996); and a successive-difference rule after Kamath & Fallen (1995, in Malik & Camm,
*Heart Rate Variability*, pp. 75-85: an interval changing by more than 32.5 % from its
predecessor is suspect), applied to spikes only: an interval more than 32.5 % of the local
median away from both neighbours, in opposite directions, is rejected. That catches runs
of alternating premature and compensatory beats (bigeminy), in which the median of five
is itself an ectopic interval, and keeps steps of heart rate. RMSSD uses only
successive differences whose two intervals were both kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.ndimage import median_filter

__all__ = ["HrvSummary", "clean_rr", "hrv_summary", "notification_beats"]

RR_MIN_MS: Final = 300.0
RR_MAX_MS: Final = 2000.0
RELATIVE_TOLERANCE: Final = 0.20
SPIKE_TOLERANCE: Final = 0.325


def clean_rr(rr_ms: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Mask of RR intervals to keep; ``rr_ms`` shape (n,) in ms, consecutive beats."""
    rr = np.asarray(rr_ms, dtype=float)
    ok = np.isfinite(rr) & (rr >= RR_MIN_MS) & (rr <= RR_MAX_MS)
    if ok.sum() >= 3:
        ref = np.where(ok, rr, np.nan)
        filled = np.interp(np.arange(len(rr)), np.flatnonzero(ok), rr[ok])
        local = median_filter(filled, size=5, mode="nearest")
        ok &= np.abs(ref - local) <= RELATIVE_TOLERANCE * local
        # a spike against both neighbours (up then down, or down then up): premature and
        # compensatory beats, which the median misses when they alternate in runs (bigeminy)
        step = np.diff(filled)
        before, after = np.concatenate([[0.0], step]), np.concatenate([step, [0.0]])
        spike = (np.abs(before) > SPIKE_TOLERANCE * local) & (np.abs(after) > SPIKE_TOLERANCE * local)
        ok &= ~(spike & (np.sign(before) != np.sign(after)))
    mask: npt.NDArray[np.bool_] = ok
    return mask


@dataclass(frozen=True, slots=True)
class HrvSummary:
    """Time-domain summary of a run of RR intervals (NaN when too few beats)."""

    hr_bpm: float  # 60000 / mean kept RR
    rmssd_ms: float
    sdnn_ms: float
    n_rr: int  # intervals received
    artefact_fraction: float  # share of intervals rejected by cleaning


def hrv_summary(rr_ms: npt.ArrayLike, min_kept: int = 5) -> HrvSummary:
    """HR, RMSSD and SDNN of consecutive RR intervals ``rr_ms`` (shape (n,), ms)."""
    rr = np.asarray(rr_ms, dtype=float)
    if len(rr) == 0:
        return HrvSummary(float("nan"), float("nan"), float("nan"), 0, float("nan"))
    keep = clean_rr(rr)
    kept = rr[keep]
    frac = float(1 - keep.mean())
    if len(kept) < min_kept:
        return HrvSummary(float("nan"), float("nan"), float("nan"), len(rr), frac)
    both = keep[1:] & keep[:-1]
    diffs = np.diff(rr)[both]
    rmssd = float(np.sqrt(np.mean(diffs**2))) if len(diffs) >= 2 else float("nan")
    return HrvSummary(float(60000.0 / kept.mean()), rmssd, float(kept.std(ddof=1)), len(rr), frac)


def notification_beats(
    notify_ms: npt.ArrayLike, rr_lists: Sequence[npt.ArrayLike | None]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Beat times of Heart Rate Measurement notifications' RR intervals.

    A notification carries the intervals measured since the previous one, oldest first
    (Bluetooth Heart Rate Service 1.0, RR-Interval field), so its last interval ends about
    when it is sent and each earlier one ends an interval before the next. ``notify_ms``
    shape (n_notifications,) ms; ``rr_lists`` one list of intervals in ms (or None) per
    notification. Returns (beat end times ms, intervals ms), each shape (n_beats,), in
    notification order (not sorted: out-of-order notifications stay as they came).
    """
    t = np.asarray(notify_ms, dtype=float)
    ends: list[npt.NDArray[np.float64]] = []
    values: list[npt.NDArray[np.float64]] = []
    for at, rr in zip(t.tolist(), rr_lists, strict=True):
        r = np.asarray([] if rr is None else rr, dtype=float)
        if len(r) == 0:
            continue
        after = np.concatenate([np.cumsum(r[::-1])[::-1][1:], [0.0]])  # time from each beat to the last
        ends.append(at - after)
        values.append(r)
    if not ends:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(ends), np.concatenate(values)
