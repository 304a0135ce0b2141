"""What analysts' SQL may do: one read-only query over the lake's tables, checked on the parsed tree.

Every engine (:class:`serving.sql_engine.SqlEngine`: the CLI, the notebooks' helper, the
dashboard) runs only what :func:`check_query` accepts:

* exactly one statement, and it is a query (``SELECT``, ``WITH ... SELECT``, set
  operations); no DDL, DML, ``COPY``, ``ATTACH``, ``SET``, ``PRAGMA`` or other command
  anywhere in the tree;
* every table it reads is ``sleepstack.<table>`` of the catalog, or a CTE it defines;
* no function that reads files or other databases, or runs SQL from a string
  (``read_csv``, ``read_text``, ``glob``, ``query``, ``parquet_scan``, ``sqlite_scan`` ...).

The check works on sqlglot's syntax tree, not on the text, so quoting, comments or case do
not get around it. It is one layer: the local engine also runs DuckDB with external access
disabled except for the lake directory and its configuration locked
(:mod:`local.duckdb_sql`); on AWS the Athena workgroup and the IAM policy confine queries.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from core.errors import QueryError

__all__ = ["DATABASE", "Param", "bind_params", "check_query"]

#: A value bound to a ``:name`` placeholder.
Param = str | int | float

#: The database qualifier the SQL files use (rebound to ``sleepstack_<env>`` on Athena).
DATABASE: Final = "sleepstack"
#: Functions that reach outside the query's tables, by exact name (lower case) ...
_REFUSED_FUNCTIONS: Final = frozenset(
    {
        "glob",
        "query",
        "query_table",
        "sniff_csv",
        "csv_scan",
        "json_scan",
        "getenv",
        "current_setting",
        "load_aws_credentials",
        "which_secret",
    }
)
#: ... and by prefix: the readers, scanners and catalogue introspection of DuckDB and Trino.
_REFUSED_PREFIXES: Final = (
    "read_",
    "parquet_",
    "duckdb_",
    "iceberg_",
    "delta_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "arrow_scan",
    "pragma_",
)
_STATEMENTS: Final = (exp.DDL, exp.DML, exp.Command, exp.Set, exp.Pragma, exp.Describe, exp.Use, exp.Transaction)


def _function_name(node: exp.Func) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _one_statement(sql: str) -> exp.Expr:
    if not sql.strip():
        raise QueryError("the SQL is empty; give one SELECT query")
    try:
        statements = [s for s in sqlglot.parse(sql, read="athena") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        raise QueryError(
            f"the SQL does not parse as one Athena query{where}: {first.get('description', exc)}"
        ) from None
    if not statements:
        raise QueryError("the SQL holds no statement; give one SELECT query")
    if len(statements) != 1:
        raise QueryError(f"the SQL holds {len(statements)} statements; give exactly one query")
    return statements[0]


def _check_nodes(tree: exp.Query) -> None:
    for node in tree.walk():
        if isinstance(node, _STATEMENTS):
            raise QueryError(f"only a query may run; it contains {node.key.upper()}")
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if name in _REFUSED_FUNCTIONS or name.startswith(_REFUSED_PREFIXES):
                raise QueryError(f"{name}() reads outside the lake's tables and is refused")


def _check_tables(tree: exp.Query, tables: Collection[str]) -> None:
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    known = ", ".join(f"{DATABASE}.{t}" for t in sorted(tables))
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise QueryError(f"{table.sql(dialect='athena')} is not a table; only {known} may be read")
        if not table.db and not table.catalog and table.name in ctes:
            continue
        if table.catalog or table.db != DATABASE or table.name not in tables:
            raise QueryError(f"unknown table {table.sql(dialect='athena')}; only {known} may be read")


def check_query(sql: str, tables: Collection[str]) -> exp.Query:
    """The parsed query, if ``sql`` is one read-only query over ``sleepstack.<tables>``.

    Raises :class:`QueryError` naming what is refused (and, for unknown tables, what may be read).
    """
    tree = _one_statement(sql)
    if not isinstance(tree, exp.Query):
        raise QueryError(f"only a query (SELECT, WITH ... SELECT) may run, not {tree.key.upper()}")
    _check_nodes(tree)
    _check_tables(tree, tables)
    return tree


def bind_params(tree: exp.Query, params: Mapping[str, Param]) -> exp.Query:
    """``tree`` with every ``:name`` placeholder replaced by the typed literal ``params[name]``.

    Values become literal nodes of the syntax tree (strings quoted and escaped by sqlglot
    when the tree is rendered), so a value can never change the query's structure; the
    query text is never assembled from them. A placeholder without a value, a value
    without a placeholder, or a value of another type raises :class:`QueryError`.
    """
    tree = tree.copy()
    used: set[str] = set()
    for node in list(tree.find_all(exp.Placeholder)):
        name = str(node.this or "")
        if not name:
            raise QueryError("positional ? placeholders are not supported; name them (:subject)")
        if name not in params:
            raise QueryError(f"the query needs a value for :{name}")
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise QueryError(f":{name} must be text or a number, not {type(value).__name__}")
        literal = exp.Literal.string(value) if isinstance(value, str) else exp.Literal.number(value)
        node.replace(literal)
        used.add(name)
    if unused := sorted(set(params) - used):
        raise QueryError(f"the query has no placeholder :{unused[0]}")
    return tree
