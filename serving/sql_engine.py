"""Run Athena-dialect SQL: the engine interface and Athena through pyathena.

Locally (:mod:`local.duckdb_sql`), the tables of the ``sleepstack`` database are DuckDB views over the same Parquet
the Glue catalog points at, with Hive partitions kept as text (as Athena reads them), and
each query is transpiled from Athena's dialect by sqlglot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib import resources
from typing import Any, Final

import pandas as pd
import sqlglot

from serving.catalog import CATALOG

__all__ = ["TABLES", "AthenaSqlEngine", "SqlEngine", "load_query", "query_names"]

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
