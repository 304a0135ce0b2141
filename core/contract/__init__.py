"""Record contract v2: the one definition of every record sleepstack moves.

Two record types flow from devices to the stream:

* :class:`StrapSample` — one Heart Rate Measurement notification of a chest strap or
  watch (Bluetooth SIG Heart Rate Service): heart rate, the RR intervals that ended since
  the previous notification, sensor contact and energy expended.
* :class:`BedFrame` — a run of consecutive samples of an under-mattress
  ballistocardiogram/pressure channel, starting at ``device_time_ms``.

Each dataclass field carries a :class:`FieldSpec` in its metadata. From that single
definition come

* the wire encoding (:func:`to_wire` / :func:`from_wire`): one UTF-8 JSON object per
  user record, keys = field names. Version 2 (written by default) carries every int16
  list field (a bed frame's ``samples``) as ``<name>_i16le``: the values packed as
  little-endian int16 and base64-encoded, 2.7 bytes a sample instead of ~5 as a JSON
  array. Version 1 wrote them as JSON arrays; readers accept both, and a record decoded
  from either is the same record (its ``schema_version`` is the current one), so both
  land as the same lake row. Float lists (``rr_ms``) stay JSON arrays in both;
* validation with a typed :class:`~core.errors.ContractError` naming the field;
* the raw-lake row layout (:data:`RAW_FIELDS`, :func:`to_row`), one table for both kinds
  with the kind-specific columns nullable, as a Firehose Parquet conversion writes it;
* the Hive/Glue column types and the Spark DDL (:func:`hive_columns`, :func:`spark_ddl`).
  The Arrow schema is rendered from the same specs in ``batch_layer.lake_schema``.

Times are integer milliseconds since the Unix epoch, UTC. ``device_time_ms`` is the
device's own stamp (for a strap without a clock, the collector's receive stamp);
``event_time_ms`` is the time the record describes after clock correction, and is what
epochs, nights and partitions use. The record id is a deterministic hash of
(kind, device, device time), so a resend or a replay overwrites instead of duplicating.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from core.errors import ContractError

__all__ = [
    "MAX_RECORD_BYTES",
    "PACKED_SUFFIX",
    "RAW_FIELDS",
    "READ_VERSIONS",
    "SCHEMA_VERSION",
    "BedFrame",
    "FieldSpec",
    "FieldType",
    "Record",
    "StrapSample",
    "doc_field",
    "from_dict",
    "from_row",
    "from_wire",
    "hive_columns",
    "make_record_id",
    "spark_ddl",
    "to_row",
    "to_wire",
    "validate",
]

SCHEMA_VERSION: Final = 2
#: Wire versions the readers accept.
READ_VERSIONS: Final = (1, 2)
#: Suffix of a version-2 wire key holding an int16 list as base64 little-endian bytes.
PACKED_SUFFIX: Final = "_i16le"
#: Kinesis caps a record (data + partition key) at 1 MiB.
MAX_RECORD_BYTES: Final = 1_048_576
#: A record may be stamped at most this far after it was ingested (clock skew allowance).
MAX_FUTURE_SKEW_MS: Final = 5 * 60 * 1000
#: A record may describe a time at most this long before the collector received it: the
#: collector spools on receipt and stamps a bed frame with its last notification's receive
#: time, so more means a device clock that is wrong by hours.
MAX_PAST_SKEW_MS: Final = 60 * 60 * 1000
_MIN_TIME_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
_MAX_TIME_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z
_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9:_.-]{1,64}$")


class FieldType(StrEnum):
    """Logical column types; each renders to JSON, Arrow, Hive/Glue and Spark."""

    STRING = "string"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    FLOAT64 = "float64"
    BOOL = "bool"
    LIST_FLOAT64 = "list<float64>"
    LIST_INT16 = "list<int16>"
    LIST_INT64 = "list<int64>"


_HIVE: Final = {
    FieldType.STRING: "string",
    FieldType.INT16: "smallint",
    FieldType.INT32: "int",
    FieldType.INT64: "bigint",
    FieldType.FLOAT64: "double",
    FieldType.BOOL: "boolean",
    FieldType.LIST_FLOAT64: "array<double>",
    FieldType.LIST_INT16: "array<smallint>",
    FieldType.LIST_INT64: "array<bigint>",
}
_SPARK: Final = {
    FieldType.STRING: "STRING",
    FieldType.INT16: "SMALLINT",
    FieldType.INT32: "INT",
    FieldType.INT64: "BIGINT",
    FieldType.FLOAT64: "DOUBLE",
    FieldType.BOOL: "BOOLEAN",
    FieldType.LIST_FLOAT64: "ARRAY<DOUBLE>",
    FieldType.LIST_INT16: "ARRAY<SMALLINT>",
    FieldType.LIST_INT64: "ARRAY<BIGINT>",
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What one field is: type, whether it may be null, bounds (inclusive) and units."""

    type: FieldType
    doc: str
    nullable: bool = False
    lo: float | None = None
    hi: float | None = None
    name: str = ""  # filled in from the dataclass field name


def doc_field(name: str, ftype: FieldType, doc: str, nullable: bool = True) -> FieldSpec:
    """A named field of a derived document (vitals, alerts): one column of its mappings."""
    return FieldSpec(ftype, doc, nullable=nullable, name=name)


def _spec(
    ftype: FieldType,
    doc: str,
    *,
    nullable: bool = False,
    lo: float | None = None,
    hi: float | None = None,
) -> dict[str, FieldSpec]:
    return {"spec": FieldSpec(ftype, doc, nullable, lo, hi)}


@lru_cache(maxsize=1 << 16)
def make_record_id(kind: str, device_id: str, device_time_ms: int) -> str:
    """Deterministic record id: 32 hex chars of SHA-256 over (kind, device, device time)."""
    key = f"{kind}|{device_id}|{device_time_ms}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class StrapSample:
    """One Heart Rate Measurement notification (GATT 0x2A37) from a strap or watch."""

    kind: ClassVar[str] = "strap"

    device_id: str = field(metadata=_spec(FieldType.STRING, "device address or serial"))
    subject_id: str = field(metadata=_spec(FieldType.STRING, "pseudonymous subject id"))
    device_time_ms: int = field(metadata=_spec(FieldType.INT64, "device (or receive) stamp, ms since epoch UTC"))
    event_time_ms: int = field(metadata=_spec(FieldType.INT64, "clock-corrected time of the sample, ms UTC"))
    ingest_time_ms: int = field(metadata=_spec(FieldType.INT64, "time the collector spooled it, ms UTC"))
    hr_bpm: int = field(metadata=_spec(FieldType.INT32, "heart rate, beats/min (0 only without contact)", lo=0, hi=250))
    rr_ms: tuple[float, ...] = field(
        metadata=_spec(FieldType.LIST_FLOAT64, "RR intervals ended since last sample, ms", lo=1, hi=64_000)
    )
    sensor_contact: bool | None = field(
        metadata=_spec(FieldType.BOOL, "skin contact; null when unsupported", nullable=True)
    )
    energy_kj: int | None = field(
        metadata=_spec(FieldType.INT32, "energy expended, kJ; null when absent", nullable=True, lo=0, hi=65_535)
    )
    schema_version: int = field(default=SCHEMA_VERSION, metadata=_spec(FieldType.INT32, "record contract version"))

    @property
    def record_id(self) -> str:
        return make_record_id(self.kind, self.device_id, self.device_time_ms)


@dataclass(frozen=True, slots=True)
class BedFrame:
    """Consecutive samples of an under-mattress BCG/pressure channel (ADC counts, int16)."""

    kind: ClassVar[str] = "bed"

    device_id: str = field(metadata=_spec(FieldType.STRING, "device address or serial"))
    subject_id: str = field(metadata=_spec(FieldType.STRING, "pseudonymous subject id"))
    device_time_ms: int = field(metadata=_spec(FieldType.INT64, "device stamp of the first sample, ms since epoch UTC"))
    event_time_ms: int = field(metadata=_spec(FieldType.INT64, "clock-corrected time of the first sample, ms UTC"))
    ingest_time_ms: int = field(metadata=_spec(FieldType.INT64, "time the collector spooled it, ms UTC"))
    fs_hz: float = field(metadata=_spec(FieldType.FLOAT64, "sample rate, Hz", lo=10, hi=1000))
    samples: tuple[int, ...] = field(
        metadata=_spec(FieldType.LIST_INT16, "BCG/pressure samples, ADC counts", lo=-32768, hi=32767)
    )
    gap_samples: int = field(
        default=0,
        metadata=_spec(FieldType.INT32, "samples lost to a BLE gap just before this frame", lo=0, hi=2**31 - 1),
    )
    schema_version: int = field(default=SCHEMA_VERSION, metadata=_spec(FieldType.INT32, "record contract version"))

    @property
    def record_id(self) -> str:
        return make_record_id(self.kind, self.device_id, self.device_time_ms)

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.samples) / self.fs_hz


Record = StrapSample | BedFrame
_TYPES: Final[dict[str, type[StrapSample] | type[BedFrame]]] = {
    StrapSample.kind: StrapSample,
    BedFrame.kind: BedFrame,
}


def _specs_of(cls: type) -> tuple[FieldSpec, ...]:
    return tuple(dataclasses.replace(f.metadata["spec"], name=f.name) for f in dataclasses.fields(cls))


_SPECS: Final = {kind: _specs_of(cls) for kind, cls in _TYPES.items()}


def _wire_key(spec: FieldSpec, version: int) -> str:
    """The wire key of a field in a given contract version."""
    return spec.name + PACKED_SUFFIX if version >= 2 and spec.type is FieldType.LIST_INT16 else spec.name


#: Keys a wire record of each kind and version may have.
_WIRE_NAMES: Final = {
    (kind, version): frozenset({_wire_key(s, version) for s in specs} | {"record_id", "kind"})
    for kind, specs in _SPECS.items()
    for version in READ_VERSIONS
}


def _raw_fields() -> tuple[FieldSpec, ...]:
    """Union row layout of the raw lake: envelope first, then each kind's own fields."""
    envelope = (
        FieldSpec(FieldType.STRING, "deterministic record id", name="record_id"),
        FieldSpec(FieldType.STRING, "record kind: strap or bed", name="kind"),
    )
    seen = {s.name for s in envelope}
    out = list(envelope)
    common = set.intersection(*({s.name for s in specs} for specs in _SPECS.values()))
    for specs in _SPECS.values():
        for s in specs:
            if s.name not in seen:
                seen.add(s.name)
                out.append(s if s.name in common else dataclasses.replace(s, nullable=True))
    return tuple(out)


#: Columns of the raw lake table, in order (partition columns excluded).
RAW_FIELDS: Final = _raw_fields()


def hive_columns() -> list[dict[str, str]]:
    """Glue/Athena column definitions (``[{"Name", "Type", "Comment"}]``) of the raw table."""
    return [{"Name": s.name, "Type": _HIVE[s.type], "Comment": s.doc} for s in RAW_FIELDS]


def spark_ddl() -> str:
    """Spark DDL schema string of the raw table, e.g. for ``spark.read.schema(...)``."""
    return ", ".join(f"{s.name} {_SPARK[s.type]}{'' if s.nullable else ' NOT NULL'}" for s in RAW_FIELDS)


# --------------------------------------------------------------------------- validation


def _check_time(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(name, f"expected integer milliseconds, got {type(value).__name__}")
    if not _MIN_TIME_MS <= value < _MAX_TIME_MS:
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
            if not isinstance(v, str) or not _ID_PATTERN.match(v):
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


def _int16_array(spec: FieldSpec, value: list[Any] | tuple[Any, ...]) -> npt.NDArray[Any]:
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
    arr = _int16_array(spec, value)
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
    elif rec.duration_ms > 10 * 60 * 1000:
        raise ContractError("samples", f"frame spans {rec.duration_ms / 1000:.0f} s (max 600 s)")


#: The int16 list fields of each kind (packed on the v2 wire).
_PACKED: Final = {
    kind: tuple((s.name, _wire_key(s, 2)) for s in specs if s.type is FieldType.LIST_INT16)
    for kind, specs in _SPECS.items()
}
_CHECKERS: Final = {kind: tuple((s.name, _checker(s)) for s in specs) for kind, specs in _SPECS.items()}

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
    for kind, specs in _SPECS.items()
}


def _checked_values(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """Every field of ``kind`` from ``values``, checked (fast path first, then the full checker)."""
    out: dict[str, Any] = {}
    get = values.get
    match = _ID_PATTERN.match
    for name, code, nullable, lo, hi, check in _PLANS[kind]:
        v: Any = get(name)
        t = type(v)
        if v is None and nullable:
            out[name] = None
        elif (
            (code == _TIME and t is int and _MIN_TIME_MS <= v < _MAX_TIME_MS)
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
    rec = _TYPES[kind](**_checked_values(kind, values))
    _check_record(rec)
    return rec


def validate(rec: Record) -> Record:
    """Re-check an in-memory record against the contract; returns it unchanged."""
    return _build(rec.kind, {s.name: getattr(rec, s.name) for s in _SPECS[rec.kind]})


# --------------------------------------------------------------------------- wire codec


def to_wire(rec: Record, *, version: int = SCHEMA_VERSION) -> bytes:
    """Encode a record as its wire form of contract ``version``: compact UTF-8 JSON."""
    if version not in READ_VERSIONS:
        raise ValueError(f"no wire form for contract version {version}")
    obj: dict[str, Any] = {"record_id": rec.record_id, "kind": rec.kind}
    for spec in _SPECS[rec.kind]:
        value = getattr(rec, spec.name)
        key = _wire_key(spec, version)
        if spec.name == "schema_version":
            value = version
        elif key != spec.name:
            value = base64.b64encode(_int16_array(spec, value).astype("<i2").tobytes()).decode()
        elif isinstance(value, tuple):
            value = list(value)
        obj[key] = value
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


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
    return _from_values(obj, wire=True)


def _from_values(obj: dict[str, Any], *, wire: bool) -> Record:
    """A wire dictionary (``wire``: int16 lists packed from v2 on) or a lake row (lists)."""
    version = obj.get("schema_version")
    if isinstance(version, bool) or version not in READ_VERSIONS:
        raise ContractError("schema_version", f"unsupported version {version!r} (this reader: 1, 2)")
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ContractError("kind", f"unknown kind {kind!r} (expected one of {sorted(_TYPES)})")
    layout = version if wire else 1
    unknown = obj.keys() - _WIRE_NAMES[kind, layout]
    if unknown:
        raise ContractError(sorted(unknown)[0], f"not a field of a version-{version} {kind} record")
    values = dict(obj)
    values["schema_version"] = SCHEMA_VERSION
    if layout >= 2:
        for name, key in _PACKED[kind]:
            if values.get(key) is not None:
                values[name] = _unpack_int16(key, values.pop(key))
    rec = _build(kind, values)
    claimed = obj.get("record_id")
    if claimed is not None and claimed != rec.record_id:
        raise ContractError("record_id", f"{claimed!r} does not match its content ({rec.record_id})")
    return rec


def from_wire(data: bytes, *, loads: Callable[[bytes], Any] | None = None) -> Record:
    """Decode and validate one wire record; raises :class:`ContractError` naming the field.

    ``loads`` may be a faster strict JSON parser (e.g. ``orjson.loads``, which rejects
    NaN/Infinity as JSON does); a payload it refuses is parsed again by the standard
    library parser, so the error names what is wrong either way.
    """
    return from_dict(_parse_json(data, loads))


def to_row(rec: Record) -> dict[str, Any]:
    """The record as one raw-lake row (every :data:`RAW_FIELDS` column, nulls included)."""
    row: dict[str, Any] = {s.name: None for s in RAW_FIELDS}
    row["record_id"] = rec.record_id
    row["kind"] = rec.kind
    for spec in _SPECS[rec.kind]:
        value = getattr(rec, spec.name)
        row[spec.name] = list(value) if isinstance(value, tuple) else value
    return row


def from_row(row: dict[str, Any]) -> Record:
    """Rebuild a record from a raw-lake row (the inverse of :func:`to_row`)."""
    kind = row.get("kind")
    specs = {s.name: s for s in _SPECS.get(str(kind), ())}
    names = set(specs) | {"record_id", "kind"}
    out = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items() if k in names}
    for name, v in out.items():
        # a dataframe holds a nullable integer column as float64 (NaN for null)
        if name in specs and specs[name].type in _INTEGER_TYPES and isinstance(v, float):
            out[name] = None if math.isnan(v) else int(v) if v.is_integer() else v
    return _from_values(out, wire=False)


_INTEGER_TYPES: Final = (FieldType.INT16, FieldType.INT32, FieldType.INT64)
