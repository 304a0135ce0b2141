"""How the local stand-ins keep small SQLite databases: one way to open them, one way to write.

WAL journal (readers never block the writer), autocommit connections shared between
threads under the caller's lock, and writes in one transaction that is rolled back and
turned into the caller's error when SQLite cannot write (a full disk), so a failed
batch leaves nothing half-stored and is retried.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SqliteStore", "add_columns", "open_db", "write_transaction"]


def open_db(path: Path, *, synchronous: str | None = None) -> sqlite3.Connection:
    """An autocommit, thread-shareable WAL connection to ``path`` (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    if synchronous is not None:
        db.execute(f"PRAGMA synchronous={synchronous}")
    return db


def add_columns(db: sqlite3.Connection, table: str, columns: tuple[tuple[str, str], ...]) -> None:
    """Add each ``(name, type)`` of ``columns`` that ``table`` lacks: a table made by an older
    release gains the columns newer code writes (their values NULL in its old rows)."""
    have = {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns:
        if name not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


@contextmanager
def write_transaction(db: sqlite3.Connection, error: type[Exception], what: str) -> Iterator[None]:
    """``BEGIN`` .. ``COMMIT``; on a SQLite error roll back and raise ``error`` naming ``what``.

    Any other exception raised inside rolls back too, and propagates as it is."""
    try:
        db.execute("BEGIN")
        yield
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise error(f"{what} cannot write: {exc}") from exc
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class SqliteStore:
    """One SQLite file (WAL, ``synchronous=NORMAL``) made with ``schema``, shared by a server's
    threads under one lock: the base of the home's small stores (registry, accounts, the
    notifier's outbox, alert acknowledgements). A new file is owner-only (0600 in a 0700 folder)
    whatever the umask: the stores hold health data or who saw it."""

    def __init__(self, path: Path, schema: str) -> None:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                path.touch(mode=0o600)
        self._db = open_db(path, synchronous="NORMAL")
        self._db.executescript(schema)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()
