"""The live store: OpenSearch on AWS, an embedded SQLite store holding the same documents.

Both take ``(kind, document)`` pairs (kinds in :data:`speed_layer.processing.DOC_KINDS`),
index each under its deterministic ``doc_id`` (a replay overwrites) and are handed their
client/path by the composition root.

OpenSearch indices are daily, named by the document's own time (``sleepstack-vitals-
2026.11.22``), not by arrival: a replay of last week's records lands in last week's index
and overwrites there, which a write alias with size rollover could not guarantee. ISM
ages the daily indices out (:mod:`speed_layer.indices`).
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from core.errors import SleepstackError
from speed_layer.indices import index_for, index_pattern
from speed_layer.processing import TIME_FIELD

__all__ = ["LiveStore", "LocalLiveStore", "OpenSearchLiveStore", "Rejected", "StoreError"]

log = logging.getLogger(__name__)

Doc = tuple[str, dict[str, Any]]


class StoreError(SleepstackError):
    """Documents could not be indexed; the batch must be retried."""


@dataclass(frozen=True)
class Rejected:
    """A document the store refused for good (e.g. a mapping conflict), with its reason."""

    kind: str
    doc: dict[str, Any]
    status: int
    reason: str


class LiveStore(ABC):
    """Where the speed layer's documents go."""

    @abstractmethod
    def index(self, docs: Sequence[Doc]) -> list[Rejected]:
        """Index (kind, document) pairs under their ``doc_id``.

        Returns the documents refused for good; raises StoreError when the store is
        unavailable (the caller retries the whole batch).
        """

    @abstractmethod
    def count(self, kind: str) -> int: ...

    @abstractmethod
    def distinct_record_ids(self) -> int:
        """How many distinct source records the stored documents name."""

    @abstractmethod
    def latest(self, kind: str, subject_id: str, n: int = 1) -> list[dict[str, Any]]:
        """A subject's ``n`` most recent documents of a kind, newest first."""

    @abstractmethod
    def open_alerts(self, subject_id: str) -> list[dict[str, Any]]: ...


class LocalLiveStore(LiveStore):
    """Embedded store: one SQLite table of JSON documents keyed by (kind, id)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
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
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
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


#: Item statuses worth retrying: throttling and transient server errors.
RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})


class OpenSearchLiveStore(LiveStore):
    """OpenSearch through an injected ``opensearchpy.OpenSearch`` client (``_bulk`` API).

    Bulk bodies are cut at ``max_bulk_bytes``. Items that fail with 429 or 5xx are
    resent alone, with exponential backoff and full jitter, up to ``max_attempts``; items
    refused for another reason (4xx: mapping conflict, bad document) are returned as
    :class:`Rejected` so the caller can dead-letter them — they never block the shard.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "sleepstack",
        max_bulk_bytes: int = 5 * 1024 * 1024,
        max_attempts: int = 6,
        base_backoff_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client, self.prefix, self.max_bulk_bytes = client, prefix, max_bulk_bytes
        self.max_attempts, self.base_backoff_s, self.sleep = max_attempts, base_backoff_s, sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def _pairs(self, docs: Sequence[Doc]) -> list[tuple[Doc, str]]:
        out = []
        for kind, d in docs:
            action = {"index": {"_index": index_for(self.prefix, kind, d), "_id": d["doc_id"]}}
            out.append(((kind, d), json.dumps(action) + "\n" + json.dumps(d, sort_keys=True) + "\n"))
        return out

    def _bodies(self, pairs: list[tuple[Doc, str]]) -> list[list[tuple[Doc, str]]]:
        chunks: list[list[tuple[Doc, str]]] = []
        size = 0
        for pair in pairs:
            n = len(pair[1].encode())
            if chunks and chunks[-1] and size + n <= self.max_bulk_bytes:
                chunks[-1].append(pair)
                size += n
            else:
                chunks.append([pair])
                size = n
        return chunks

    def index(self, docs: Sequence[Doc]) -> list[Rejected]:
        rejected: list[Rejected] = []
        pending = self._pairs(docs)
        for attempt in range(self.max_attempts):
            retry: list[tuple[Doc, str]] = []
            for chunk in self._bodies(pending):
                retry += self._send(chunk, rejected)
            if not retry:
                return rejected
            pending = retry
            delay = self.rng.uniform(0, self.base_backoff_s * 2**attempt)
            log.warning("%d documents throttled or failed transiently; retry in %.2f s", len(retry), delay)
            self.sleep(delay)
        raise StoreError(f"{len(pending)} documents still failing after {self.max_attempts} attempts")

    def _send(self, chunk: list[tuple[Doc, str]], rejected: list[Rejected]) -> list[tuple[Doc, str]]:
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError

        try:
            resp = self.client.bulk(body="".join(line for _, line in chunk))
        except OsConnectionError as exc:
            log.warning("bulk request failed: %s", exc)
            return chunk
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            if status in RETRYABLE:
                return chunk
            raise StoreError(f"bulk request refused: {status} {exc.error}") from exc
        if not resp.get("errors"):
            return []
        retry = []
        for pair, item in zip(chunk, resp["items"], strict=True):
            result = next(iter(item.values()))
            status = int(result.get("status", 200))
            if status < 300:
                continue
            if status in RETRYABLE:
                retry.append(pair)
            else:
                kind, doc = pair[0]
                rejected.append(Rejected(kind, doc, status, json.dumps(result.get("error"))))
        return retry

    def count(self, kind: str) -> int:
        return int(self.client.count(index=index_pattern(self.prefix, kind))["count"])

    def distinct_record_ids(self) -> int:
        resp = self.client.search(
            index=f"{self.prefix}-*",
            body={"size": 0, "aggs": {"n": {"cardinality": {"field": "record_id", "precision_threshold": 40000}}}},
        )
        return int(resp["aggregations"]["n"]["value"])

    def latest(self, kind: str, subject_id: str, n: int = 1) -> list[dict[str, Any]]:
        resp = self.client.search(
            index=index_pattern(self.prefix, kind),
            body={
                "size": n,
                "query": {"term": {"subject_id": subject_id}},
                "sort": [{TIME_FIELD[kind]: {"order": "desc"}}],
            },
        )
        return [h["_source"] for h in resp["hits"]["hits"]]

    def open_alerts(self, subject_id: str) -> list[dict[str, Any]]:
        resp = self.client.search(
            index=index_pattern(self.prefix, "alerts"),
            body={
                "size": 100,
                "query": {"bool": {"filter": [{"term": {"subject_id": subject_id}}, {"term": {"status": "open"}}]}},
                "sort": [{"start_ms": {"order": "asc"}}],
            },
        )
        return [h["_source"] for h in resp["hits"]["hits"]]
