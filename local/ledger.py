"""The speed layer's ledger: the record ids it has applied, what ``reconcile`` counts.

Local only (the AWS speed layer's equivalent is its CloudWatch metrics): one SQLite table,
one row per record id, written in the same step that applies a batch and before the
event-source mapping moves its checkpoint past it, so a record is never counted without
having been applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from local.sqlite import open_db, write_transaction
from speed_layer.store import StoreError

__all__ = ["Ledger"]


class Ledger:
    """The record ids the speed layer has applied (SQLite, one row per id)."""

    def __init__(self, path: Path) -> None:
        self._db = open_db(path, synchronous="NORMAL")  # WAL + NORMAL: survives a killed process
        self._db.execute("CREATE TABLE IF NOT EXISTS applied (record_id TEXT PRIMARY KEY)")

    def add(self, ids: Iterable[str]) -> None:
        """Record a batch's ids in one transaction (not one per id)."""
        with write_transaction(self._db, StoreError, "the speed layer's ledger"):
            self._db.executemany("INSERT OR IGNORE INTO applied VALUES (?)", [(i,) for i in ids])

    def discard(self, ids: Iterable[str]) -> int:
        """Forget record ids (a subject's erasure: their records are gone); how many were held."""
        with write_transaction(self._db, StoreError, "the speed layer's ledger"):
            before = self._db.total_changes
            self._db.executemany("DELETE FROM applied WHERE record_id = ?", [(i,) for i in ids])
            return self._db.total_changes - before

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM applied").fetchone()[0])

    def close(self) -> None:
        self._db.close()
