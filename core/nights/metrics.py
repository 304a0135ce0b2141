"""Night summary metrics from a staged hypnogram, and the sleep score.

Definitions follow the AASM Scoring Manual (v3, 2023), "summary statistics":

* time in bed (TIB): recorded, scored epochs from lights-off to lights-on (here: the
  first to the last epoch in bed; unscored epochs, ``-1``, count for nothing);
* total sleep time (TST): epochs of any sleep stage;
* sleep onset latency (SOL): lights-off to the first epoch of sleep;
* wake after sleep onset (WASO): wake between the first and the last sleep epoch;
* sleep efficiency: TST / TIB in %;
* REM latency: sleep onset to the first REM epoch;
* minutes per stage, and each sleep stage's share of TST in %;
* awakenings: wake bouts of at least 1 min (2 epochs) between sleep onset and the last
  sleep epoch (the manual leaves the minimum bout open; 1 min ignores single-epoch
  flickers of an automatic scorer).

Sleep score (0-100, higher is better): a weighted sum of five sub-scores, each 1 in the
range the National Sleep Foundation calls good and falling linearly to 0 at the one it
calls poor or not recommended (Hirshkowitz M. et al., "National Sleep Foundation's sleep
time duration recommendations", Sleep Health 1:40-43, 2015, adults 18-64; Ohayon M. et
al., "National Sleep Foundation's sleep quality recommendations", Sleep Health 3:6-19,
2017):

==============================  ======  ==============  ==================
component                       weight  1 (good)        0 (poor)
==============================  ======  ==============  ==================
total sleep time                40      7-9 h           <= 6 h or >= 10 h
sleep efficiency                20      >= 85 %         <= 74 %
sleep onset latency             10      <= 30 min       >= 61 min
WASO                            15      <= 20 min       >= 51 min
awakenings longer than 5 min    15      <= 1            >= 4
==============================  ======  ==============  ==================

Stage shares are deliberately not scored: staging from heart rate agrees with PSG at
kappa ~0.4 (docs/science.md), too little to judge a night on its deep or REM minutes.

Inputs: ``stages`` shape (n_epochs,), :class:`~core.nights.stages.SleepStage` codes or ``-1``
(unscored) of consecutive 30-s epochs; times in minutes.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.contract.epochs import EPOCH_S
from core.nights.stages import SleepStage
from core.signals.runs import true_runs

__all__ = ["SCORE_COMPONENTS", "SCORE_DURATION", "night_metrics", "sleep_score", "wake_bouts"]

_EPOCH_MIN: Final = EPOCH_S / 60.0
_MIN_AWAKENING_EPOCHS: Final = 2
#: Total sleep time sub-score: weight and the (0, 1, 1, 0) corners of its trapezoid, hours.
SCORE_DURATION: Final = (40.0, (6.0, 7.0, 9.0, 10.0))
#: (metric, weight, good edge, poor edge) of the other piecewise-linear sub-scores.
SCORE_COMPONENTS: Final = (
    ("sleep_efficiency_pct", 20.0, 85.0, 74.0),
    ("sleep_onset_latency_min", 10.0, 30.0, 61.0),
    ("waso_min", 15.0, 20.0, 51.0),
    ("long_awakenings", 15.0, 1.0, 4.0),
)


def wake_bouts(asleep: npt.NDArray[np.bool_], scored: npt.NDArray[np.bool_]) -> list[int]:
    """Lengths (epochs) of scored-wake runs strictly between the first and last sleep epoch."""
    idx = np.flatnonzero(asleep)
    if len(idx) == 0:
        return []
    return [b - a for a, b in true_runs((~asleep & scored)[idx[0] : idx[-1] + 1])]


def _ramp(value: float, good: float, poor: float) -> float:
    """1 at or beyond ``good``, 0 at or beyond ``poor``, linear between (either direction)."""
    t = (value - poor) / (good - poor)
    return float(min(1.0, max(0.0, t)))


def sleep_score(m: dict[str, Any]) -> float | None:
    """The 0-100 sleep score of a :func:`night_metrics` result (None without sleep)."""
    tst_h = m["total_sleep_time_min"] / 60.0
    if not tst_h or not np.isfinite(m["waso_min"]):
        return None
    weight, (lo0, lo1, hi1, hi0) = SCORE_DURATION
    total = weight * min(_ramp(tst_h, lo1, lo0), _ramp(tst_h, hi1, hi0))
    for name, w, good, poor in SCORE_COMPONENTS:
        total += w * _ramp(float(m[name]), good, poor)
    return round(total, 1)


def night_metrics(stages: npt.ArrayLike) -> dict[str, Any]:
    """AASM summary statistics and the sleep score (see module docstring)."""
    s = np.asarray(stages)
    scored = s >= 0
    asleep = scored & (s != SleepStage.WAKE)
    tib = float(scored.sum() * _EPOCH_MIN)
    tst = float(asleep.sum() * _EPOCH_MIN)
    nan = float("nan")
    out: dict[str, Any] = {"time_in_bed_min": tib, "total_sleep_time_min": tst}
    if asleep.any():
        first = int(np.argmax(asleep))
        rem = np.flatnonzero(s[first:] == SleepStage.REM)
        bouts = wake_bouts(asleep, scored)
        out["sleep_onset_latency_min"] = float(scored[:first].sum() * _EPOCH_MIN)
        out["waso_min"] = float(sum(bouts) * _EPOCH_MIN)
        out["rem_latency_min"] = float(rem[0] * _EPOCH_MIN) if len(rem) else nan
        out["awakenings"] = sum(b >= _MIN_AWAKENING_EPOCHS for b in bouts)
        out["long_awakenings"] = sum(b * _EPOCH_MIN > 5.0 for b in bouts)
    else:
        out.update(sleep_onset_latency_min=nan, waso_min=nan, rem_latency_min=nan, awakenings=0, long_awakenings=0)
    out["sleep_efficiency_pct"] = 100.0 * tst / tib if tib else nan
    for stage in SleepStage:
        minutes = float((s == stage).sum() * _EPOCH_MIN)
        out[f"{stage.label}_min"] = minutes
        if stage != SleepStage.WAKE:
            out[f"{stage.label}_pct"] = 100.0 * minutes / tst if tst else nan
    out["sleep_score"] = sleep_score(out)
    return out
