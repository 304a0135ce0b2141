"""RR-interval cleaning and time-domain heart-rate variability.

Cleaning follows the usual two-stage rule: an absolute physiological range
(300-2000 ms, i.e. 30-200 bpm) and a relative rule that rejects an interval differing
by more than 20 % from the median of its neighbours (ectopic beats, missed or extra
detections; cf. Task Force of the ESC and NASPE, "Heart rate variability: standards of
measurement", Circulation 93(5), 1996, and Kamath & Fallen 1995). RMSSD uses only
successive differences whose two intervals were both kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.ndimage import median_filter

__all__ = ["HrvSummary", "clean_rr", "hrv_summary"]

RR_MIN_MS: Final = 300.0
RR_MAX_MS: Final = 2000.0
RELATIVE_TOLERANCE: Final = 0.20


def clean_rr(rr_ms: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Mask of RR intervals to keep; ``rr_ms`` shape (n,) in ms, consecutive beats."""
    rr = np.asarray(rr_ms, dtype=float)
    ok = np.isfinite(rr) & (rr >= RR_MIN_MS) & (rr <= RR_MAX_MS)
    if ok.sum() >= 3:
        ref = np.where(ok, rr, np.nan)
        filled = np.interp(np.arange(len(rr)), np.flatnonzero(ok), rr[ok])
        local = median_filter(filled, size=5, mode="nearest")
        ok &= np.abs(ref - local) <= RELATIVE_TOLERANCE * local
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
