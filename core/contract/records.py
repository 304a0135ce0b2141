"""The record types and their field specs: the one definition each representation renders from.

See :mod:`core.contract` for the contract as a whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import ClassVar, Final

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
MIN_TIME_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TIME_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z
ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9:_.-]{1,64}$")


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


HIVE_TYPES: Final = {
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
SPARK_TYPES: Final = {
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


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's health as its collector sees it: link, battery, wear, signal.

    The collector takes one on connect, every status interval while it records the device
    (connected or not) and when the link drops. Battery level comes from the standard
    Battery Service (0x180F, Battery Level 0x2A19); ``worn`` from the last Heart Rate
    Measurement's sensor-contact bits.
    """

    kind: ClassVar[str] = "status"

    device_id: str = field(metadata=_spec(FieldType.STRING, "device address or serial"))
    subject_id: str = field(metadata=_spec(FieldType.STRING, "pseudonymous subject id"))
    device_time_ms: int = field(metadata=_spec(FieldType.INT64, "device (or receive) stamp, ms since epoch UTC"))
    event_time_ms: int = field(metadata=_spec(FieldType.INT64, "clock-corrected time of the sample, ms UTC"))
    ingest_time_ms: int = field(metadata=_spec(FieldType.INT64, "time the collector spooled it, ms UTC"))
    device_kind: str = field(metadata=_spec(FieldType.STRING, "status: the device's kind, strap or bed"))
    connected: bool = field(metadata=_spec(FieldType.BOOL, "status: link up when the status was taken"))
    notifications: int = field(
        metadata=_spec(FieldType.INT32, "status: measurement notifications since the last status", lo=0, hi=2**31 - 1)
    )
    last_notification_ms: int | None = field(
        metadata=_spec(
            FieldType.INT64, "status: receive time of the last measurement, ms UTC; null: none yet", nullable=True
        )
    )
    battery_pct: int | None = field(
        metadata=_spec(
            FieldType.INT32, "status: battery level, % (0x2A19); null: no Battery Service", nullable=True, lo=0, hi=100
        )
    )
    worn: bool | None = field(
        metadata=_spec(
            FieldType.BOOL,
            "status: strap skin contact at its last measurement; null: bed or unsupported",
            nullable=True,
        )
    )
    rssi_dbm: int | None = field(
        metadata=_spec(
            FieldType.INT32,
            "status: signal strength, dBm; null where the platform does not give it",
            nullable=True,
            lo=-127,
            hi=20,
        )
    )
    schema_version: int = field(default=SCHEMA_VERSION, metadata=_spec(FieldType.INT32, "record contract version"))

    @property
    def record_id(self) -> str:
        return make_record_id(self.kind, self.device_id, self.device_time_ms)


#: A measurement: what vitals, epochs and nights are computed from.
Measurement = StrapSample | BedFrame
#: The kinds of the measurements (device statuses are not staged into nights).
MEASUREMENT_KINDS: Final = (StrapSample.kind, BedFrame.kind)
Record = StrapSample | BedFrame | DeviceStatus
TYPES: Final[dict[str, type[StrapSample] | type[BedFrame] | type[DeviceStatus]]] = {
    StrapSample.kind: StrapSample,
    BedFrame.kind: BedFrame,
    DeviceStatus.kind: DeviceStatus,
}


def _specs_of(cls: type) -> tuple[FieldSpec, ...]:
    return tuple(dataclasses.replace(f.metadata["spec"], name=f.name) for f in dataclasses.fields(cls))


SPECS: Final = {kind: _specs_of(cls) for kind, cls in TYPES.items()}


def wire_key(spec: FieldSpec, version: int) -> str:
    """The wire key of a field in a given contract version."""
    return spec.name + PACKED_SUFFIX if version >= 2 and spec.type is FieldType.LIST_INT16 else spec.name


#: Keys a wire record of each kind and version may have.
WIRE_NAMES: Final = {
    (kind, version): frozenset({wire_key(s, version) for s in specs} | {"record_id", "kind"})
    for kind, specs in SPECS.items()
    for version in READ_VERSIONS
}


#: The int16 list fields of each kind (packed on the v2 wire).
PACKED: Final = {
    kind: tuple((s.name, wire_key(s, 2)) for s in specs if s.type is FieldType.LIST_INT16)
    for kind, specs in SPECS.items()
}
