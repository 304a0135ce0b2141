"""Validation of a record's values against its field specs, with its fast path.

Every check raises :class:`~core.errors.ContractError` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.contract.records import (
    ID_PATTERN,
    MAX_FUTURE_SKEW_MS,
    MAX_PAST_SKEW_MS,
    MAX_TIME_MS,
    MIN_TIME_MS,
    PACKED,
    READ_VERSIONS,
    SCHEMA_VERSION,
    SPECS,
    TYPES,
    WIRE_NAMES,
    BedFrame,
    FieldSpec,
    FieldType,
    Record,
    StrapSample,
)
from core.errors import ContractError


def _check_time(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(name, f"expected integer milliseconds, got {type(value).__name__}")
    if not MIN_TIME_MS <= value < MAX_TIME_MS:
        raise ContractError(name, f"{value} is outside 2000-01-01..2100-01-01")
    return value


def _check_number(spec: FieldSpec, value: object, *, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(spec.name, f"expected a number, got {type(value).__name__}")
    if integer and not isinstance(value, int):
        raise ContractError(spec.name, f"expected an integer, got {value!r}")
    if not math.isfinite(value):
        raise ContractError(spec.name, f"{value} is not finite")
    if (spec.lo is not None and value < spec.lo) or (spec.hi is not None and value > spec.hi):
        raise ContractError(spec.name, f"{value} is outside [{spec.lo}, {spec.hi}]")
    return value


Checker = Callable[[object], Any]


def _checker(spec: FieldSpec) -> Checker:
    """The check of one wire value against its spec, returning its in-memory form.

    Chosen once per field (validation runs per record, so the type dispatch does not).
    """
    name, t = spec.name, spec.type

    def required(check: Checker) -> Checker:
        if spec.nullable:
            return lambda v: None if v is None else check(v)

        def not_null(v: object) -> object:
            if v is None:
                raise ContractError(name, "is required")
            return check(v)

        return not_null

    if name.endswith("_time_ms"):
        return required(lambda v: _check_time(name, v))
    if t is FieldType.STRING:

        def string(v: object) -> object:
            if not isinstance(v, str) or not ID_PATTERN.match(v):
                raise ContractError(name, f"expected 1-64 chars of [A-Za-z0-9:_.-], got {v!r}")
            return v

        return required(string)
    if t is FieldType.BOOL:

        def boolean(v: object) -> object:
            if not isinstance(v, bool):
                raise ContractError(name, f"expected true/false/null, got {v!r}")
            return v

        return required(boolean)
    if t in (FieldType.INT16, FieldType.INT32, FieldType.INT64):
        return required(lambda v: _check_number(spec, v, integer=True))
    if t is FieldType.FLOAT64:
        return required(lambda v: float(_check_number(spec, v, integer=False)))

    def listed(v: object) -> object:
        if t is FieldType.LIST_INT16 and isinstance(v, np.ndarray) and v.dtype == np.int16 and v.ndim == 1 and v.size:
            return tuple(v.tolist())  # unpacked from the v2 wire: int16 by construction
        if not isinstance(v, list | tuple):
            raise ContractError(name, f"expected a list, got {type(v).__name__}")
        if t is FieldType.LIST_INT16:
            return _coerce_int16_list(spec, v)
        return tuple(float(_check_number(spec, x, integer=False)) for x in v)

    return required(listed)


def int16_array(spec: FieldSpec, value: list[Any] | tuple[Any, ...]) -> npt.NDArray[Any]:
    """``value`` as a flat integer array whose values all fit int16; else a :class:`ContractError`."""
    if not value:
        raise ContractError(spec.name, "is empty")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged or mixed content
        raise ContractError(spec.name, f"not a flat list of integers ({exc})") from None
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ContractError(spec.name, f"expected integers, got array of {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < -32768 or hi > 32767:
        raise ContractError(spec.name, f"values {lo}..{hi} exceed int16")
    return arr


def _coerce_int16_list(spec: FieldSpec, value: list[Any] | tuple[Any, ...]) -> tuple[int, ...]:
    arr = int16_array(spec, value)
    return tuple(value) if isinstance(value, tuple) else tuple(arr.tolist())


def _check_record(rec: Record) -> None:
    """Cross-field rules that no single field can check."""
    if rec.event_time_ms > rec.ingest_time_ms + MAX_FUTURE_SKEW_MS:
        ahead_s = (rec.event_time_ms - rec.ingest_time_ms) / 1000
        raise ContractError("event_time_ms", f"{ahead_s:.0f} s after its ingest time")
    if rec.ingest_time_ms - rec.event_time_ms > MAX_PAST_SKEW_MS:
        behind_h = (rec.ingest_time_ms - rec.event_time_ms) / 3_600_000
        raise ContractError("event_time_ms", f"{behind_h:.1f} h before its ingest time (device clock wrong?)")
    if isinstance(rec, StrapSample):
        if rec.hr_bpm < 25 and not (rec.hr_bpm == 0 and rec.sensor_contact is False):
            raise ContractError("hr_bpm", f"{rec.hr_bpm} bpm is implausible (0 only without contact)")
    elif isinstance(rec, BedFrame) and rec.duration_ms > 10 * 60 * 1000:
        raise ContractError("samples", f"frame spans {rec.duration_ms / 1000:.0f} s (max 600 s)")


_CHECKERS: Final = {kind: tuple((s.name, _checker(s)) for s in specs) for kind, specs in SPECS.items()}

# Fast path of validation: a value of exactly the expected type and plainly within its
# bounds is taken as it is; anything else goes through the field's full checker, which
# accepts the same values and names what is wrong with the rest. Codes per field:
_TIME, _INT, _FLOAT, _STR, _BOOL, _FLOATS, _OTHER = range(7)


def _fast_code(spec: FieldSpec) -> int:
    if spec.name.endswith("_time_ms"):
        return _TIME
    if spec.type in (FieldType.FLOAT64, FieldType.LIST_FLOAT64) and (spec.lo is None or spec.hi is None):
        return _OTHER  # the bounds are what keep NaN and infinities off the fast path
    return {
        FieldType.INT16: _INT,
        FieldType.INT32: _INT,
        FieldType.INT64: _INT,
        FieldType.FLOAT64: _FLOAT,
        FieldType.STRING: _STR,
        FieldType.BOOL: _BOOL,
        FieldType.LIST_FLOAT64: _FLOATS,
    }.get(spec.type, _OTHER)


_PLANS: Final = {
    kind: tuple(
        (
            s.name,
            _fast_code(s),
            s.nullable,
            -math.inf if s.lo is None else s.lo,
            math.inf if s.hi is None else s.hi,
            check,
        )
        for s, (_, check) in zip(specs, _CHECKERS[kind], strict=True)
    )
    for kind, specs in SPECS.items()
}


def _checked_values(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """Every field of ``kind`` from ``values``, checked (fast path first, then the full checker)."""
    out: dict[str, Any] = {}
    get = values.get
    match = ID_PATTERN.match
    for name, code, nullable, lo, hi, check in _PLANS[kind]:
        v: Any = get(name)
        t = type(v)
        if v is None and nullable:
            out[name] = None
        elif (
            (code == _TIME and t is int and MIN_TIME_MS <= v < MAX_TIME_MS)
            or (code == _INT and t is int and lo <= v <= hi)
            or (code == _STR and t is str and match(v))
            or (code == _BOOL and t is bool)
            or (code == _FLOAT and t is float and lo <= v <= hi)
        ):
            out[name] = v
        elif code == _FLOATS and t is list and all(type(x) is float and lo <= x <= hi for x in v):
            out[name] = tuple(v)
        else:
            out[name] = check(v)
    return out


def _build(kind: str, values: dict[str, Any]) -> Record:
    rec = TYPES[kind](**_checked_values(kind, values))
    _check_record(rec)
    return rec


def validate(rec: Record) -> Record:
    """Re-check an in-memory record against the contract; returns it unchanged."""
    return _build(rec.kind, {s.name: getattr(rec, s.name) for s in SPECS[rec.kind]})


def _unpack_int16(name: str, value: object) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A version-2 packed int16 field: base64 of little-endian int16 values."""
    if not isinstance(value, str):
        raise ContractError(name, f"expected base64 text, got {type(value).__name__}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError(name, "is not valid base64") from None
    if not raw:
        raise ContractError(name, "is empty")
    if len(raw) % 2:
        raise ContractError(name, f"{len(raw)} bytes is not a whole number of int16 values")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16, copy=False)


def from_values(obj: dict[str, Any], *, wire: bool) -> Record:
    """A wire dictionary (``wire``: int16 lists packed from v2 on) or a lake row (lists)."""
    version = obj.get("schema_version")
    if isinstance(version, bool) or version not in READ_VERSIONS:
        raise ContractError("schema_version", f"unsupported version {version!r} (this reader: 1, 2)")
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in TYPES:
        raise ContractError("kind", f"unknown kind {kind!r} (expected one of {sorted(TYPES)})")
    layout = version if wire else 1
    unknown = obj.keys() - WIRE_NAMES[kind, layout]
    if unknown:
        raise ContractError(sorted(unknown)[0], f"not a field of a version-{version} {kind} record")
    values = dict(obj)
    values["schema_version"] = SCHEMA_VERSION
    if layout >= 2:
        for name, key in PACKED[kind]:
            if values.get(key) is not None:
                values[name] = _unpack_int16(key, values.pop(key))
    rec = _build(kind, values)
    claimed = obj.get("record_id")
    if claimed is not None and claimed != rec.record_id:
        raise ContractError("record_id", f"{claimed!r} does not match its content ({rec.record_id})")
    return rec
