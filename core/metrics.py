"""Night summary metrics from a staged hypnogram (AASM Scoring Manual v3 definitions).

Inputs: ``stages`` shape (n_epochs,) of :class:`~core.stages.SleepStage` codes for
consecutive 30-s epochs from lights-off to lights-on (the recording's first to last epoch
in bed). Times in minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from core.epochs import EPOCH_S
from core.stages import SleepStage

__all__ = ["night_metrics"]

_EPOCH_MIN = EPOCH_S / 60.0


def night_metrics(stages: npt.ArrayLike) -> dict[str, Any]:
    """Time in bed, TST, sleep onset latency, WASO, efficiency (%), minutes per stage."""
    s = np.asarray(stages)
    n = len(s)
    asleep = s != SleepStage.WAKE
    tib = n * _EPOCH_MIN
    tst = float(asleep.sum() * _EPOCH_MIN)
    if asleep.any():
        first, last = int(np.argmax(asleep)), n - 1 - int(np.argmax(asleep[::-1]))
        sol = first * _EPOCH_MIN
        waso = float((~asleep[first : last + 1]).sum() * _EPOCH_MIN)
    else:
        sol, waso = float("nan"), float("nan")
    out: dict[str, Any] = {
        "time_in_bed_min": tib,
        "total_sleep_time_min": tst,
        "sleep_onset_latency_min": sol,
        "waso_min": waso,
        "sleep_efficiency_pct": 100.0 * tst / tib if tib else float("nan"),
    }
    for stage in SleepStage:
        out[f"{stage.label}_min"] = float((s == stage).sum() * _EPOCH_MIN)
    return out
