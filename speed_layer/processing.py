"""Per-record and per-device work of the speed layer, between the wire and the store.

* :func:`decode` turns one Kinesis record into a validated contract record, or raises
  :class:`~core.errors.ContractError` naming what is wrong (the handler quarantines it).
* :func:`apply_records` advances each device's state (:mod:`core.live.epochs`) with its
  records, in stream order, and returns the documents to index.

Document kinds and the time field each is placed by: ``vitals`` (epoch vitals of beds
and straps), ``alerts`` (clinical and technical), ``samples`` (per-notification strap
heart rate) and ``status`` (the collector's device statuses: link, battery, wear).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from core.contract import DeviceStatus, Measurement, Record, from_wire
from core.live.alerts import AlertRules
from core.live.device_health import HealthTracker, status_doc
from core.live.epochs import Advance, Doc, advance, bed_frames_vitals

__all__ = ["DOC_KINDS", "TIME_FIELD", "Applied", "apply_records", "decode"]

#: The time field of each document kind (sorting, daily index names, retention).
TIME_FIELD: Final = {
    "vitals": "epoch_start_ms",
    "alerts": "start_ms",
    "samples": "event_time_ms",
    "status": "event_time_ms",
}
#: Where a device's state keeps its technical-alert tracker (core.live.device_health).
HEALTH_KEY: Final = "health"
DOC_KINDS: Final = tuple(TIME_FIELD)


def decode(data: bytes) -> Record:
    """Decode and validate one stream record; raises ContractError naming what is wrong."""
    return from_wire(data, loads=orjson.loads)


@dataclass
class Applied:
    docs: list[Doc] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    without_documents: list[str] = field(default_factory=list)
    behind: list[str] = field(default_factory=list)


def apply_records(
    records: Iterable[Record],
    states: Mapping[str, dict[str, Any]],
    rules: AlertRules,
    rules_for: Callable[[str], AlertRules] | None = None,
) -> Applied:
    """Advance every device present in ``records`` (stream order) from its stored state.

    ``rules_for``: the alert rules of a subject (the registry's overrides,
    :class:`speed_layer.subject_rules.SubjectRules`); without it every device uses ``rules``.
    """
    by_device: dict[str, list[Measurement]] = {}
    statuses: dict[str, list[DeviceStatus]] = {}
    for rec in records:
        if isinstance(rec, DeviceStatus):
            statuses.setdefault(rec.device_id, []).append(rec)
        else:
            by_device.setdefault(rec.device_id, []).append(rec)
    bed = bed_frames_vitals(r for recs in by_device.values() for r in recs)  # all devices' frames at once
    out = Applied()
    for device in by_device.keys() | statuses.keys():
        stored = dict(states.get(device) or {})
        health_state = stored.pop(HEALTH_KEY, None)
        state = dict(stored)
        recs = by_device.get(device, [])
        if recs:
            mine = rules_for(recs[-1].subject_id) if rules_for is not None else rules
            adv: Advance = advance(stored or None, recs, mine, bed_vitals=bed)
            out.docs.extend(adv.docs)
            out.without_documents.extend(adv.without_documents)
            out.behind.extend(adv.behind)
            state = adv.state
        seen = statuses.get(device, [])
        if seen:
            tracker = HealthTracker.from_state(rules_for(seen[-1].subject_id) if rules_for else rules, health_state)
            alerts, behind = tracker.observe_all(seen)
            # every status is a fact worth its document (a restarted collector's may come late);
            # only the alert tracker skips those behind its watermark
            out.docs.extend(("status", status_doc(r)) for r in seen)
            out.docs.extend(("alerts", a) for a in alerts)
            out.behind.extend(behind)
            health_state = tracker.to_state()
        if health_state is not None:
            state[HEALTH_KEY] = health_state
        out.states[device] = state
    return out
