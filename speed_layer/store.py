"""The live store: OpenSearch on AWS, an embedded SQLite store holding the same documents.

Both index documents under their deterministic ``doc_id`` (a replay overwrites) and are
handed their client/path by the composition root.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from core.errors import SleepstackError

__all__ = ["LiveStore", "LocalLiveStore", "OpenSearchLiveStore", "StoreError"]

Doc = tuple[str, dict[str, Any]]


class StoreError(SleepstackError):
    """Documents could not be indexed; the batch must be retried."""


class LiveStore(ABC):
    """Where the speed layer's documents go."""

    @abstractmethod
    def index(self, docs: Sequence[Doc]) -> None:
        """Index (index name, document) pairs; the document's ``doc_id`` is its id."""

    @abstractmethod
    def count(self, index: str) -> int: ...

    @abstractmethod
    def distinct_record_ids(self) -> int:
        """How many distinct source records the stored documents came from."""

    @abstractmethod
    def latest(self, index: str, subject_id: str, time_field: str, n: int = 1) -> list[dict[str, Any]]: ...


class LocalLiveStore(LiveStore):
    """Embedded store: one SQLite table of JSON documents keyed by (index, id)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs (idx TEXT NOT NULL, id TEXT NOT NULL, subject_id TEXT,"
            " t_ms INTEGER, record_id TEXT, body TEXT NOT NULL, PRIMARY KEY (idx, id))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS docs_subject ON docs (idx, subject_id, t_ms)")
        self._lock = threading.Lock()

    def index(self, docs: Sequence[Doc]) -> None:
        rows = [
            (
                idx,
                d["doc_id"],
                d.get("subject_id"),
                d.get("epoch_start_ms", d.get("event_time_ms")),
                d.get("record_id"),
                json.dumps(d, sort_keys=True),
            )
            for idx, d in docs
        ]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def count(self, index: str) -> int:
        return int(self._db.execute("SELECT count(*) FROM docs WHERE idx = ?", (index,)).fetchone()[0])

    def distinct_record_ids(self) -> int:
        return int(self._db.execute("SELECT count(DISTINCT record_id) FROM docs").fetchone()[0])

    def latest(self, index: str, subject_id: str, time_field: str, n: int = 1) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT body FROM docs WHERE idx = ? AND subject_id = ? ORDER BY t_ms DESC LIMIT ?",
            (index, subject_id, n),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        self._db.close()


_RETRYABLE: Final = {429, 502, 503, 504}


class OpenSearchLiveStore(LiveStore):
    """OpenSearch through an injected ``opensearchpy.OpenSearch`` client (bulk API)."""

    def __init__(self, client: Any, max_bulk_bytes: int = 5 * 1024 * 1024) -> None:
        self.client = client
        self.max_bulk_bytes = max_bulk_bytes

    def _bodies(self, docs: Sequence[Doc]) -> list[str]:
        bodies: list[str] = []
        lines: list[str] = []
        size = 0
        for idx, d in docs:
            pair = (
                json.dumps({"index": {"_index": idx, "_id": d["doc_id"]}}) + "\n" + json.dumps(d, sort_keys=True) + "\n"
            )
            if lines and size + len(pair) > self.max_bulk_bytes:
                bodies.append("".join(lines))
                lines, size = [], 0
            lines.append(pair)
            size += len(pair)
        if lines:
            bodies.append("".join(lines))
        return bodies

    def index(self, docs: Sequence[Doc]) -> None:
        for body in self._bodies(docs):
            resp = self.client.bulk(body=body)
            if not resp.get("errors"):
                continue
            failed = [it["index"] for it in resp["items"] if it["index"].get("status", 200) >= 300]
            retryable = [f for f in failed if f.get("status") in _RETRYABLE or f.get("status", 0) >= 500]
            detail = "; ".join(f"{f.get('_id')}: {f.get('status')} {f.get('error')}" for f in failed[:3])
            raise StoreError(f"{len(failed)} documents rejected ({len(retryable)} retryable): {detail}")

    def count(self, index: str) -> int:
        return int(self.client.count(index=index)["count"])

    def distinct_record_ids(self) -> int:
        resp = self.client.search(
            index="sleepstack-*",
            body={"size": 0, "aggs": {"n": {"cardinality": {"field": "record_id", "precision_threshold": 40000}}}},
        )
        return int(resp["aggregations"]["n"]["value"])

    def latest(self, index: str, subject_id: str, time_field: str, n: int = 1) -> list[dict[str, Any]]:
        resp = self.client.search(
            index=index,
            body={"size": n, "query": {"term": {"subject_id": subject_id}}, "sort": [{time_field: {"order": "desc"}}]},
        )
        return [h["_source"] for h in resp["hits"]["hits"]]
