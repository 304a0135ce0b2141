"""The speed layer's per-device state: epochs assembled across Lambda invocations.

A strap sends one notification a second, so a 30-s epoch's HRV needs records that
arrive in different batches, and alerts need the history of epochs before them. This
module keeps that state per device as a small JSON-able dict and advances it with the
device's next records, so the same records give the same epoch and alert documents
however they are batched or redelivered:

* records of one device are applied in stream order (Kinesis keeps the order of a
  partition key, and the collector uses the device as the key);
* a strap epoch collects its notifications as a set keyed by record id — a record seen
  again is a duplicate and changes nothing; the epoch is published as ``complete`` once a
  record of a later epoch arrives (its partial state is published in the meantime);
* a bed frame covers its epochs by itself (the collector frames on the epoch grid);
* a record behind the device's watermark — an epoch already closed, or a bed frame not
  after the last one — is a redelivery (or, rarely, a late sample) and is counted, not
  applied: the batch layer recomputes such nights from the raw lake;
* alerts come from closed epochs only, through :class:`core.live.alerts.AlertTracker`.

Documents are returned as ``(kind, document)`` with kind ``vitals``, ``alerts`` or
``samples`` (the per-notification heart-rate trace).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from core.contract import BedFrame, Record, StrapSample
from core.contract.epochs import EPOCH_MS
from core.live.alerts import AlertRules, AlertTracker
from core.signals.vitals import BedRun, bed_runs_vitals, strap_epoch_vitals

__all__ = ["STATE_VERSION", "Advance", "advance", "bed_frames_vitals", "strap_sample_doc"]

STATE_VERSION: Final = 1
Doc = tuple[str, dict[str, Any]]


@dataclass
class Advance:
    """What applying a device's records produced."""

    state: dict[str, Any]
    docs: list[Doc] = field(default_factory=list)
    #: ids of applied records that produced no document of their own
    without_documents: list[str] = field(default_factory=list)
    #: ids of records behind the watermark (redeliveries), not applied
    behind: list[str] = field(default_factory=list)


def strap_sample_doc(rec: StrapSample, record_id: str | None = None) -> dict[str, Any]:
    """The ``samples`` document of one strap notification (``record_id``: its id, if known already)."""
    rid = rec.record_id if record_id is None else record_id
    return {
        "doc_id": rid,
        "record_id": rid,
        "subject_id": rec.subject_id,
        "device_id": rec.device_id,
        "event_time_ms": rec.event_time_ms,
        "hr_bpm": rec.hr_bpm,
        "rr_ms": list(rec.rr_ms),
        "sensor_contact": rec.sensor_contact,
    }


def _new_state(rec: Record) -> dict[str, Any]:
    return {
        "v": STATE_VERSION,
        "device_id": rec.device_id,
        "subject_id": rec.subject_id,
        "source": rec.kind,
        "last_frame_ms": None,
        "open_epoch_ms": None,
        "open": [],  # strap: [event_time_ms, record_id, hr_bpm, [rr_ms...], contact, device_time_ms], sorted
        "alerts": None,
    }


def _strap_doc(state: dict[str, Any], *, complete: bool) -> dict[str, Any]:
    rows = state["open"]
    return strap_epoch_vitals(
        [v for r in rows for v in r[3]],
        int(state["open_epoch_ms"]),
        subject_id=state["subject_id"],
        device_id=state["device_id"],
        reported_hr_bpm=[r[2] for r in rows],
        contact=tuple(r[4] for r in rows),
        complete=complete,
    )


def bed_frames_vitals(records: Iterable[Record]) -> dict[str, list[dict[str, Any]]]:
    """Epoch vitals of every bed frame among ``records``, by record id, computed together.

    A batch's frames (from all its devices) go through :func:`core.signals.vitals.bed_runs_vitals`
    in one call; pass the result to :func:`advance` as ``bed_vitals``.
    """
    frames = [r for r in records if isinstance(r, BedFrame)]
    runs = [BedRun(f.samples, f.fs_hz, f.event_time_ms, f.subject_id, f.device_id, f.record_id) for f in frames]
    return {f.record_id: docs for f, docs in zip(frames, bed_runs_vitals(runs), strict=True)}


def advance(
    state: dict[str, Any] | None,
    records: Iterable[Record],
    rules: AlertRules,
    *,
    bed_vitals: Mapping[str, list[dict[str, Any]]] | None = None,
) -> Advance:
    """Apply one device's next records (in stream order) to its state.

    ``state`` is what the previous call returned (None for a device never seen). The
    returned state must be persisted only after the returned documents are stored.
    ``bed_vitals`` may hold the frames' epoch vitals computed beforehand for a whole batch
    (:func:`bed_frames_vitals`); without it they are computed here.
    """
    records = list(records)
    if bed_vitals is None:
        bed_vitals = bed_frames_vitals(records)
    out: Advance | None = None
    tracker: AlertTracker | None = None
    dirty = False
    for rec in records:
        if out is None:
            out = Advance(dict(state) if state else _new_state(rec))
            out.state["open"] = [list(r) for r in out.state["open"]]
            tracker = AlertTracker.from_state(rules, out.state["alerts"])
        assert tracker is not None  # noqa: S101 - set with out
        st = out.state
        if rec.subject_id != st["subject_id"]:  # the device was handed to another subject
            if st["open"]:
                _close_strap(out, tracker)
            st.update(_new_state(rec))
            tracker = AlertTracker(rules)
            dirty = False
        if isinstance(rec, StrapSample):
            dirty |= _apply_strap(out, tracker, rec)
        elif isinstance(rec, BedFrame):
            _apply_bed(out, tracker, rec, bed_vitals)
    if out is None:
        return Advance(state or {})
    assert tracker is not None  # noqa: S101
    if dirty and out.state["open"]:
        out.docs.append(("vitals", _strap_doc(out.state, complete=False)))
    out.state["alerts"] = tracker.to_state()
    return out


def _close_strap(out: Advance, tracker: AlertTracker) -> None:
    doc = _strap_doc(out.state, complete=True)
    out.docs.append(("vitals", doc))
    out.docs.extend(("alerts", a) for a in tracker.observe(doc))
    out.state["open"] = []


def _apply_strap(out: Advance, tracker: AlertTracker, rec: StrapSample) -> bool:
    st = out.state
    rid = rec.record_id
    epoch = rec.event_time_ms - rec.event_time_ms % EPOCH_MS
    open_ms = st["open_epoch_ms"]
    if open_ms is not None and epoch < open_ms:
        out.behind.append(rid)
        return False
    if open_ms is not None and epoch > open_ms:
        _close_strap(out, tracker)
    rows = st["open"]  # sorted by (event time, record id)
    at = bisect.bisect_left(rows, (rec.event_time_ms, rid), key=_row_key)
    if at < len(rows) and rows[at][1] == rid:
        out.behind.append(rid)  # the same notification again
        return False
    st["open_epoch_ms"] = epoch
    rows.insert(at, [rec.event_time_ms, rid, rec.hr_bpm, list(rec.rr_ms), rec.sensor_contact, rec.device_time_ms])
    out.docs.append(("samples", strap_sample_doc(rec, rid)))
    return True


def _row_key(row: list[Any]) -> tuple[int, str]:
    return row[0], row[1]


def _apply_bed(
    out: Advance, tracker: AlertTracker, rec: BedFrame, bed_vitals: Mapping[str, list[dict[str, Any]]]
) -> None:
    st = out.state
    last = st["last_frame_ms"]
    if last is not None and rec.event_time_ms <= last:
        out.behind.append(rec.record_id)
        return
    st["last_frame_ms"] = rec.event_time_ms
    docs = bed_vitals[rec.record_id]
    if not docs:
        out.without_documents.append(rec.record_id)
    for d in docs:
        out.docs.append(("vitals", d))
        out.docs.extend(("alerts", a) for a in tracker.observe(d))
