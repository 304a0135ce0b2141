"""The night's two apnoea screens side by side: what each measures, its severity band, its validated range.

A night can carry two screening figures that count different things:

* ``pauses_per_hour`` (bed sensor): breathing-pause episodes, >= 10 s without respiratory
  movement, per hour of sleep the sensor observed (:mod:`core.nights.bed_events`). Measured
  against the simulator's truth within 1/h on nights up to ~30/h (``sleepstack evaluate
  report``); not yet against scored polysomnography.
* ``cvhr_per_hour`` (strap RR): the cyclic variation of heart rate apnoeas leave in the
  beat-to-beat intervals (:mod:`core.signals.cvhr`). Validated on 10 slpdb records of apnoea
  patients, all at or above 15 scored events per hour (``sleepstack evaluate cvhr``):
  it ranks patients well but undercounts the most severe nights, and nights without
  apnoea were not in its validation, so a figure under 15/h is outside what it was
  validated for.

Both are screening figures, not an apnoea-hypopnoea index scored from airflow and oxygen
saturation. The severity bands are the AASM's for an AHI (< 5 normal, 5-15 mild, 15-30
moderate, >= 30 severe events per hour). :func:`apnoea_screens` reports each figure
with its band and, when a night has both and their bands differ, says so instead of
letting two numbers contradict each other silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["SEVERITY_BANDS", "apnoea_screens", "severity"]

#: (upper bound per hour, band), AASM severity of an apnoea-hypopnoea index.
SEVERITY_BANDS: Final = ((5.0, "normal"), (15.0, "mild"), (30.0, "moderate"), (math.inf, "severe"))


@dataclass(frozen=True, slots=True)
class _Screen:
    name: str
    device: str
    measures: str
    validated: str
    lo_per_hour: float  # the range of true values it was validated on
    hi_per_hour: float


_SCREENS: Final = {
    "pauses_per_hour": _Screen(
        "breathing pauses",
        "bed sensor",
        "episodes of 10 s or more without breathing movement, per hour of sleep",
        "within 1/h of the simulator's truth on nights of 0-31 per hour (sleepstack evaluate report)",
        0.0,
        31.0,
    ),
    "cvhr_per_hour": _Screen(
        "heart-rate cycles (CVHR)",
        "chest strap",
        "cycles of heart rate that apnoeas leave in the beat-to-beat intervals, per hour of sleep",
        "on 10 slpdb apnoea patients at 15-70 scored events per hour: ranks them (Spearman 0.84), "
        "undercounts severe nights (sleepstack evaluate cvhr)",
        15.0,
        70.0,
    ),
}


def severity(per_hour: float | None) -> str | None:
    """The AASM severity band of an events-per-hour figure (None for None or NaN)."""
    if per_hour is None or not math.isfinite(per_hour):
        return None
    return next(band for bound, band in SEVERITY_BANDS if per_hour < bound)


def apnoea_screens(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The night's screens (:data:`_SCREENS` keys present in ``summary``) and whether they disagree.

    Returns ``{"screens": [...], "disagree": bool, "note": str | None}``; each screen has
    its ``value``, ``band``, what it ``measures``, how it was ``validated`` and
    ``outside_validation`` (a sentence, or None when the value is inside the range it
    was validated on).
    """
    screens = []
    for key, screen in _SCREENS.items():
        value = summary.get(key)
        if value is None or not math.isfinite(float(value)):
            continue
        lo, hi = screen.lo_per_hour, screen.hi_per_hour
        outside = None
        if not lo <= float(value) <= hi:
            outside = f"{float(value):.1f}/h is outside the {lo:g}-{hi:g}/h it was validated on"
        screens.append(
            {
                "key": key,
                "name": screen.name,
                "device": screen.device,
                "measures": screen.measures,
                "validated": screen.validated,
                "value": float(value),
                "band": severity(float(value)),
                "outside_validation": outside,
            }
        )
    disagree = len(screens) == 2 and screens[0]["band"] != screens[1]["band"]
    note = None
    if disagree:
        a, b = screens
        note = (
            f"The two screens disagree: {a['name']} {a['value']:.1f}/h ({a['band']}) against {b['name']} "
            f"{b['value']:.1f}/h ({b['band']}). They measure different things: the bed sensor sees breathing stop, "
            "the strap sees only the heart-rate cycles an apnoea leaves. Neither is a scored AHI; a disagreement is "
            "a reason for a polysomnography, not for choosing one."
        )
    return {"screens": screens, "disagree": disagree, "note": note}
