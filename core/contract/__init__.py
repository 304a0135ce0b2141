"""Record contract v2: the one definition of every record sleepstack moves.

Three record types flow from devices to the stream:

* :class:`StrapSample` — one Heart Rate Measurement notification of a chest strap or
  watch (Bluetooth SIG Heart Rate Service): heart rate, the RR intervals that ended since
  the previous notification, sensor contact and energy expended.
* :class:`BedFrame` — a run of consecutive samples of an under-mattress
  ballistocardiogram/pressure channel, starting at ``device_time_ms``.
* :class:`DeviceStatus` — a device's health as its collector sees it (link, battery
  level from the Battery Service, whether a strap is worn, signal strength), taken on
  connect, every status interval and when the link drops.

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
* the raw-lake row layout (:data:`RAW_FIELDS`, :func:`to_row`), one table for every kind
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

from core.contract.codec import from_dict, from_wire, to_wire
from core.contract.layout import RAW_FIELDS, from_row, hive_columns, spark_ddl, to_row
from core.contract.records import (
    MAX_RECORD_BYTES,
    MEASUREMENT_KINDS,
    PACKED_SUFFIX,
    READ_VERSIONS,
    SCHEMA_VERSION,
    BedFrame,
    DeviceStatus,
    FieldSpec,
    FieldType,
    Measurement,
    Record,
    StrapSample,
    doc_field,
    make_record_id,
)
from core.contract.validation import validate

__all__ = [
    "MAX_RECORD_BYTES",
    "MEASUREMENT_KINDS",
    "PACKED_SUFFIX",
    "RAW_FIELDS",
    "READ_VERSIONS",
    "SCHEMA_VERSION",
    "BedFrame",
    "DeviceStatus",
    "FieldSpec",
    "FieldType",
    "Measurement",
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
