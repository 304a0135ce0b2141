"""Local stand-in for Athena: DuckDB views over the lake, Athena SQL transpiled by sqlglot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlglot

from serving.catalog import CATALOG, duckdb_view_sql
from serving.sql_engine import SqlEngine

__all__ = ["LocalSqlEngine"]


class LocalSqlEngine(SqlEngine):
    """DuckDB over the local lake directory.

    Tables whose Parquet totals at most ``snapshot_bytes`` (the night summaries: a year of
    100 subjects is ~10 MB in 365 partition files) are loaded into memory when the engine
    opens, so a query does not reopen hundreds of small files; larger ones (epochs, raw)
    are views read at query time. A snapshot shows the lake as it was at open: open a new
    engine after a batch run.
    """

    def __init__(self, lake: Path, *, snapshot_bytes: int = 256 * 1024 * 1024) -> None:
        import duckdb

        self.lake = lake
        self.con = duckdb.connect()
        self.con.execute("CREATE SCHEMA IF NOT EXISTS sleepstack")
        for table in CATALOG:
            files = list((lake / table.location).rglob("*.parquet"))
            if files:
                small = sum(f.stat().st_size for f in files) <= snapshot_bytes
                self.con.execute(duckdb_view_sql(table, lake, materialize=small))

    @staticmethod
    def transpile(sql: str) -> str:
        return sqlglot.transpile(sql, read="athena", write="duckdb")[0]

    def query(self, sql: str) -> pd.DataFrame:
        return self.con.execute(self.transpile(sql)).fetchdf()
