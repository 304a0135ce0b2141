"""Technical alerts from a device's status records: silent, battery low, not worn.

The collector sends a :class:`~core.contract.DeviceStatus` per device on connect, on link
loss and every status interval (a minute by default), connected or not. A
:class:`HealthTracker` consumes one device's statuses in time order and returns alert
documents (:data:`core.live.alerts.ALERT_FIELDS`, ``category = "technical"``), raised once
and closed once like the clinical ones:

* ``device_silent``: the device sent no measurement (link down, or up but quiet) for
  ``device_silent_s``. The silence starts at its last measurement (``last_notification_ms``)
  or, for a device that never sent one, at its first silent status. ``value``: seconds.
* ``battery_low``: Battery Level at or below ``battery_low_pct`` (raised at once; closed
  when a status reads above it, a charged or replaced battery). ``value``: lowest %.
* ``not_worn``: a strap reports no skin contact (``worn`` false) for ``not_worn_s``; a
  status without contact information (a bed, a strap without the feature) neither
  extends nor ends it. ``value``: seconds.

A silent device is also flagged by the dashboard from its last status's age, which covers
a collector that stopped sending statuses at all. Times are ms UTC. State is a small
JSON-able dict kept with the device's speed-layer state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from core.contract import DeviceStatus, FieldType
from core.contract import doc_field as _f
from core.live.alerts import AlertKind, AlertRules, Run, alert_doc

__all__ = ["STATUS_FIELDS", "HealthTracker", "status_doc"]


#: Fields of a ``status`` document (speed-layer status index), one per device status.
STATUS_FIELDS: Final = (
    _f("doc_id", FieldType.STRING, "the status record's id", False),
    _f("record_id", FieldType.STRING, "the status record's id", False),
    _f("subject_id", FieldType.STRING, "pseudonymous subject id (the device's assignee then)", False),
    _f("device_id", FieldType.STRING, "device address", False),
    _f("device_kind", FieldType.STRING, "strap or bed", False),
    _f("event_time_ms", FieldType.INT64, "when the collector took the status, ms UTC", False),
    _f("connected", FieldType.BOOL, "link up then", False),
    _f("notifications", FieldType.INT32, "measurements since the previous status", False),
    _f("last_notification_ms", FieldType.INT64, "receive time of the last measurement, ms UTC"),
    _f("battery_pct", FieldType.INT32, "battery level, % (null: no Battery Service)"),
    _f("worn", FieldType.BOOL, "strap skin contact at its last measurement (null: bed or unsupported)"),
    _f("rssi_dbm", FieldType.INT32, "signal strength, dBm (null: not given)"),
)


def status_doc(rec: DeviceStatus) -> dict[str, Any]:
    """The live store's ``status`` document of one device status."""
    rid = rec.record_id
    return {
        "doc_id": rid,
        "record_id": rid,
        "subject_id": rec.subject_id,
        "device_id": rec.device_id,
        "device_kind": rec.device_kind,
        "event_time_ms": rec.event_time_ms,
        "connected": rec.connected,
        "notifications": rec.notifications,
        "last_notification_ms": rec.last_notification_ms,
        "battery_pct": rec.battery_pct,
        "worn": rec.worn,
        "rssi_dbm": rec.rssi_dbm,
    }


@dataclass
class HealthTracker:
    """Technical-alert state of one device; feed it its statuses in time order."""

    rules: AlertRules
    subject_id: str | None = None
    last_ms: int | None = None
    runs: dict[str, Run] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject_id,
            "last_ms": self.last_ms,
            "runs": {k: asdict(r) for k, r in self.runs.items()},
        }

    @classmethod
    def from_state(cls, rules: AlertRules, state: dict[str, Any] | None) -> HealthTracker:
        if not state:
            return cls(rules)
        runs = {k: Run(**r) for k, r in state.get("runs", {}).items()}
        return cls(rules, state.get("subject_id"), state.get("last_ms"), runs)

    def observe_all(self, records: Iterable[DeviceStatus]) -> tuple[list[dict[str, Any]], list[str]]:
        """Alert documents of ``records``, and the ids of those behind the last one seen (not applied)."""
        docs: list[dict[str, Any]] = []
        behind: list[str] = []
        for rec in records:
            if self.last_ms is not None and rec.event_time_ms <= self.last_ms:
                behind.append(rec.record_id)
                continue
            docs += self.observe(rec)
        return docs, behind

    def observe(self, rec: DeviceStatus) -> list[dict[str, Any]]:
        """Alert documents (raised or closed) caused by one more status."""
        out: list[dict[str, Any]] = []
        if self.subject_id is not None and rec.subject_id != self.subject_id:
            out += self.close_all(rec)  # the device went to another subject: its alerts were the last one's
        self.subject_id = rec.subject_id
        self.last_ms = t = rec.event_time_ms
        r = self.rules
        silent = not rec.connected or rec.notifications == 0
        since = rec.last_notification_ms if rec.last_notification_ms is not None else t
        self._run(out, rec, AlertKind.DEVICE_SILENT, silent, start=min(since, t), value=None)
        low = None if rec.battery_pct is None else rec.battery_pct <= r.battery_low_pct
        self._run(out, rec, AlertKind.BATTERY_LOW, low, start=t, value=rec.battery_pct)
        unworn = None if rec.worn is None or not rec.connected else not rec.worn
        self._run(out, rec, AlertKind.NOT_WORN, unworn, start=t, value=None)
        return out

    def close_all(self, rec: DeviceStatus) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kind in list(self.runs):
            out += self._close(rec, kind, self.subject_id or rec.subject_id)
        return out

    def _min_s(self, kind: str) -> float:
        r = self.rules
        return {AlertKind.DEVICE_SILENT: r.device_silent_s, AlertKind.BATTERY_LOW: 0, AlertKind.NOT_WORN: r.not_worn_s}[
            AlertKind(kind)
        ]

    def _threshold(self, kind: str) -> float:
        r = self.rules
        return {
            AlertKind.DEVICE_SILENT: r.device_silent_s,
            AlertKind.BATTERY_LOW: r.battery_low_pct,
            AlertKind.NOT_WORN: r.not_worn_s,
        }[AlertKind(kind)]

    def _run(
        self,
        out: list[dict[str, Any]],
        rec: DeviceStatus,
        kind: str,
        cond: bool | None,
        *,
        start: int,
        value: float | None,
    ) -> None:
        run = self.runs.get(kind)
        if cond is None:
            return
        if not cond:
            if run is not None:
                out += self._close(rec, kind, rec.subject_id, end_ms=rec.event_time_ms)
            return
        if run is None:
            run = self.runs[kind] = Run(start, start)
        run.end_ms = max(run.end_ms, rec.event_time_ms)
        if kind == AlertKind.BATTERY_LOW:
            run.value = value if run.value is None or value is None else min(run.value, value)
        else:
            run.value = (run.end_ms - run.start_ms) / 1000
        if not run.raised and run.end_ms - run.start_ms >= self._min_s(kind) * 1000:
            run.raised = True
            out.append(self._doc(rec, kind, run, rec.subject_id, closed=False))

    def _close(
        self, rec: DeviceStatus, kind: str, subject_id: str, *, end_ms: int | None = None
    ) -> list[dict[str, Any]]:
        run = self.runs.pop(kind)
        if end_ms is not None:
            run.end_ms = end_ms
            if kind != AlertKind.BATTERY_LOW:
                run.value = (run.end_ms - run.start_ms) / 1000
        return [self._doc(rec, kind, run, subject_id, closed=True)] if run.raised else []

    def _doc(self, rec: DeviceStatus, kind: str, run: Run, subject_id: str, *, closed: bool) -> dict[str, Any]:
        return alert_doc(
            subject_id=subject_id,
            device_id=rec.device_id,
            source=rec.device_kind,
            kind=kind,
            run=run,
            min_s=self._min_s(kind),
            threshold=self._threshold(kind),
            closed=closed,
        )
