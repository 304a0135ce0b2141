"""The notifier's outbox on the local stack: :class:`core.outbox.OutboxStore` in an owner-only SQLite file.

Planning inserts with ``INSERT OR IGNORE`` (a replanned transition adds nothing); the
semantics both outboxes keep are :mod:`core.outbox`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from core.outbox import (
    ERROR_CHARS,
    LISTED_COLUMNS,
    OutboxError,
    OutboxRow,
    OutboxStore,
    is_subjects,
    new_row,
    summarize,
)
from core.registry import Window
from local.sqlite import SqliteStore, add_columns, write_transaction

__all__ = ["Outbox", "OutboxError", "OutboxRow"]  # the row and the error are core.outbox's, re-exported

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  key TEXT PRIMARY KEY, alert_id TEXT NOT NULL, transition TEXT NOT NULL, route TEXT NOT NULL,
  tier INTEGER NOT NULL, channel TEXT NOT NULL, address TEXT NOT NULL, created_ms INTEGER NOT NULL,
  due_ms INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
  next_ms INTEGER NOT NULL, sent_ms INTEGER, error TEXT, message TEXT NOT NULL,
  subject_id TEXT, device_id TEXT, event_ms INTEGER);
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (status, next_ms);
CREATE TABLE IF NOT EXISTS episodes (alert_id TEXT PRIMARY KEY, first_seen_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""
#: the columns that say whose episode a row is about (for erasure; never sent)
_WHOSE = (("subject_id", "TEXT"), ("device_id", "TEXT"), ("event_ms", "INTEGER"))


class Outbox(SqliteStore, OutboxStore):
    """The outbox at ``path`` (created 0600 in a 0700 folder)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)
        with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
            add_columns(self._db, "outbox", _WHOSE)  # an outbox made before rows kept whose episode they were

    def add(self, rows: list[dict[str, Any]], now_ms: int) -> int:
        cols = (
            "key",
            "alert_id",
            "transition",
            "route",
            "tier",
            "channel",
            "address",
            "created_ms",
            "due_ms",
            "next_ms",
            "subject_id",
            "device_id",
            "event_ms",
        )
        values = [
            (*(n[c] for c in cols), orjson.dumps(n["message"]).decode()) for n in (new_row(r, now_ms) for r in rows)
        ]
        with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
            before = self._db.total_changes
            self._db.executemany(
                f"INSERT OR IGNORE INTO outbox ({', '.join(cols)}, message)"  # noqa: S608 - fixed columns
                f" VALUES ({', '.join('?' * (len(cols) + 1))})",
                values,
            )
            return self._db.total_changes - before

    def first_seen(self, alert_ids: list[str], now_ms: int) -> dict[str, int]:
        """When the notifier first saw each episode (``now_ms`` for those it sees now)."""
        with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
            self._db.executemany("INSERT OR IGNORE INTO episodes VALUES (?, ?)", [(a, now_ms) for a in alert_ids])
            out: dict[str, int] = {}
            for i in range(0, len(alert_ids), 500):
                chunk = alert_ids[i : i + 500]
                q = f"SELECT alert_id, first_seen_ms FROM episodes WHERE alert_id IN ({','.join('?' * len(chunk))})"  # noqa: S608 - placeholders only
                out.update({a: int(t) for a, t in self._db.execute(q, chunk)})
            return out

    def get_mark(self, name: str, default: int = 0) -> int:
        rows = self._rows("SELECT v FROM meta WHERE k = ?", (name,))
        return int(rows[0][0]) if rows else default

    def set_mark(self, name: str, value: int) -> None:
        with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def due(self, now_ms: int, limit: int = 100) -> list[OutboxRow]:
        """Queued rows whose time has come, oldest first."""
        rows = self._rows(
            "SELECT key, alert_id, transition, route, tier, channel, address, attempts, message FROM outbox"
            " WHERE status = 'queued' AND next_ms <= ? ORDER BY next_ms, key LIMIT ?",
            (now_ms, limit),
        )
        return [
            OutboxRow(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                int(r[4]),
                str(r[5]),
                str(r[6]),
                int(r[7]),
                orjson.loads(r[8]),
            )
            for r in rows
        ]

    def mark_attempt(self, key: str, next_ms: int) -> None:
        """Count an attempt before sending; should it crash, the row is retried at ``next_ms``."""
        with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, next_ms = ? WHERE key = ?", (next_ms, key))

    def mark_sent(self, key: str, now_ms: int) -> None:
        with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
            self._db.execute(
                "UPDATE outbox SET status = 'sent', sent_ms = ?, error = NULL WHERE key = ?", (now_ms, key)
            )

    def mark_error(self, key: str, error: str, *, failed: bool) -> None:
        """Record a failed attempt; ``failed`` makes it the dead letter (no more tries)."""
        with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
            self._db.execute(
                "UPDATE outbox SET error = ?, status = CASE WHEN ? THEN 'failed' ELSE status END WHERE key = ?",
                (error[:ERROR_CHARS], failed, key),
            )

    def counts(self, now_ms: int) -> dict[str, Any]:
        return summarize(((str(st), int(due)) for st, due in self._rows("SELECT status, due_ms FROM outbox")), now_ms)

    def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(LISTED_COLUMNS)} FROM outbox ORDER BY created_ms DESC, key LIMIT ?"  # noqa: S608 - fixed columns
        return [dict(zip(LISTED_COLUMNS, r, strict=True)) for r in self._rows(sql, (limit,))]

    def erase_subject(self, subject_id: str, windows: Sequence[Window], *, dry_run: bool = False) -> int:
        rows = self._rows("SELECT key, subject_id, device_id, event_ms, message FROM outbox")
        keys = [
            str(k)
            for k, subject, device, event_ms, message in rows
            if is_subjects(
                {"subject_id": subject, "device_id": device, "event_ms": event_ms, "message": orjson.loads(message)},
                subject_id,
                windows,
            )
        ]
        if keys and not dry_run:
            with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
                self._db.executemany("DELETE FROM outbox WHERE key = ?", [(k,) for k in keys])
        return len(keys)
