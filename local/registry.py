"""Local stand-in for the registry's DynamoDB table: a SQLite file in the stack's home."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.registry import Assignment, Device, RegistryError, Subject
from local.sqlite import SqliteStore, write_transaction
from registry.store import HistoryEntry, RegistryStore, RegistryUnavailable, VersionConflict, redact

__all__ = ["LocalRegistry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subjects (subject_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (address TEXT PRIMARY KEY, body TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
  device TEXT NOT NULL, from_ms INTEGER NOT NULL, subject_id TEXT NOT NULL, to_ms INTEGER,
  PRIMARY KEY (device, from_ms));
CREATE TABLE IF NOT EXISTS history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, action TEXT NOT NULL, why TEXT NOT NULL,
  detail TEXT NOT NULL);
"""


class LocalRegistry(SqliteStore, RegistryStore):
    """The registry in one SQLite file (WAL; a killed writer leaves no half-written change)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    # subjects
    def get_subject(self, subject_id: str) -> Subject | None:
        rows = self._rows("SELECT body FROM subjects WHERE subject_id = ?", (subject_id,))
        return Subject.from_dict(json.loads(rows[0][0])) if rows else None

    def subjects(self) -> list[Subject]:
        return [Subject.from_dict(json.loads(b)) for (b,) in self._rows("SELECT body FROM subjects ORDER BY 1")]

    def _put_subject(self, subject: Subject, *, new: bool) -> None:
        body = json.dumps(subject.to_dict(), sort_keys=True)
        verb = "INSERT" if new else "REPLACE"
        try:
            with self._lock, write_transaction(self._db, RegistryUnavailable, "the registry"):
                self._db.execute(f"{verb} INTO subjects VALUES (?, ?)", (subject.subject_id, body))
        except RegistryUnavailable as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise RegistryError("subject_id", f"{subject.subject_id} is already registered") from None
            raise

    # devices
    def get_device(self, address: str) -> Device | None:
        rows = self._rows("SELECT body FROM devices WHERE address = ?", (address,))
        return Device(**json.loads(rows[0][0])) if rows else None

    def devices(self) -> list[Device]:
        return [Device(**json.loads(b)) for (b,) in self._rows("SELECT body FROM devices ORDER BY address")]

    def _put_device(self, device: Device, *, new: bool) -> None:
        body = json.dumps(device.to_dict(), sort_keys=True)
        try:
            with self._lock, write_transaction(self._db, RegistryUnavailable, "the registry"):
                if new:
                    self._db.execute("INSERT INTO devices VALUES (?, ?, 0)", (device.address, body))
                else:
                    self._db.execute("UPDATE devices SET body = ? WHERE address = ?", (body, device.address))
        except RegistryUnavailable as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise RegistryError("address", f"{device.address} is already registered") from None
            raise

    # assignments
    def _device_assignments(self, address: str) -> tuple[int, list[Assignment]]:
        with self._lock:
            version = self._db.execute("SELECT version FROM devices WHERE address = ?", (address,)).fetchone()
            rows = self._db.execute(
                "SELECT device, from_ms, subject_id, to_ms FROM assignments WHERE device = ? ORDER BY from_ms",
                (address,),
            ).fetchall()
        return (int(version[0]) if version else 0), [Assignment(*r) for r in rows]

    def _write_assignments(
        self,
        address: str,
        version: int,
        writes: Sequence[Assignment],
        *,
        deletes: Sequence[Assignment] = (),
        log: HistoryEntry | None = None,
    ) -> None:
        with self._lock, write_transaction(self._db, RegistryUnavailable, "the registry"):
            moved = self._db.execute(
                "UPDATE devices SET version = version + 1 WHERE address = ? AND version = ?", (address, version)
            ).rowcount
            if moved != 1:
                raise VersionConflict(address)
            self._db.executemany(
                "INSERT OR REPLACE INTO assignments VALUES (?, ?, ?, ?)",
                [(a.device, a.from_ms, a.subject_id, a.to_ms) for a in writes],
            )
            self._db.executemany(
                "DELETE FROM assignments WHERE device = ? AND from_ms = ?", [(a.device, a.from_ms) for a in deletes]
            )
            if log is not None:
                self._insert_history(log.at_ms, log.action, log.why, log.detail)

    def assignments(self, device: str | None = None) -> list[Assignment]:
        sql = "SELECT device, from_ms, subject_id, to_ms FROM assignments"
        rows = (
            self._rows(sql + " WHERE device = ? ORDER BY from_ms", (device,))
            if device
            else self._rows(sql + " ORDER BY device, from_ms")
        )
        return [Assignment(*r) for r in rows]

    # history
    def history(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT at_ms, action, why, detail FROM history ORDER BY seq")
        return [{"at_ms": t, "action": a, "why": w, "detail": json.loads(d)} for t, a, w, d in rows]

    def _log(self, at_ms: int, action: str, why: str, detail: dict[str, Any]) -> None:
        with self._lock, write_transaction(self._db, RegistryUnavailable, "the registry"):
            self._insert_history(at_ms, action, why, detail)

    def _delete_subject(self, subject_id: str) -> bool:
        with self._lock, write_transaction(self._db, RegistryUnavailable, "the registry"):
            return self._db.execute("DELETE FROM subjects WHERE subject_id = ?", (subject_id,)).rowcount > 0

    def _redact_history(self, subject_id: str, key: str) -> int:
        with self._lock, write_transaction(self._db, RegistryUnavailable, "the registry"):
            rows = self._db.execute("SELECT seq, why, detail FROM history").fetchall()
            changed = [
                (
                    redact(why, subject_id, key),
                    json.dumps(redact(json.loads(detail), subject_id, key), sort_keys=True),
                    seq,
                )
                for seq, why, detail in rows
            ]
            changed = [c for c, (_, why, detail) in zip(changed, rows, strict=True) if (c[0], c[1]) != (why, detail)]
            self._db.executemany("UPDATE history SET why = ?, detail = ? WHERE seq = ?", changed)
        return len(changed)

    def _insert_history(self, at_ms: int, action: str, why: str, detail: dict[str, Any]) -> None:
        """Inside a write transaction (the caller holds the lock)."""
        self._db.execute(
            "INSERT INTO history (at_ms, action, why, detail) VALUES (?, ?, ?, ?)",
            (at_ms, action, why, json.dumps(detail, sort_keys=True)),
        )
