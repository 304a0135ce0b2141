"""Run analysts' Athena-dialect SQL: the engine interface and Athena through pyathena.

Every engine checks the SQL first (:mod:`serving.sql_policy`: one read-only query on the
lake's tables).

Locally the engine is DuckDB over the lake (:mod:`local.duckdb_sql`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

import pandas as pd
from sqlglot import exp

from core.errors import QueryError
from serving.catalog import CATALOG
from serving.sql_policy import DATABASE, Param, bind_params, check_query

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
        raise QueryError(f"no query named {name!r}; known: {', '.join(query_names())}") from None


class SqlEngine(ABC):
    """Runs analysts' Athena-dialect SQL; every engine accepts only what :func:`check_query` does."""

    def query(self, sql: str, params: Mapping[str, Param] | None = None) -> pd.DataFrame:
        """Run one read-only Athena-dialect query on the lake's tables and return its rows.

        ``params`` fill the query's ``:name`` placeholders (:func:`bind_params`).
        """
        return self.run(bind_params(check_query(sql, TABLES), params or {}))

    @abstractmethod
    def run(self, tree: exp.Query) -> pd.DataFrame:
        """Run a query :func:`check_query` has accepted."""


class AthenaSqlEngine(SqlEngine):
    """Athena through a pyathena connection (injected).

    The SQL files name their tables ``sleepstack.<table>``; the deployed Glue database is
    ``sleepstack_<env>`` (``database``), so the qualifier is rewritten on the parsed query.
    """

    def __init__(self, connection: Any, database: str) -> None:
        self.connection = connection
        self.database = database

    def bind(self, sql: str) -> str:
        """``sql``, checked, with ``sleepstack.`` rebound to the deployed database."""
        return self._bound(check_query(sql, TABLES))

    def _bound(self, tree: exp.Query) -> str:
        tree = tree.copy()
        for table in tree.find_all(exp.Table):
            if table.db == DATABASE:
                table.set("db", exp.to_identifier(self.database))
        return tree.sql(dialect="athena")

    def run(self, tree: exp.Query) -> pd.DataFrame:
        cursor = self.connection.cursor()
        cursor.execute(self._bound(tree))
        cols = [d[0] for d in cursor.description or []]
        return pd.DataFrame(cursor.fetchall(), columns=cols)
