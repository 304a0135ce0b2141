"""The raw lake's row layout: one table for both kinds, its Hive/Glue and Spark schemas, rows."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Final

from core.contract.records import HIVE_TYPES, SPARK_TYPES, SPECS, FieldSpec, FieldType, Record
from core.contract.validation import from_values


def _raw_fields() -> tuple[FieldSpec, ...]:
    """Union row layout of the raw lake: envelope first, then each kind's own fields."""
    envelope = (
        FieldSpec(FieldType.STRING, "deterministic record id", name="record_id"),
        FieldSpec(FieldType.STRING, "record kind: strap or bed", name="kind"),
    )
    seen = {s.name for s in envelope}
    out = list(envelope)
    common = set.intersection(*({s.name for s in specs} for specs in SPECS.values()))
    for specs in SPECS.values():
        for s in specs:
            if s.name not in seen:
                seen.add(s.name)
                out.append(s if s.name in common else dataclasses.replace(s, nullable=True))
    return tuple(out)


#: Columns of the raw lake table, in order (partition columns excluded).
RAW_FIELDS: Final = _raw_fields()


def hive_columns() -> list[dict[str, str]]:
    """Glue/Athena column definitions (``[{"Name", "Type", "Comment"}]``) of the raw table."""
    return [{"Name": s.name, "Type": HIVE_TYPES[s.type], "Comment": s.doc} for s in RAW_FIELDS]


def spark_ddl() -> str:
    """Spark DDL schema string of the raw table, e.g. for ``spark.read.schema(...)``."""
    return ", ".join(f"{s.name} {SPARK_TYPES[s.type]}{'' if s.nullable else ' NOT NULL'}" for s in RAW_FIELDS)


def to_row(rec: Record) -> dict[str, Any]:
    """The record as one raw-lake row (every :data:`RAW_FIELDS` column, nulls included)."""
    row: dict[str, Any] = {s.name: None for s in RAW_FIELDS}
    row["record_id"] = rec.record_id
    row["kind"] = rec.kind
    for spec in SPECS[rec.kind]:
        value = getattr(rec, spec.name)
        row[spec.name] = list(value) if isinstance(value, tuple) else value
    return row


def from_row(row: dict[str, Any]) -> Record:
    """Rebuild a record from a raw-lake row (the inverse of :func:`to_row`)."""
    kind = row.get("kind")
    specs = {s.name: s for s in SPECS.get(str(kind), ())}
    names = set(specs) | {"record_id", "kind"}
    out = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items() if k in names}
    for name, v in out.items():
        # a dataframe holds a nullable integer column as float64 (NaN for null)
        if name in specs and specs[name].type in _INTEGER_TYPES and isinstance(v, float):
            out[name] = None if math.isnan(v) else int(v) if v.is_integer() else v
    return from_values(out, wire=False)


_INTEGER_TYPES: Final = (FieldType.INT16, FieldType.INT32, FieldType.INT64)
