"""Per-record and per-device work of the speed layer, between the wire and the store.

* :func:`decode` turns one Kinesis record into a validated contract record, or raises
  :class:`~core.errors.ContractError` naming what is wrong (the handler quarantines it).
* :func:`apply_records` advances each device's state (:mod:`core.live.epochs`) with its
  records, in stream order, and returns the documents to index.

Document kinds and the time field each is placed by: ``vitals`` (epoch vitals of beds
and straps), ``alerts`` and ``samples`` (per-notification strap heart rate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from core.contract import Record, from_wire
from core.live.alerts import AlertRules
from core.live.epochs import Advance, Doc, advance, bed_frames_vitals

__all__ = ["DOC_KINDS", "TIME_FIELD", "Applied", "apply_records", "decode"]

#: The time field of each document kind (sorting, daily index names, retention).
TIME_FIELD: Final = {"vitals": "epoch_start_ms", "alerts": "start_ms", "samples": "event_time_ms"}
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
    by_device: dict[str, list[Record]] = {}
    for rec in records:
        by_device.setdefault(rec.device_id, []).append(rec)
    bed = bed_frames_vitals(r for recs in by_device.values() for r in recs)  # all devices' frames at once
    out = Applied()
    for device, recs in by_device.items():
        mine = rules_for(recs[-1].subject_id) if rules_for is not None else rules
        adv: Advance = advance(states.get(device), recs, mine, bed_vitals=bed)
        out.docs.extend(adv.docs)
        out.states[device] = adv.state
        out.without_documents.extend(adv.without_documents)
        out.behind.extend(adv.behind)
    return out
