"""What the live views read from the speed layer's documents: one interface, two engines.

The dashboard, its JSON API and ``sleepstack live`` read through :class:`LiveQueries`;
the implementations are OpenSearch (:class:`OpenSearchLiveQueries`, here: the engine on
AWS or any cluster at ``OPENSEARCH_URL``) and the embedded store
(:class:`local.live_store.LocalLiveStore`). Both answer from the same documents the speed
layer indexes (:mod:`speed_layer.indices` names the indices and time fields), so the two
give the same answers for the same night.

Every query takes its values as typed parameters: a subject id is a ``term`` value in
the OpenSearch query body and a bound ``?`` in SQLite, never text spliced into a query.
Times are epoch milliseconds (UTC); lists come oldest first unless said otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Final

from core.live.alerts import INDEXED_FIELD
from speed_layer.indices import index_pattern
from speed_layer.processing import TIME_FIELD

__all__ = ["MAX_DOCS", "LiveQueries", "OpenSearchLiveQueries", "SubjectSummary"]

#: Most documents one range query returns (a 12-h night of 30-s epochs from two devices
#: is 2,880); a wider range is cut and says so by returning exactly this many.
MAX_DOCS: Final = 10_000

SubjectSummary = dict[str, Any]


class LiveQueries(ABC):
    """Read side of the live store."""

    @abstractmethod
    def subjects(self) -> list[SubjectSummary]:
        """Every subject with documents: ``subject_id``, ``last_seen_ms`` (latest epoch start),
        ``latest`` (newest epoch document per source, ``{"bed": doc, "strap": doc}``) and
        ``open_alerts`` (count), sorted by subject id."""

    @abstractmethod
    def has_subject(self, subject_id: str) -> bool: ...

    @abstractmethod
    def between(
        self, kind: str, subject_id: str, start_ms: int, end_ms: int, limit: int = MAX_DOCS
    ) -> list[dict[str, Any]]:
        """A subject's documents of ``kind`` whose time field is in ``[start_ms, end_ms)``, oldest first."""

    @abstractmethod
    def alerts(
        self, subject_id: str | None = None, status: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Alert episodes (open and closed), newest start first; filtered by subject and status."""

    @abstractmethod
    def alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alert episode by its ``doc_id`` (None: no such alert)."""

    @abstractmethod
    def alert_counts(self) -> list[dict[str, Any]]:
        """Alert episodes per ``kind`` and ``status`` (``{"kind", "status", "count"}``), sorted."""

    @abstractmethod
    def latest(self, kind: str, subject_id: str, n: int = 1) -> list[dict[str, Any]]:
        """A subject's ``n`` most recent documents of a kind, newest first."""

    @abstractmethod
    def device_statuses(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """Each device's newest ``status`` document taken at or after ``since_ms``, by device address."""

    @abstractmethod
    def alerts_changed_since(self, since_ms: int, limit: int = MAX_DOCS) -> list[dict[str, Any]]:
        """Alert episodes the store wrote at or after ``since_ms`` (their
        :data:`core.live.alerts.INDEXED_FIELD`, the writer's clock; a document written before
        stores stamped it counts by its start, raise or end), and every open one; oldest write
        first, each with its ``indexed_ms``. The notifier asks with a lookback overlap (its
        outbox ignores what it has already queued)."""

    def open_alerts(self, subject_id: str) -> list[dict[str, Any]]:
        """A subject's open alerts, oldest first."""
        return sorted(self.alerts(subject_id, "open"), key=lambda a: a["start_ms"])


class OpenSearchLiveQueries(LiveQueries):
    """The queries on OpenSearch (an injected ``opensearchpy.OpenSearch`` client).

    Index patterns cover the daily indices; a missing index (nothing indexed yet) is an
    empty answer, not an error (``ignore_unavailable``).
    """

    def __init__(self, client: Any, *, prefix: str = "sleepstack") -> None:
        self.client, self.prefix = client, prefix

    def _search(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        resp: dict[str, Any] = self.client.search(
            index=index_pattern(self.prefix, kind), body=body, params={"ignore_unavailable": "true"}
        )
        return resp

    def _hits(self, kind: str, body: dict[str, Any], *, stamped: bool = False) -> list[dict[str, Any]]:
        """The documents a search finds; an alert's write stamp only when ``stamped`` (the
        notifier's cursor: the views answer as the embedded store does, without it)."""
        docs = [h["_source"] for h in self._search(kind, body)["hits"]["hits"]]
        if kind == "alerts" and not stamped:
            for d in docs:
                d.pop(INDEXED_FIELD, None)
        return docs

    def subjects(self) -> list[SubjectSummary]:
        t = TIME_FIELD["vitals"]
        newest = {"top_hits": {"size": 1, "sort": [{t: {"order": "desc"}}]}}
        body = {
            "size": 0,
            "aggs": {
                "subjects": {
                    "terms": {"field": "subject_id", "size": 1000, "order": {"_key": "asc"}},
                    "aggs": {
                        "last_seen": {"max": {"field": t}},
                        "sources": {"terms": {"field": "source", "size": 10}, "aggs": {"newest": newest}},
                    },
                }
            },
        }
        buckets = self._search("vitals", body).get("aggregations", {}).get("subjects", {}).get("buckets", [])
        open_counts = self._open_counts()
        out = []
        for b in buckets:
            latest = {s["key"]: s["newest"]["hits"]["hits"][0]["_source"] for s in b["sources"]["buckets"]}
            out.append(
                {
                    "subject_id": b["key"],
                    "last_seen_ms": int(b["last_seen"]["value"]),
                    "latest": latest,
                    "open_alerts": open_counts.get(b["key"], 0),
                }
            )
        return out

    def _open_counts(self) -> dict[str, int]:
        body = {
            "size": 0,
            "query": {"term": {"status": "open"}},
            "aggs": {"s": {"terms": {"field": "subject_id", "size": 1000}}},
        }
        buckets = self._search("alerts", body).get("aggregations", {}).get("s", {}).get("buckets", [])
        return {b["key"]: int(b["doc_count"]) for b in buckets}

    def has_subject(self, subject_id: str) -> bool:
        body = {"size": 0, "query": {"term": {"subject_id": subject_id}}, "terminate_after": 1}
        return int(self._search("vitals", body)["hits"]["total"]["value"]) > 0

    def between(
        self, kind: str, subject_id: str, start_ms: int, end_ms: int, limit: int = MAX_DOCS
    ) -> list[dict[str, Any]]:
        t = TIME_FIELD[kind]
        body = {
            "size": min(limit, MAX_DOCS),
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"subject_id": subject_id}},
                        {"range": {t: {"gte": start_ms, "lt": end_ms, "format": "epoch_millis"}}},
                    ]
                }
            },
            "sort": [{t: {"order": "asc"}}, {"doc_id": {"order": "asc"}}],
        }
        return self._hits(kind, body)

    def alerts(
        self, subject_id: str | None = None, status: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = []
        if subject_id is not None:
            filters.append({"term": {"subject_id": subject_id}})
        if status is not None:
            filters.append({"term": {"status": status}})
        body = {
            "size": min(limit, MAX_DOCS),
            "query": {"bool": {"filter": filters}},
            "sort": [{"start_ms": {"order": "desc"}}, {"doc_id": {"order": "asc"}}],
        }
        return self._hits("alerts", body)

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        hits = self._hits("alerts", {"size": 1, "query": {"bool": {"filter": [{"term": {"doc_id": alert_id}}]}}})
        return hits[0] if hits else None

    def alerts_changed_since(self, since_ms: int, limit: int = MAX_DOCS) -> list[dict[str, Any]]:
        body = {
            "size": min(limit, MAX_DOCS),
            "query": {
                "bool": {
                    "should": [
                        {"range": {INDEXED_FIELD: {"gte": since_ms, "format": "epoch_millis"}}},
                        *(  # written before the store stamped its writes
                            {
                                "bool": {
                                    "must_not": {"exists": {"field": INDEXED_FIELD}},
                                    "filter": {"range": {f: {"gte": since_ms, "format": "epoch_millis"}}},
                                }
                            }
                            for f in ("start_ms", "raised_ms", "end_ms")
                        ),
                        {"term": {"status": "open"}},
                    ],
                    "minimum_should_match": 1,
                }
            },
            "sort": [
                {INDEXED_FIELD: {"order": "asc", "missing": "_first"}},
                {"start_ms": {"order": "asc"}},
                {"doc_id": {"order": "asc"}},
            ],
        }
        return self._hits("alerts", body, stamped=True)

    def alert_counts(self) -> list[dict[str, Any]]:
        body = {
            "size": 0,
            "aggs": {
                "kind": {
                    "terms": {"field": "kind", "size": 50},
                    "aggs": {"status": {"terms": {"field": "status", "size": 5}}},
                }
            },
        }
        buckets = self._search("alerts", body).get("aggregations", {}).get("kind", {}).get("buckets", [])
        out = [
            {"kind": k["key"], "status": st["key"], "count": int(st["doc_count"])}
            for k in buckets
            for st in k["status"]["buckets"]
        ]
        return sorted(out, key=lambda r: (r["kind"], r["status"]))

    def device_statuses(self, since_ms: int = 0) -> list[dict[str, Any]]:
        t = TIME_FIELD["status"]
        body = {
            "size": 0,
            "query": {"range": {t: {"gte": since_ms, "format": "epoch_millis"}}},
            "aggs": {
                "device": {
                    "terms": {"field": "device_id", "size": 10_000},
                    "aggs": {"newest": {"top_hits": {"size": 1, "sort": [{t: {"order": "desc"}}]}}},
                }
            },
        }
        buckets = self._search("status", body).get("aggregations", {}).get("device", {}).get("buckets", [])
        docs = [hit["_source"] for b in buckets for hit in b["newest"]["hits"]["hits"]]
        return sorted(docs, key=lambda d: d["device_id"])

    def latest(self, kind: str, subject_id: str, n: int = 1) -> list[dict[str, Any]]:
        body = {
            "size": n,
            "query": {"term": {"subject_id": subject_id}},
            "sort": [{TIME_FIELD[kind]: {"order": "desc"}}, {"doc_id": {"order": "asc"}}],  # ties: bed, strap
        }
        return self._hits(kind, body)
