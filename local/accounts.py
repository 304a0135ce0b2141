"""The dashboard's accounts in one SQLite file of the home (``accounts.sqlite``, owner-only)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from access.accounts import AccountStore, AccountsUnavailable, User
from access.roles import AccessError, Role
from local.sqlite import SqliteStore, write_transaction

__all__ = ["LocalAccounts"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, groups TEXT NOT NULL,
  password_hash TEXT NOT NULL, created_ms INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (key TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL,
  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (key TEXT PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL,
  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, revoked_ms INTEGER);
CREATE TABLE IF NOT EXISTS failures (key TEXT NOT NULL, at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS failures_key ON failures (key, at_ms);
"""


class LocalAccounts(SqliteStore, AccountStore):
    """Accounts in SQLite (WAL); safe to share between the server's threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        super().__init__(path, _SCHEMA)

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock, write_transaction(self._db, AccountsUnavailable, "the accounts store"):
            return int(self._db.execute(sql, args).rowcount)

    # users
    def get_user(self, name: str) -> tuple[User, str] | None:
        rows = self._rows(
            "SELECT name, role, groups, created_ms, disabled, password_hash FROM users WHERE name = ?", (name,)
        )
        if not rows:
            return None
        n, role, groups, created, disabled, hashed = rows[0]
        return User(n, Role(role), tuple(json.loads(groups)), int(created), bool(disabled)), str(hashed)

    def users(self) -> list[User]:
        rows = self._rows("SELECT name, role, groups, created_ms, disabled FROM users ORDER BY name")
        return [User(n, Role(r), tuple(json.loads(g)), int(c), bool(d)) for n, r, g, c, d in rows]

    def _put_user(self, user: User, password_hash: str, *, new: bool) -> None:
        args = (
            user.name,
            str(user.role),
            json.dumps(list(user.groups)),
            password_hash,
            user.created_ms,
            int(user.disabled),
        )
        try:
            self._write(f"{'INSERT' if new else 'REPLACE'} INTO users VALUES (?, ?, ?, ?, ?, ?)", args)
        except AccountsUnavailable as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise AccessError("name", f"a user {user.name!r} exists already") from None
            raise

    # sessions
    def _put_session(self, key: str, name: str, csrf: str, created_ms: int, expires_ms: int) -> None:
        self._write("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (key, name, csrf, created_ms, expires_ms))

    def _session(self, key: str) -> tuple[str, str, int, int] | None:
        rows = self._rows("SELECT name, csrf, created_ms, expires_ms FROM sessions WHERE key = ?", (key,))
        return (str(rows[0][0]), str(rows[0][1]), int(rows[0][2]), int(rows[0][3])) if rows else None

    def _touch_session(self, key: str, expires_ms: int) -> None:
        self._write("UPDATE sessions SET expires_ms = ? WHERE key = ?", (expires_ms, key))

    def _drop_sessions(self, *, key: str | None = None, name: str | None = None) -> None:
        self._write("DELETE FROM sessions WHERE key = ?1 OR name = ?2", (key, name))

    # tokens
    def _put_token(self, key: str, name: str, label: str, created_ms: int, expires_ms: int) -> None:
        self._write("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, NULL)", (key, name, label, created_ms, expires_ms))

    def _token(self, key: str) -> tuple[str, int, int | None] | None:
        rows = self._rows("SELECT name, expires_ms, revoked_ms FROM tokens WHERE key = ?", (key,))
        return (str(rows[0][0]), int(rows[0][1]), rows[0][2]) if rows else None

    def tokens(self, name: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT key, label, created_ms, expires_ms, revoked_ms FROM tokens WHERE name = ? ORDER BY created_ms",
            (name,),
        )
        return [
            {"id": k[:12], "label": lb, "created_ms": c, "expires_ms": e, "revoked_ms": r} for k, lb, c, e, r in rows
        ]

    def _revoke_token(self, name: str, id_prefix: str, at_ms: int) -> int:
        live = self._rows(
            "SELECT key FROM tokens WHERE name = ? AND revoked_ms IS NULL AND substr(key, 1, ?) = ?",
            (name, len(id_prefix), id_prefix),
        )
        if len(live) != 1:
            return len(live)
        return self._write("UPDATE tokens SET revoked_ms = ? WHERE key = ?", (at_ms, live[0][0]))

    # failed sign-ins
    def _failures(self, key: str, since_ms: int) -> list[int]:
        return [
            int(t) for (t,) in self._rows("SELECT at_ms FROM failures WHERE key = ? AND at_ms >= ?", (key, since_ms))
        ]

    def _fail(self, keys: Iterable[str], at_ms: int) -> None:
        with self._lock, write_transaction(self._db, AccountsUnavailable, "the accounts store"):
            self._db.executemany("INSERT INTO failures VALUES (?, ?)", [(k, at_ms) for k in keys])
            self._db.execute("DELETE FROM failures WHERE at_ms < ?", (at_ms - 86_400_000,))
