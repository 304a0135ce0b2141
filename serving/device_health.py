"""Each device's health as the dashboard shows it: battery, link, wear, last heard, flags.

From the registry's devices (and whom each is assigned to now), each device's newest
``status`` document (:meth:`serving.live_queries.LiveQueries.device_statuses`, the
collector's device statuses) and the open technical alerts, :func:`device_health`
gives one row per device with three flags a coordinator acts on:

* ``low_battery``: its last Battery Level is at or below the alert threshold
  (:attr:`core.live.alerts.AlertRules.battery_low_pct`);
* ``silent``: assigned to someone now, but no measurement heard for :data:`SILENT_MS`
  (or never): the device is off, out of range, or its collector has stopped;
* ``not_worn``: a strap whose last status reports no skin contact.

Times are ms UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from core.live.alerts import TECHNICAL, AlertRules
from core.registry import AssignmentIndex, Device

__all__ = ["SILENT_MS", "device_health"]

#: An assigned device not heard for this long is flagged silent.
SILENT_MS: Final = 5 * 60 * 1000


def device_health(
    devices: Iterable[Device],
    index: AssignmentIndex,
    statuses: Iterable[dict[str, Any]],
    open_alerts: Iterable[dict[str, Any]],
    *,
    now_ms: int,
    rules: AlertRules | None = None,
) -> list[dict[str, Any]]:
    """One row per registered device, by address (see the module's doc)."""
    threshold = (rules or AlertRules()).battery_low_pct
    newest = {d["device_id"]: d for d in statuses}
    technical: dict[str, list[str]] = {}
    for a in open_alerts:
        if a["kind"] in TECHNICAL:
            technical.setdefault(a["device_id"], []).append(a["kind"])
    out = []
    for d in sorted(devices, key=lambda d: d.address):
        status = newest.get(d.address, {})
        assigned = index.subject_at(d.address, now_ms)
        heard = status.get("last_notification_ms")
        battery = status.get("battery_pct")
        out.append(
            {
                **d.to_dict(),
                "assigned_to": assigned,
                "battery_pct": battery,
                "connected": status.get("connected"),
                "worn": status.get("worn"),
                "last_status_ms": status.get("event_time_ms"),
                "last_seen_ms": heard,
                "low_battery": battery is not None and battery <= threshold,
                "silent": assigned is not None and (heard is None or now_ms - int(heard) > SILENT_MS),
                "not_worn": status.get("worn") is False,
                "technical_alerts": sorted(technical.get(d.address, [])),
            }
        )
    return out
