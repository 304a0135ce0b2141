"""Per-record work of the speed layer: decode, validate, compute live documents.

Pure functions of one record's bytes, so the output never depends on batching.
"""

from __future__ import annotations

from typing import Any, Final

from core.contract import BedFrame, StrapSample, from_wire
from core.vitals import bed_epoch_vitals

__all__ = ["EPOCH_INDEX", "STRAP_INDEX", "documents_for"]

#: Index of per-epoch bed vitals.
EPOCH_INDEX: Final = "sleepstack-vitals"
#: Index of per-notification strap samples (live heart-rate trace).
STRAP_INDEX: Final = "sleepstack-strap"

Doc = tuple[str, dict[str, Any]]


def documents_for(data: bytes) -> tuple[str, list[Doc]]:
    """The record id and the (index, document) pairs one wire record yields.

    Raises ContractError if the record is invalid. A bed frame that covers no complete
    epoch (the partial frames around a BLE gap) yields no documents.
    """
    rec = from_wire(data)
    if isinstance(rec, StrapSample):
        return rec.record_id, [
            (
                STRAP_INDEX,
                {
                    "doc_id": rec.record_id,
                    "record_id": rec.record_id,
                    "subject_id": rec.subject_id,
                    "device_id": rec.device_id,
                    "event_time_ms": rec.event_time_ms,
                    "hr_bpm": rec.hr_bpm,
                    "rr_ms": list(rec.rr_ms),
                    "sensor_contact": rec.sensor_contact,
                },
            )
        ]
    assert isinstance(rec, BedFrame)  # noqa: S101 - narrowing a closed union
    docs = bed_epoch_vitals(
        rec.samples,
        rec.fs_hz,
        rec.event_time_ms,
        subject_id=rec.subject_id,
        device_id=rec.device_id,
        record_id=rec.record_id,
    )
    return rec.record_id, [(EPOCH_INDEX, d) for d in docs]
