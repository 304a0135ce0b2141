"""Alert acknowledgements in one SQLite file of the home (``dashboard/alert-acks.sqlite``, owner-only).

Two tables: ``acks`` (one row per acknowledged alert: the first acknowledgement wins, by
``INSERT OR IGNORE`` on the alert id, so two clicks at once leave one) and ``used_links``
(the nonces of the one-click links already used: a link acknowledges once). The web layer
writes; the notifier reads :meth:`AlertAcks.acknowledged` to stop escalating.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from access.acks import Ack, AckStore, AcksUnavailable, check_via
from access.roles import AccessError
from local.sqlite import SqliteStore, write_transaction

__all__ = ["AlertAcks"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS acks (alert_id TEXT PRIMARY KEY, by_user TEXT NOT NULL, via TEXT NOT NULL,
  at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS used_links (nonce TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
"""
_CHUNK: Final = 500  # ids per IN (...) query (SQLite's default limit is 32766 variables)


class AlertAcks(SqliteStore, AckStore):
    """The acknowledgements at ``path`` (created owner-only); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def acknowledge(self, alert_id: str, *, by: str, via: str, at_ms: int) -> Ack:
        """Record that ``by`` acknowledged ``alert_id``; the existing :class:`Ack` if it already was."""
        if not alert_id:
            raise AccessError("alert_id", "is empty")
        check_via(via)
        with self._lock, write_transaction(self._db, AcksUnavailable, "the acknowledgement store"):
            self._db.execute("INSERT OR IGNORE INTO acks VALUES (?, ?, ?, ?)", (alert_id, by, via, int(at_ms)))
            row = self._db.execute("SELECT by_user, via, at_ms FROM acks WHERE alert_id = ?", (alert_id,)).fetchone()
        return Ack(alert_id, str(row[0]), str(row[1]), int(row[2]))

    def get(self, alert_id: str) -> Ack | None:
        return self.acknowledged([alert_id]).get(alert_id)

    def acknowledged(self, alert_ids: Iterable[str]) -> dict[str, Ack]:
        """The acknowledgements of those of ``alert_ids`` that have one."""
        ids = list(dict.fromkeys(alert_ids))
        out: dict[str, Ack] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT alert_id, by_user, via, at_ms FROM acks WHERE alert_id IN ({marks})"  # noqa: S608
            for a, b, v, t in self._rows(sql, tuple(chunk)):
                out[str(a)] = Ack(str(a), str(b), str(v), int(t))
        return out

    def consume_link(self, nonce: str, at_ms: int) -> bool:
        """Mark a link's nonce used; ``False`` if it was used before (a link acknowledges once)."""
        with self._lock, write_transaction(self._db, AcksUnavailable, "the acknowledgement store"):
            cur = self._db.execute("INSERT OR IGNORE INTO used_links VALUES (?, ?)", (nonce, int(at_ms)))
            return cur.rowcount == 1

    def link_used(self, nonce: str) -> bool:
        """Whether a link's nonce was consumed (the confirmation page says so before asking)."""
        return bool(self._rows("SELECT 1 FROM used_links WHERE nonce = ?", (nonce,)))
