"""The stored form of a device's speed-layer state: compact bytes that fit one write unit.

DynamoDB bills a write by the item's size in 1-KB units, so a state of 1.4 KB (the JSON of
:mod:`core.live.epochs`) costs two write units. Most of a strap's state is its open
epoch: up to 30 rows, each with a 32-hex-character record id, an absolute event time and
RR intervals printed as decimal milliseconds. This codec stores the same state in fewer
bytes, losslessly (ADR 0007):

* the device id is the table's key and the state version is the codec's tag: both are
  dropped and restored on decode;
* a row's record id is derived, not stored, when the row carries the notification's
  device time: ids are SHA-256 of (kind, device, device time)
  (:func:`core.contract.records.make_record_id`), so the row keeps only the device time's
  offset from the event time (constant for a device, so it compresses to almost
  nothing). Rows without it (states written before the rows carried it) keep their id;
* a row's event time is stored relative to the open epoch's start;
* RR intervals that are whole 1/1024 s (as the Heart Rate Measurement characteristic,
  GATT 0x2A37, sends them) are stored as those integer units, others as milliseconds;
* the result is deflated (zlib, RFC 1950).

Format: one tag byte, then a zlib stream of compact JSON. ``0x02``: a device state of
:data:`core.live.epochs.STATE_VERSION` in the layout above; ``0x01``: any other JSON-able
state, deflated as is. A value that starts with ``{`` is the JSON a stack before this
codec wrote (a stack upgraded mid-night), and decodes as it was.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Final

from core.contract.records import make_record_id
from core.errors import StateCodecError
from core.live.epochs import STATE_VERSION

__all__ = ["decode_state", "encode_state"]

TAG_GENERIC: Final = b"\x01"
TAG_DEVICE: Final = b"\x02"
_STRAP: Final = "strap"
_RR_UNITS_PER_S: Final = 1024


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _rr_out(rr_ms: list[float]) -> list[int | float]:
    out: list[int | float] = []
    for x in rr_ms:
        units = round(x * _RR_UNITS_PER_S / 1000)
        out.append(units if units * 1000 / _RR_UNITS_PER_S == x else float(x))
    return out


def _rr_in(rr: list[int | float]) -> list[float]:
    return [v * 1000 / _RR_UNITS_PER_S if isinstance(v, int) else float(v) for v in rr]


def _compact_row(row: list[Any], device_id: str, epoch_ms: int) -> list[Any]:
    t_ms, rid, hr, rr, contact = row[:5]
    ident: int | str = rid
    if len(row) > 5 and make_record_id(_STRAP, device_id, int(row[5])) == rid:
        ident = int(row[5]) - int(t_ms)
    return [int(t_ms) - epoch_ms, ident, hr, _rr_out(rr), contact]


def _full_row(row: list[Any], device_id: str, epoch_ms: int) -> list[Any]:
    dt_ms, ident, hr, rr, contact = row
    t_ms = epoch_ms + int(dt_ms)
    if isinstance(ident, int):
        device_ms = t_ms + ident
        return [t_ms, make_record_id(_STRAP, device_id, device_ms), hr, _rr_in(rr), contact, device_ms]
    return [t_ms, ident, hr, _rr_in(rr), contact]


def _is_device_state(state: dict[str, Any], device_id: str) -> bool:
    return (
        state.get("v") == STATE_VERSION
        and state.get("device_id") == device_id
        and isinstance(state.get("open"), list)
        and (not state["open"] or isinstance(state.get("open_epoch_ms"), int))
    )


def encode_state(device_id: str, state: dict[str, Any]) -> bytes:
    """The stored bytes of ``device_id``'s state (``decode_state`` gives it back equal)."""
    if not _is_device_state(state, device_id):
        return TAG_GENERIC + zlib.compress(_dumps(state), 9)
    epoch_ms = state["open_epoch_ms"] or 0
    body = {k: v for k, v in state.items() if k not in ("v", "device_id", "open")}
    body["open"] = [_compact_row(r, device_id, epoch_ms) for r in state["open"]]
    return TAG_DEVICE + zlib.compress(_dumps(body), 9)


def decode_state(device_id: str, stored: bytes | str) -> dict[str, Any]:
    """A device's state from its stored form: this codec's bytes or the JSON of older stacks."""
    if isinstance(stored, str):
        stored = stored.encode()
    try:
        if stored[:1] == b"{":
            return dict(json.loads(stored))
        tag, packed = stored[:1], zlib.decompress(stored[1:])
        if tag == TAG_GENERIC:
            return dict(json.loads(packed))
        if tag != TAG_DEVICE:
            raise StateCodecError(f"unknown device-state tag {tag!r}")
        body = json.loads(packed)
        epoch_ms = body["open_epoch_ms"] or 0
        rows = [_full_row(r, device_id, epoch_ms) for r in body.pop("open")]
        return {"v": STATE_VERSION, "device_id": device_id, **body, "open": rows}
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise StateCodecError(f"a stored device state does not decode: {exc}") from exc
