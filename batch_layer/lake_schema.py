"""Arrow/Parquet schemas rendered from the core's field definitions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from core.contract import RAW_FIELDS, FieldSpec, FieldType
from core.signals.vitals import EPOCH_VITALS_FIELDS

__all__ = ["RAW_SCHEMA", "arrow_schema", "epoch_vitals_schema"]

_ARROW: Final = {
    FieldType.STRING: pa.string(),
    FieldType.INT16: pa.int16(),
    FieldType.INT32: pa.int32(),
    FieldType.INT64: pa.int64(),
    FieldType.FLOAT64: pa.float64(),
    FieldType.BOOL: pa.bool_(),
    FieldType.LIST_FLOAT64: pa.list_(pa.float64()),
    FieldType.LIST_INT16: pa.list_(pa.int16()),
    FieldType.LIST_INT64: pa.list_(pa.int64()),
}


def arrow_schema(fields: Iterable[FieldSpec]) -> pa.Schema:
    return pa.schema([pa.field(f.name, _ARROW[f.type], nullable=f.nullable) for f in fields])


#: Schema of the raw lake's Parquet files (partition column ``dt`` is in the path).
RAW_SCHEMA: Final = arrow_schema(RAW_FIELDS)


def epoch_vitals_schema() -> pa.Schema:
    return arrow_schema(EPOCH_VITALS_FIELDS)
