"""Adult norms of the stage split, to flag a hypnogram whose shares of sleep are implausible.

Healthy adults spend roughly 45-60 % of sleep in light sleep (N1 + N2), 13-23 % in deep
sleep (N3) and 20-25 % in REM (Ohayon M.M. et al., "Meta-analysis of quantitative sleep
parameters from childhood to old age in healthy individuals", Sleep 27(7):1255-73,
2004; Carskadon & Dement 2011). The bands below are wider, to flag only what no adult
night plausibly shows: a share outside them says more about the stager (hr-mlp-v1:
4-class κ 0.39 against polysomnography) than about the sleeper.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["STAGE_SHARE_BANDS", "stage_share_flags"]

#: stage -> (lowest, highest) plausible share of total sleep time, %.
STAGE_SHARE_BANDS: Final = {"light": (35.0, 75.0), "deep": (5.0, 35.0), "rem": (10.0, 35.0)}


def stage_share_flags(summary: Mapping[str, Any]) -> dict[str, str]:
    """Stage -> a sentence, for each ``<stage>_pct`` of ``summary`` outside :data:`STAGE_SHARE_BANDS`."""
    out: dict[str, str] = {}
    for stage, (lo, hi) in STAGE_SHARE_BANDS.items():
        pct = summary.get(f"{stage}_pct")
        if pct is None or not math.isfinite(float(pct)):
            continue
        if not lo <= float(pct) <= hi:
            out[stage] = (
                f"{float(pct):.0f} % is outside the {lo:.0f}-{hi:.0f} % adult nights show: "
                "read this stage's time as the stager's error, not as the sleeper's"
            )
    return out
