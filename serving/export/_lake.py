"""One subject's rows of the lake, read through the SQL engine (DuckDB locally, Athena on AWS).

The tables keep the catalog's column types (:data:`serving.catalog.CATALOG`): the engine
hands back pandas frames (a nullable integer column comes back as floats), so each
table is cast to the Arrow schema its Hive types name before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from core.contract.epochs import night_bounds_ms, night_of, night_range
from core.errors import EmptyTableError, InputError
from serving.catalog import CATALOG, TableDef
from serving.sql_engine import SqlEngine
from serving.sql_policy import Param

__all__ = ["SubjectData", "check_subject", "load_subject", "table_schema"]

#: A subject id as the registry accepts it (1-64 of letters, digits, ``:_.-``).
_SUBJECT: Final = re.compile(r"^[A-Za-z0-9:_.\-]{1,64}$")

_SCALARS: Final = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "smallint": pa.int16(),
    "tinyint": pa.int8(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}


def _arrow_type(hive: str) -> pa.DataType:
    inner = re.fullmatch(r"array<(\w+)>", hive)
    return pa.list_(_SCALARS[inner.group(1)]) if inner else _SCALARS[hive]


def table_schema(table: TableDef, extra: tuple[str, ...] = ()) -> pa.Schema:
    """Arrow schema of a catalog table's columns (Hive types), then ``extra`` text columns (e.g. ``night``)."""
    fields = [pa.field(n, _arrow_type(t)) for n, t, _ in table.columns]
    return pa.schema([*fields, *(pa.field(n, pa.string()) for n in extra)])


_TABLES: Final = {t.name: t for t in CATALOG}
RAW_SCHEMA: Final = table_schema(_TABLES["raw_records"], ("night",))
EPOCH_SCHEMA: Final = table_schema(_TABLES["epoch_stages"], ("night",))
NIGHT_SCHEMA: Final = table_schema(_TABLES["night_summary"], ("night",))


@dataclass(frozen=True)
class SubjectData:
    """One subject's rows for ``nights`` (``YYYY-MM-DD``, ascending): ``raw`` (the raw lake's
    rows, every kind, with the ``night`` each belongs to), ``epochs`` (``epoch_stages``) and
    ``summaries`` (``night_summary``), each sorted by time."""

    subject_id: str
    nights: tuple[str, ...]
    raw: pa.Table
    epochs: pa.Table
    summaries: pa.Table
    tz: str


def check_subject(subject_id: str) -> str:
    if not _SUBJECT.match(subject_id):
        raise InputError("--subject", f"{subject_id!r} is not a subject id (1-64 of letters, digits, :_.-)")
    return subject_id


def _query(engine: SqlEngine, sql: str, params: Mapping[str, Param]) -> pd.DataFrame:
    try:
        return engine.query(sql, params)
    except EmptyTableError:  # nothing delivered or staged yet: no rows
        return pd.DataFrame()


def _cast(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    if df.empty:
        return schema.empty_table()
    cols = {}
    for f in schema:
        values = df[f.name] if f.name in df.columns else pd.Series([None] * len(df), dtype=object)
        if pa.types.is_list(f.type):  # numpy arrays (DuckDB) or lists (Athena) of the elements
            values = values.map(lambda v: list(v) if isinstance(v, list | tuple | np.ndarray) else None)
        cols[f.name] = pa.array(values, type=f.type, from_pandas=True)
    return pa.table(cols, schema=schema)


def load_subject(
    engine: SqlEngine, subject_id: str, first: str | None = None, last: str | None = None, *, tz: str = "UTC"
) -> SubjectData:
    """The subject's rows of the nights ``first`` to ``last`` (both ``YYYY-MM-DD``, inclusive;
    None: from its first or to its last staged night). ``tz``: the subject's zone, which the
    nightly job used to cut raw records into noon-to-noon nights.

    Raises :class:`~core.errors.InputError` for a malformed subject or date, a subject the
    lake does not hold, or a range holding none of its data.
    """
    check_subject(subject_id)
    for value, arg in ((first, "--from"), (last, "--to")):
        if value is not None:
            night_range(value, value, start_arg=arg, end_arg=arg)
    params = {"subject": subject_id}
    staged = _query(engine, "SELECT night FROM sleepstack.night_summary WHERE subject_id = :subject", params)
    staged_nights = sorted(set(staged["night"].astype(str))) if not staged.empty else []
    if not staged_nights:
        held = _query(engine, "SELECT count(*) AS n FROM sleepstack.raw_records WHERE subject_id = :subject", params)
        if held.empty or int(held["n"].iloc[0]) == 0:
            raise InputError("--subject", f"{subject_id} is not in the lake (no raw records, no staged nights)")
        if first is None or last is None:
            raise InputError("--from", f"{subject_id} has no staged nights yet; give --from and --to for its raw rows")
    lo = first or staged_nights[0]
    hi = last or staged_nights[-1]
    if lo > hi:  # a bound given beyond the subject's staged nights
        span = f"its staged nights run {staged_nights[0]} to {staged_nights[-1]}"
        if first:
            raise InputError("--from", f"{subject_id} has no staged night from {first} on ({span})")
        raise InputError("--to", f"{subject_id} has no staged night up to {last} ({span})")
    nights = tuple(night_range(lo, hi))
    window = {"subject": subject_id, "first": lo, "last": hi}
    summaries = _query(
        engine,
        "SELECT * FROM sleepstack.night_summary WHERE subject_id = :subject AND night BETWEEN :first AND :last"
        " ORDER BY night",
        window,
    )
    epochs = _query(
        engine,
        "SELECT * FROM sleepstack.epoch_stages WHERE subject_id = :subject AND night BETWEEN :first AND :last"
        " ORDER BY night, epoch_start_ms",
        window,
    )
    start_ms, end_ms = night_bounds_ms(lo, tz)[0], night_bounds_ms(hi, tz)[1]
    raw = _query(
        engine,
        "SELECT * FROM sleepstack.raw_records WHERE subject_id = :subject AND dt BETWEEN :dt0 AND :dt1"
        " AND event_time_ms >= :t0 AND event_time_ms < :t1 ORDER BY event_time_ms, record_id",
        {"subject": subject_id, "dt0": _utc_date(start_ms), "dt1": _utc_date(end_ms), "t0": start_ms, "t1": end_ms},
    )
    if not raw.empty:
        raw["night"] = [night_of(int(t), tz) for t in raw["event_time_ms"]]
    if summaries.empty and epochs.empty and raw.empty:
        have = (
            f"its staged nights run {staged_nights[0]} to {staged_nights[-1]}" if staged_nights else "no staged nights"
        )
        raise InputError("--from", f"{subject_id} has no data from {lo} to {hi} ({have})")
    return SubjectData(
        subject_id,
        nights,
        _cast(raw, RAW_SCHEMA),
        _cast(epochs, EPOCH_SCHEMA),
        _cast(summaries, NIGHT_SCHEMA),
        tz,
    )


def _utc_date(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).date().isoformat()
