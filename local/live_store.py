"""Local stand-in for OpenSearch: an embedded SQLite store holding the same documents.

Documents are the speed layer's (``(kind, document)`` pairs, :mod:`speed_layer.store`),
indexed under their deterministic ``doc_id`` so a replay overwrites.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from local.sqlite import open_db, write_transaction
from speed_layer.processing import TIME_FIELD
from speed_layer.store import Doc, LiveStore, Rejected, StoreError

__all__ = ["LocalLiveStore"]


class LocalLiveStore(LiveStore):
    """Embedded store: one SQLite table of JSON documents keyed by (kind, id)."""

    def __init__(self, path: Path) -> None:
        self._db = open_db(path, synchronous="NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs (idx TEXT NOT NULL, id TEXT NOT NULL, subject_id TEXT,"
            " t_ms INTEGER, record_id TEXT, status TEXT, body TEXT NOT NULL, PRIMARY KEY (idx, id))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS docs_subject ON docs (idx, subject_id, t_ms)")
        self._lock = threading.Lock()

    def index(self, docs: Sequence[Doc]) -> list[Rejected]:
        rows = [
            (
                kind,
                d["doc_id"],
                d.get("subject_id"),
                d.get(TIME_FIELD[kind]),
                d.get("record_id"),
                d.get("status"),
                orjson.dumps(d, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode(),
            )
            for kind, d in docs
        ]
        # e.g. the disk is full: nothing indexed, StoreError, the batch is retried
        with self._lock, write_transaction(self._db, StoreError, "the embedded live store"):
            self._db.executemany("INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return []

    def count(self, kind: str) -> int:
        return int(self._db.execute("SELECT count(*) FROM docs WHERE idx = ?", (kind,)).fetchone()[0])

    def distinct_record_ids(self) -> int:
        return int(self._db.execute("SELECT count(DISTINCT record_id) FROM docs").fetchone()[0])

    def latest(self, kind: str, subject_id: str, n: int = 1) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT body FROM docs WHERE idx = ? AND subject_id = ? ORDER BY t_ms DESC LIMIT ?",
            (kind, subject_id, n),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def open_alerts(self, subject_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT body FROM docs WHERE idx = 'alerts' AND subject_id = ? AND status = 'open' ORDER BY t_ms",
            (subject_id,),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def dump(self) -> list[tuple[str, str, str]]:
        """Every (kind, id, body), sorted: what tests compare across runs."""
        return self._db.execute("SELECT idx, id, body FROM docs ORDER BY idx, id").fetchall()

    def close(self) -> None:
        self._db.close()
