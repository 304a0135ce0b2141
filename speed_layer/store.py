"""The live store: the interface, and OpenSearch (AWS; the embedded store is :mod:`local.live_store`).

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
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from core.errors import SleepstackError
from core.live.alerts import INDEXED_FIELD
from core.registry import Window
from speed_layer.indices import index_for, index_pattern
from speed_layer.processing import DOC_KINDS, TIME_FIELD

__all__ = [
    "Doc",
    "LiveStore",
    "OpenSearchLiveStore",
    "Rejected",
    "StoreError",
    "Window",
    "erase_query",
    "reassign_query",
]

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
    """Where the speed layer's documents go (what reads them: :mod:`serving.live_queries`)."""

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
    def reassign(self, device_id: str, start_ms: int, end_ms: int, subject_id: str) -> int:
        """File the documents of ``device_id`` placed in ``[start_ms, end_ms)`` (each kind by
        its time field, :data:`speed_layer.processing.TIME_FIELD`) under ``subject_id``: a
        corrected assignment (``sleepstack reassign``). Returns how many changed; a rerun
        changes none. Raises StoreError when the store cannot do it."""

    @abstractmethod
    def erase_subject(self, subject_id: str, windows: Sequence[Window]) -> int:
        """Delete every document of ``subject_id``, of every kind, and every document of a
        window's device placed in the window (by its kind's time field): the subject's
        erasure (``sleepstack erase``). Returns how many were deleted; a rerun deletes none.
        Raises StoreError when the store cannot do it."""


def erase_query(kind: str, subject_id: str, windows: Sequence[Window]) -> dict[str, Any]:
    """The ``_delete_by_query`` body that deletes ``subject_id``'s ``kind`` documents and those
    of the windows' devices placed in their windows (``kind``'s time field)."""
    should: list[dict[str, Any]] = [{"term": {"subject_id": subject_id}}]
    for device_id, start_ms, end_ms in windows:
        should.append(
            {
                "bool": {
                    "filter": [
                        {"term": {"device_id": device_id}},
                        {"range": {TIME_FIELD[kind]: {"gte": start_ms, "lt": end_ms, "format": "epoch_millis"}}},
                    ]
                }
            }
        )
    return {"query": {"bool": {"should": should, "minimum_should_match": 1}}}


def reassign_query(kind: str, device_id: str, start_ms: int, end_ms: int, subject_id: str) -> dict[str, Any]:
    """The ``_update_by_query`` body that files a device's ``kind`` documents of a window under
    ``subject_id`` (only those under another subject: a rerun updates nothing)."""
    return {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"device_id": device_id}},
                    {"range": {TIME_FIELD[kind]: {"gte": start_ms, "lt": end_ms, "format": "epoch_millis"}}},
                ],
                "must_not": [{"term": {"subject_id": subject_id}}],
            }
        },
        "script": {
            "lang": "painless",
            "source": "ctx._source.subject_id = params.subject_id",
            "params": {"subject_id": subject_id},
        },
    }


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.prefix, self.max_bulk_bytes, self.clock = client, prefix, max_bulk_bytes, clock
        self.max_attempts, self.base_backoff_s, self.sleep = max_attempts, base_backoff_s, sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def _pairs(self, docs: Sequence[Doc]) -> list[tuple[Doc, str]]:
        out = []
        now_ms = int(self.clock() * 1000)
        for kind, d in docs:
            action = {"index": {"_index": index_for(self.prefix, kind, d), "_id": d["doc_id"]}}
            source = {**d, INDEXED_FIELD: now_ms} if kind == "alerts" else d  # the notifier's change cursor
            out.append(((kind, d), json.dumps(action) + "\n" + json.dumps(source, sort_keys=True) + "\n"))
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

    def _refresh(self, kind: str) -> None:
        """Make every document of ``kind`` indexed so far searchable (and so seen by a by-query)."""
        self.client.indices.refresh(
            index=index_pattern(self.prefix, kind), params={"allow_no_indices": "true", "ignore_unavailable": "true"}
        )

    def count_subject(self, subject_id: str, windows: Sequence[Window]) -> int:
        """How many documents :meth:`erase_subject` would delete (``_count`` with its query, per
        kind): the erasure's proof on OpenSearch. Raises StoreError when the store cannot say."""
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError

        total = 0
        for kind in DOC_KINDS:
            try:
                self._refresh(kind)
                resp = self.client.count(
                    index=index_pattern(self.prefix, kind),
                    body=erase_query(kind, subject_id, windows),
                    params={"allow_no_indices": "true", "ignore_unavailable": "true"},
                )
            except (OsConnectionError, TransportError) as exc:
                raise StoreError(f"counting a subject's {kind} documents failed: {exc}") from exc
            total += int(resp["count"])
        return total

    def reassign(self, device_id: str, start_ms: int, end_ms: int, subject_id: str) -> int:
        """One ``_update_by_query`` per kind over its daily indices (refreshed, so the live
        views see the change at once); version conflicts with a concurrent write are
        retried by the caller's rerun, which finds only what is left."""
        return self._by_query(
            "update_by_query",
            "updated",
            "moving {kind} documents to another subject",
            lambda kind: reassign_query(kind, device_id, start_ms, end_ms, subject_id),
        )

    def erase_subject(self, subject_id: str, windows: Sequence[Window]) -> int:
        """One ``_delete_by_query`` per kind over its daily indices (refreshed); a version
        conflict with a concurrent write fails the step, and the rerun deletes what is left."""
        return self._by_query(
            "delete_by_query",
            "deleted",
            "deleting a subject's {kind} documents",
            lambda kind: erase_query(kind, subject_id, windows),
        )

    def _by_query(self, api: str, counted: str, what: str, body: Callable[[str], dict[str, Any]]) -> int:
        """``api`` (``update_by_query``, ``delete_by_query``) once per kind; the sum of ``counted``.
        Failures or version conflicts raise StoreError (the caller's rerun finds what is left)."""
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import TransportError

        total = 0
        for kind in DOC_KINDS:
            try:
                # a by-query sees only what a refresh made searchable: documents indexed since the
                # last one (within the index's refresh interval) would be left without it
                self._refresh(kind)
                resp = getattr(self.client, api)(
                    index=index_pattern(self.prefix, kind),
                    body=body(kind),
                    params={"conflicts": "proceed", "refresh": "true", "allow_no_indices": "true"},
                )
            except (OsConnectionError, TransportError) as exc:
                raise StoreError(f"{what.format(kind=kind)} failed: {exc}") from exc
            if resp.get("failures") or resp.get("version_conflicts"):
                raise StoreError(
                    f"{what.format(kind=kind)}: {len(resp.get('failures') or [])} failures,"
                    f" {resp.get('version_conflicts', 0)} version conflicts; run it again"
                )
            total += int(resp.get(counted, 0))
        return total

    def distinct_record_ids(self) -> int:
        """Exact: the record ids are paged through a composite aggregation (a ``cardinality``
        aggregation is HyperLogLog, approximate even under its precision threshold: a real
        node counted 27,900 of 27,903 ids)."""
        seen, after = 0, None
        while True:
            terms: dict[str, Any] = {"size": 10_000, "sources": [{"id": {"terms": {"field": "record_id"}}}]}
            if after is not None:
                terms["after"] = after
            resp = self.client.search(index=f"{self.prefix}-*", body={"size": 0, "aggs": {"ids": {"composite": terms}}})
            agg = resp["aggregations"]["ids"]
            seen += len(agg["buckets"])
            after = agg.get("after_key")
            if not agg["buckets"] or after is None:
                return seen
