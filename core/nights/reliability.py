"""Whether a night is like the nights the stager learnt from, or its staging should not be trusted.

A staged hypnogram reads as certain; these rules say when it is not, with the reason:

* **flat heart rate** (e.g. beta-blockers, a pacemaker): the heart rate's standard deviation
  over the night in bed under :data:`MIN_HR_SD_BPM`, little more than half the flattest
  night the heart-rate stager was trained on (sleep-accel's 21 nights: 3.6-12.4 beats/min,
  ``tests/test_reliability.py`` recomputes it), so the stage-dependent changes it reads are
  not there. (The simulator's nights sit at 2.9-3.4: flatter than every real training night,
  a limit of the simulator, not flagged);
* **RR as irregular as atrial fibrillation**: in at least :data:`MAX_IRREGULAR_SHARE` of the
  epochs with beats, the raw intervals' RMSSD over their mean (normalised RMSSD) is above
  :data:`IRREGULAR_NRMSSD`; the stager's heart-rate and HRV features assume sinus rhythm.
  Dash S. et al., "Automatic real time detection of atrial fibrillation", Ann. Biomed. Eng.
  37:1701-1709, 2009, separate AF from sinus rhythm with normalised RMSSD above 0.1 (with two
  other statistics); sinus rhythm in sleep stays near 0.03-0.08;
* **too little data**: heart rate in under :data:`MIN_COVERAGE_PCT` % of the night in bed.

A night flagged is still staged and summarised; the report and the night page say
"staging unreliable" with the reason next to the hypnogram.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "IRREGULAR_NRMSSD",
    "MAX_IRREGULAR_SHARE",
    "MIN_COVERAGE_PCT",
    "MIN_HR_SD_BPM",
    "irregular_epochs",
    "unreliable_reason",
]

MIN_HR_SD_BPM: Final = 2.0
IRREGULAR_NRMSSD: Final = 0.12
MAX_IRREGULAR_SHARE: Final = 0.5
MIN_COVERAGE_PCT: Final = 50.0
_MIN_BEATS: Final = 15


def irregular_epochs(
    grid_ms: npt.ArrayLike, beat_t_s: npt.ArrayLike | None, rr_ms: npt.ArrayLike | None
) -> npt.NDArray[np.float64]:
    """Per epoch (n_epochs,): 1.0 where the raw RR intervals ending in it (``beat_t_s`` s from
    ``grid_ms[0]``; only 300-2000 ms kept) have a normalised RMSSD above :data:`IRREGULAR_NRMSSD`,
    0.0 where not, NaN with fewer than 15 beats."""
    grid = np.asarray(grid_ms, dtype=np.int64)
    out = np.full(len(grid), np.nan)
    if beat_t_s is None or rr_ms is None or not len(grid):
        return out
    t, rr = np.asarray(beat_t_s, dtype=float), np.asarray(rr_ms, dtype=float)
    order = np.argsort(t, kind="stable")
    t, rr = t[order], rr[order]
    ok = (rr >= 300.0) & (rr <= 2000.0)
    t, rr = t[ok], rr[ok]
    epoch = np.floor(t * 1000.0 / 30_000.0).astype(np.int64)
    for k in np.unique(epoch[(epoch >= 0) & (epoch < len(grid))]).tolist():
        x = rr[epoch == k]
        if len(x) >= _MIN_BEATS:
            nrmssd = float(np.sqrt(np.mean(np.diff(x) ** 2)) / np.mean(x))
            out[k] = float(nrmssd > IRREGULAR_NRMSSD)
    return out


def unreliable_reason(hr_bpm: npt.ArrayLike, irregular: npt.ArrayLike, coverage_pct: float) -> str | None:
    """Why a night's staging is unreliable (module docstring), or None. ``hr_bpm`` and
    ``irregular`` (n_in_bed_epochs,) over the night in bed, NaN where not measured."""
    hr = np.asarray(hr_bpm, dtype=float)
    hr = hr[np.isfinite(hr)]
    if coverage_pct < MIN_COVERAGE_PCT:
        return (
            f"heart rate in {coverage_pct:.0f} % of the night in bed (under {MIN_COVERAGE_PCT:.0f} %):"
            " too little to stage"
        )
    irr = np.asarray(irregular, dtype=float)
    irr = irr[np.isfinite(irr)]
    if len(irr) >= 120 and float(irr.mean()) >= MAX_IRREGULAR_SHARE:
        return (
            f"beat-to-beat intervals irregular in {100 * irr.mean():.0f} % of the epochs with beats, as in atrial"
            " fibrillation: the stager assumes sinus rhythm"
        )
    if len(hr) >= 120 and float(hr.std()) < MIN_HR_SD_BPM:
        return (
            f"heart rate flat (SD {hr.std():.1f} beats/min over the night, under {MIN_HR_SD_BPM:g}; the stager's"
            " training nights 3.6-12.4), as under beta-blockers or pacing: the stage changes it reads are missing"
        )
    return None
