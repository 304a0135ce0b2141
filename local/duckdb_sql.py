"""Local stand-in for Athena: DuckDB views over the lake, Athena SQL transpiled by sqlglot.

The tables of the ``sleepstack`` database are DuckDB views over the same Parquet the Glue
catalog points at, with Hive partitions kept as text (as Athena reads them). Once they
exist the connection is locked down: external access is disabled except for the lake
directory (``allowed_directories``), and the configuration is locked, so no query can
read other files, attach databases, install extensions or turn access back on. Together
with :func:`serving.sql_policy.check_query` (one read-only query on the catalog's tables)
that keeps analysts' SQL inside the lake, read-only.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd
from sqlglot import exp

from core.errors import EmptyTableError, QueryError
from serving.catalog import CATALOG, duckdb_view_sql
from serving.sql_engine import TABLES, SqlEngine
from serving.sql_policy import DATABASE, check_query

__all__ = ["LocalSqlEngine", "lake_signature"]


class LocalSqlEngine(SqlEngine):
    """DuckDB over the local lake directory, read-only and confined to it.

    Tables whose Parquet totals at most ``snapshot_bytes`` (the night summaries: a year of
    100 subjects is ~10 MB in 365 partition files) are loaded into memory when the engine
    opens, so a query does not reopen hundreds of small files; larger ones (epochs, raw)
    are views read at query time. A snapshot shows the lake as it was at open: open a new
    engine after a batch run.
    """

    def __init__(self, lake: Path, *, snapshot_bytes: int = 256 * 1024 * 1024) -> None:
        import duckdb

        self.lake = lake.resolve()
        self.con = duckdb.connect()
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}")
        #: catalog tables with data in this lake (a table without Parquet files has no view)
        self.present: set[str] = set()
        for table in CATALOG:
            files = list((self.lake / table.location).rglob("*.parquet"))
            if files:
                small = sum(f.stat().st_size for f in files) <= snapshot_bytes
                self.con.execute(duckdb_view_sql(table, self.lake, materialize=small))
                self.present.add(table.name)
        self._lock_down()

    def _lock_down(self) -> None:
        self.con.execute("SET allowed_directories = ?", [[f"{self.lake}/"]])
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET autoinstall_known_extensions = false")
        self.con.execute("SET autoload_known_extensions = false")
        self.con.execute("SET lock_configuration = true")

    @staticmethod
    def transpile(sql: str) -> str:
        """``sql`` (Athena dialect), checked, as DuckDB runs it."""
        return check_query(sql, TABLES).sql(dialect="duckdb")

    def run(self, tree: exp.Query) -> pd.DataFrame:
        missing = sorted({t.name for t in tree.find_all(exp.Table) if t.db == DATABASE and t.name not in self.present})
        if missing:
            where = ", ".join(str(self.lake / TABLES[m]) for m in missing)
            raise EmptyTableError(
                f"no data in the lake yet for {', '.join(f'{DATABASE}.{m}' for m in missing)}"
                f" ({where} holds no Parquet files): collect and deliver records first, or stage a night"
            )
        return self._execute(tree.sql(dialect="duckdb"))

    def _execute(self, sql: str, params: Any = None) -> pd.DataFrame:
        import duckdb

        try:
            return self.con.execute(sql, params).fetchdf()
        except duckdb.Error as exc:
            raise QueryError(f"the query failed: {str(exc).splitlines()[0]}") from None


def lake_signature(lake: Path, tables: Collection[str] | None = None) -> tuple[tuple[str, int], ...]:
    """What changes when a batch run or the delivery writes the lake: the folders of the
    catalog's ``tables`` (all if None) and of their partitions, with their modification
    times (a cheap listing, no file opened).

    A long-running reader (the dashboard) opens a new :class:`LocalSqlEngine` when it changes.
    """
    out: list[tuple[str, int]] = []
    for table in CATALOG:
        root = lake / table.location
        if (tables is not None and table.name not in tables) or not root.is_dir():
            continue
        out.append((table.location, root.stat().st_mtime_ns))
        out += [(f"{table.location}/{p.name}", p.stat().st_mtime_ns) for p in root.iterdir() if p.is_dir()]
    return tuple(sorted(out))
