"""Run Athena-dialect SQL: on Athena through pyathena, or locally on DuckDB.

Locally, the tables of the ``sleepstack`` database are DuckDB views over the same Parquet
the Glue catalog points at, with Hive partitions kept as text (as Athena reads them), and
each query is transpiled from Athena's dialect by sqlglot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path
from typing import Any, Final

import pandas as pd
import sqlglot

from serving.catalog import CATALOG, duckdb_view_sql

__all__ = ["TABLES", "AthenaSqlEngine", "LocalSqlEngine", "SqlEngine", "load_query", "query_names"]

#: Catalog tables: name -> location under the lake root.
TABLES: Final = {t.name: t.location for t in CATALOG}


def query_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".sql")
        for p in resources.files("serving").joinpath("sql").iterdir()
        if p.name.endswith(".sql")
    )


def load_query(name: str) -> str:
    """The text of ``serving/sql/<name>.sql``."""
    try:
        return resources.files("serving").joinpath("sql", f"{name}.sql").read_text()
    except FileNotFoundError:
        raise KeyError(f"no query named {name!r}; known: {', '.join(query_names())}") from None


class SqlEngine(ABC):
    @abstractmethod
    def query(self, sql: str) -> pd.DataFrame:
        """Run one Athena-dialect statement and return its rows."""


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


class AthenaSqlEngine(SqlEngine):
    """Athena through a pyathena connection (injected).

    The SQL files name their tables ``sleepstack.<table>``; the deployed Glue database is
    ``sleepstack_<env>`` (``database``), so the qualifier is rewritten on the parsed query.
    """

    def __init__(self, connection: Any, database: str) -> None:
        self.connection = connection
        self.database = database

    def bind(self, sql: str) -> str:
        tree = sqlglot.parse_one(sql, read="athena")
        for table in tree.find_all(sqlglot.exp.Table):
            if table.db == "sleepstack":
                table.set("db", sqlglot.exp.to_identifier(self.database))
        return tree.sql(dialect="athena")

    def query(self, sql: str) -> pd.DataFrame:
        cursor = self.connection.cursor()
        cursor.execute(self.bind(sql))
        cols = [d[0] for d in cursor.description or []]
        return pd.DataFrame(cursor.fetchall(), columns=cols)
