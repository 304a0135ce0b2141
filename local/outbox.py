"""The notifier's outbox: one row per message, keyed by its idempotency key, in an owner-only SQLite file.

Planning inserts with ``INSERT OR IGNORE`` (a replanned transition adds nothing); sending
marks the attempt *before* it sends and the success after, so a crash between leaves the
row queued with its attempt counted and it is resent under the same key (receivers drop
the duplicate). After the last attempt a row is ``failed`` with its reason (the dead letter).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from core.errors import SleepstackError
from local.sqlite import SqliteStore, write_transaction

__all__ = ["Outbox", "OutboxError", "OutboxRow"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  key TEXT PRIMARY KEY, alert_id TEXT NOT NULL, transition TEXT NOT NULL, route TEXT NOT NULL,
  tier INTEGER NOT NULL, channel TEXT NOT NULL, address TEXT NOT NULL, created_ms INTEGER NOT NULL,
  due_ms INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
  next_ms INTEGER NOT NULL, sent_ms INTEGER, error TEXT, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (status, next_ms);
CREATE TABLE IF NOT EXISTS episodes (alert_id TEXT PRIMARY KEY, first_seen_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""


class OutboxError(SleepstackError):
    """The outbox cannot be written (e.g. a full disk); the step is retried."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    key: str
    alert_id: str
    transition: str
    route: str
    tier: int
    channel: str
    address: str
    attempts: int
    message: dict[str, Any]


class Outbox(SqliteStore):
    """The outbox at ``path`` (created 0600 in a 0700 folder)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def add(self, rows: list[dict[str, Any]], now_ms: int) -> int:
        """Queue messages (``key, alert_id, transition, route, tier, channel, address, due_ms,
        message``); a key already present is ignored. Returns how many were new."""
        values = [
            (
                r["key"], r["alert_id"], r["transition"], r["route"], r["tier"], r["channel"], r["address"],
                now_ms, r["due_ms"], r["due_ms"], orjson.dumps(r["message"]).decode(),
            )
            for r in rows
        ]  # fmt: skip
        with self._lock, write_transaction(self._db, OutboxError, "the notifier's outbox"):
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (key, alert_id, transition, route, tier, channel, address,"
                " created_ms, due_ms, next_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                (error[:500], failed, key),
            )

    def counts(self, now_ms: int) -> dict[str, Any]:
        """``queued``, ``sent``, ``failed`` and ``oldest_unsent_s`` (0 when nothing waits)."""
        out = {"queued": 0, "sent": 0, "failed": 0}
        for status, n in self._rows("SELECT status, count(*) FROM outbox GROUP BY status"):
            out[str(status)] = int(n)
        oldest = self._rows("SELECT min(due_ms) FROM outbox WHERE status = 'queued' AND due_ms <= ?", (now_ms,))
        out["oldest_unsent_s"] = max(0, (now_ms - int(oldest[0][0])) // 1000) if oldest and oldest[0][0] else 0
        return out

    def rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest rows for ``sleepstack alerts outbox`` (no message bodies)."""
        cols = (
            "key",
            "alert_id",
            "transition",
            "route",
            "tier",
            "channel",
            "status",
            "attempts",
            "due_ms",
            "sent_ms",
            "error",
        )
        sql = f"SELECT {', '.join(cols)} FROM outbox ORDER BY created_ms DESC, key LIMIT ?"  # noqa: S608 - fixed columns
        got = self._rows(sql, (limit,))
        return [dict(zip(cols, r, strict=True)) for r in got]
