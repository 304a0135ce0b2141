"""The wire codec: one compact UTF-8 JSON object per user record (versions 1 and 2)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from core.contract.records import MAX_RECORD_BYTES, READ_VERSIONS, SCHEMA_VERSION, SPECS, Record, wire_key
from core.contract.validation import from_values, int16_array
from core.errors import ContractError


def to_wire(rec: Record, *, version: int = SCHEMA_VERSION) -> bytes:
    """Encode a record as its wire form of contract ``version``: compact UTF-8 JSON."""
    if version not in READ_VERSIONS:
        raise ValueError(f"no wire form for contract version {version}")
    obj: dict[str, Any] = {"record_id": rec.record_id, "kind": rec.kind}
    for spec in SPECS[rec.kind]:
        value = getattr(rec, spec.name)
        key = wire_key(spec, version)
        if spec.name == "schema_version":
            value = version
        elif key != spec.name:
            value = base64.b64encode(int16_array(spec, value).astype("<i2").tobytes()).decode()
        elif isinstance(value, tuple):
            value = list(value)
        obj[key] = value
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _parse_json(data: bytes, fast: Callable[[bytes], Any] | None = None) -> dict[str, Any]:
    if not data:
        raise ContractError("<record>", "empty payload")
    if len(data) > MAX_RECORD_BYTES:
        raise ContractError("<record>", f"{len(data)} bytes exceeds the 1 MiB record limit")
    if fast is not None:
        try:
            obj = fast(data)
        except Exception:  # noqa: BLE001 - the standard parser below names what is wrong
            obj = None
        if isinstance(obj, dict):
            return obj
    try:
        obj = json.loads(data, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("<record>", f"not UTF-8 JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ContractError("<record>", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _reject_constant(name: str) -> float:
    raise ContractError("<record>", f"non-finite number {name} in JSON")


def from_dict(obj: dict[str, Any]) -> Record:
    """Build and validate a record from its wire dictionary (v1 or v2).

    The record has the current ``schema_version`` whichever version it was read from.
    """
    return from_values(obj, wire=True)


def from_wire(data: bytes, *, loads: Callable[[bytes], Any] | None = None) -> Record:
    """Decode and validate one wire record; raises :class:`ContractError` naming the field.

    ``loads`` may be a faster strict JSON parser (e.g. ``orjson.loads``, which rejects
    NaN/Infinity as JSON does); a payload it refuses is parsed again by the standard
    library parser, so the error names what is wrong either way.
    """
    return from_dict(_parse_json(data, loads))
