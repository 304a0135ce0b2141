"""The lake's table definitions, generated from the record contract and the curated columns.

One definition per table (:data:`CATALOG`) renders to:

* the Glue tables of ``infra/template.yaml`` (their ``Columns`` lists are generated:
  ``sleepstack catalog --write-template`` rewrites them, a test fails when they drift);
* Athena ``CREATE EXTERNAL TABLE`` DDL with partition projection, for accounts that
  manage the catalog outside CloudFormation (``sleepstack catalog --ddl``);
* the DuckDB views the local SQL engine creates over the same Parquet, with the same
  columns in the same order and the partition key kept as text, as Athena reads it.

``device_status`` is a view: the raw table's device-status rows (``kind = 'status'``)
with their own columns. On AWS the template carries its ``CREATE VIEW`` as an Athena
named query, run once after deploying (``docs/deploy.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.contract import DeviceStatus, hive_columns
from core.contract.records import SPECS
from core.nights.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS

__all__ = ["CATALOG", "STORED", "TableDef", "athena_ddl", "duckdb_view_sql", "render_template", "view_sql"]

_PROJECTION_START: Final = "2024-01-01"


@dataclass(frozen=True)
class TableDef:
    """``name``: the table's name in the Glue catalog and in SQL (written ``sleepstack.<name>``;
    on Athena the engine maps ``sleepstack`` to the deployed database); ``location``: path
    under the lake root (local) or bucket (AWS); ``columns``: (name, Hive type, comment)
    without the partition key ``partition``."""

    name: str
    location: str
    columns: tuple[tuple[str, str, str], ...]
    partition: str
    #: a view: the rows of the catalog table ``view_of`` (same location) where ``where`` holds.
    #: Athena keeps views in the Glue catalog once ``CREATE VIEW`` runs (the template's
    #: named query of that name); DuckDB creates it over its own table.
    view_of: str | None = None
    where: str | None = None


def _curated(cols: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    return tuple((n, t, "") for n, t in cols if n != "night")


_RAW_COLUMNS: Final = tuple((c["Name"], c["Type"], c["Comment"]) for c in hive_columns())
_STATUS_NAMES: Final = ("record_id", *(s.name for s in SPECS[DeviceStatus.kind] if s.name != "schema_version"))

CATALOG: Final = (
    TableDef("raw_records", "raw", _RAW_COLUMNS, "dt"),
    TableDef("epoch_stages", "curated/epochs", _curated(EPOCH_COLUMNS), "night"),
    TableDef("night_summary", "curated/nights", _curated(NIGHT_COLUMNS), "night"),
    TableDef(
        "device_status",
        "raw",
        tuple(c for name in _STATUS_NAMES for c in _RAW_COLUMNS if c[0] == name),
        "dt",
        view_of="raw_records",
        where=f"kind = '{DeviceStatus.kind}'",
    ),
)
#: The catalog's stored tables (Glue tables in the template); the rest are views over them.
STORED: Final = tuple(t for t in CATALOG if t.view_of is None)


def view_sql(table: TableDef, database: str = "sleepstack", *, replace: bool = True) -> str:
    """``CREATE VIEW`` of a view table, over ``database``'s tables (Athena and DuckDB both read it)."""
    cols = ", ".join(f'"{n}"' for n, _, _ in table.columns)
    verb = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW"
    return (
        f"{verb} {database}.{table.name} AS SELECT {cols}, {table.partition}"  # noqa: S608 - names from CATALOG
        f" FROM {database}.{table.view_of} WHERE {table.where}"
    )


def _yaml_scalar(text: str) -> str:
    return f'"{text}"' if re.search(r"[:;#{}\[\],&*!|>'\"%@`]", text) else text


def template_columns(table: TableDef, indent: str) -> list[str]:
    """The table's ``Columns`` entries as template lines (flow mappings)."""
    out = []
    for name, typ, comment in table.columns:
        extra = f", Comment: {_yaml_scalar(comment)}" if comment else ""
        out.append(f"{indent}- {{Name: {name}, Type: {typ}{extra}}}")
    return out


def render_template(text: str) -> str:
    """``text`` (the CloudFormation template) with every catalog table's Columns regenerated."""
    lines = text.splitlines()
    for table in STORED:
        start = lines.index(f"        Name: {table.name}")
        col = next(i for i in range(start, len(lines)) if lines[i].strip() == "Columns:")
        indent = lines[col][: len(lines[col]) - len(lines[col].lstrip())] + "  "
        end = col + 1
        while end < len(lines) and lines[end].startswith(indent + "- {"):
            end += 1
        lines[col + 1 : end] = template_columns(table, indent)
    return "\n".join(lines) + "\n"


def athena_ddl(table: TableDef, s3_root: str, database: str = "sleepstack") -> str:
    """``CREATE EXTERNAL TABLE`` for Athena with date partition projection (``CREATE VIEW`` for a view)."""
    if table.view_of is not None:
        return view_sql(table, database)
    cols = ",\n".join(
        f"  `{n}` {t}" + (f" COMMENT '{c.replace(chr(39), chr(39) * 2)}'" if c else "") for n, t, c in table.columns
    )
    loc = f"{s3_root.rstrip('/')}/{table.location}/"
    p = table.partition
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {database}.{table.name} (\n{cols}\n)\n"
        f"PARTITIONED BY (`{p}` string)\nSTORED AS PARQUET\nLOCATION '{loc}'\nTBLPROPERTIES (\n"
        f"  'projection.enabled' = 'true',\n  'projection.{p}.type' = 'date',\n"
        f"  'projection.{p}.format' = 'yyyy-MM-dd',\n  'projection.{p}.range' = '{_PROJECTION_START},NOW',\n"
        f"  'projection.{p}.interval' = '1',\n  'projection.{p}.interval.unit' = 'DAYS',\n"
        f"  'storage.location.template' = '{loc}{p}=${{{p}}}/'\n)"
    )


def duckdb_view_sql(table: TableDef, lake: Path, *, materialize: bool = False) -> str:
    """DuckDB view over the table's local Parquet: the catalog's columns, then the partition key.

    ``materialize``: an in-memory table (a snapshot of the files now) instead of a view.
    A view table (:attr:`TableDef.view_of`) is a view over its table, whatever ``materialize``.
    """
    if table.view_of is not None:
        return view_sql(table)
    glob = (lake / table.location / "**" / "*.parquet").as_posix().replace("'", "''")
    cols = ", ".join(f'"{n}"' for n, _, _ in table.columns)
    # names come from CATALOG and the path is quoted: no injection
    kind = "TABLE" if materialize else "VIEW"
    part = table.partition
    return (
        f"CREATE OR REPLACE {kind} sleepstack.{table.name} AS SELECT {cols}, CAST({part} AS VARCHAR) AS {part}"  # noqa: S608
        f" FROM read_parquet('{glob}', hive_partitioning = true, hive_types_autocast = false,"
        " union_by_name = true)"
    )
