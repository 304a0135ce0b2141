"""Local stand-in for OpenSearch: an embedded SQLite store holding the same documents.

Documents are the speed layer's (``(kind, document)`` pairs, :mod:`speed_layer.store`),
indexed under their deterministic ``doc_id`` so a replay overwrites. Rows keep the
subject, time and status next to the JSON body, indexed, so the live views' range
queries (:mod:`serving.live_queries`) read one subject's night without a scan.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from core.live.alerts import INDEXED_FIELD
from local.sqlite import add_columns, open_db, write_transaction
from serving.live_queries import MAX_DOCS, LiveQueries, SubjectSummary
from speed_layer.processing import TIME_FIELD
from speed_layer.store import Doc, LiveStore, Rejected, StoreError, Window

__all__ = ["LocalLiveStore"]


class LocalLiveStore(LiveStore, LiveQueries):
    """Embedded store: one SQLite table of JSON documents keyed by (kind, id); it answers
    the live views' queries (:class:`serving.live_queries.LiveQueries`) too."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = open_db(path, synchronous="NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs (idx TEXT NOT NULL, id TEXT NOT NULL, subject_id TEXT,"
            " t_ms INTEGER, record_id TEXT, status TEXT, body TEXT NOT NULL, PRIMARY KEY (idx, id))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS docs_subject ON docs (idx, subject_id, t_ms)")
        # when the store wrote each document (its clock): the notifier's cursor over alert changes
        add_columns(self._db, "docs", (("written_ms", "INTEGER"),))
        self._db.execute("CREATE INDEX IF NOT EXISTS docs_written ON docs (idx, written_ms)")
        self._lock = threading.Lock()
        self.clock = clock

    def index(self, docs: Sequence[Doc]) -> list[Rejected]:
        now_ms = int(self.clock() * 1000)
        rows = [
            (
                kind,
                d["doc_id"],
                d.get("subject_id"),
                d.get(TIME_FIELD[kind]),
                d.get("record_id"),
                d.get("status"),
                orjson.dumps(d, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode(),
                now_ms,
            )
            for kind, d in docs
        ]
        # e.g. the disk is full: nothing indexed, StoreError, the batch is retried
        with self._lock, write_transaction(self._db, StoreError, "the embedded live store"):
            self._db.executemany(
                "INSERT OR REPLACE INTO docs (idx, id, subject_id, t_ms, record_id, status, body, written_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return []

    def reassign(self, device_id: str, start_ms: int, end_ms: int, subject_id: str) -> int:
        with self._lock, write_transaction(self._db, StoreError, "the embedded live store"):
            return self._db.execute(
                "UPDATE docs SET subject_id = ?1, body = json_set(body, '$.subject_id', ?1)"
                " WHERE t_ms >= ?2 AND t_ms < ?3 AND subject_id IS NOT ?1 AND body ->> 'device_id' = ?4",
                (subject_id, start_ms, end_ms, device_id),
            ).rowcount

    def erase_subject(self, subject_id: str, windows: Sequence[Window]) -> int:
        deleted = 0
        with self._lock, write_transaction(self._db, StoreError, "the embedded live store"):
            deleted += self._db.execute("DELETE FROM docs WHERE subject_id = ?", (subject_id,)).rowcount
            for device_id, start_ms, end_ms in windows:
                deleted += self._db.execute(
                    "DELETE FROM docs WHERE t_ms >= ? AND t_ms < ? AND body ->> 'device_id' = ?",
                    (start_ms, end_ms, device_id),
                ).rowcount
        return deleted

    def count(self, kind: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM docs WHERE idx = ?", (kind,)).fetchone()[0])

    def distinct_record_ids(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(DISTINCT record_id) FROM docs").fetchone()[0])

    def _bodies(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def subjects(self) -> list[SubjectSummary]:
        with self._lock:
            seen = self._db.execute(
                "SELECT subject_id, max(t_ms) FROM docs WHERE idx = 'vitals' GROUP BY subject_id ORDER BY subject_id"
            ).fetchall()
            newest = [
                (subject, body)
                for subject, _ in seen
                for source in ("bed", "strap")  # the newest epoch per device kind, by the time index
                for (body,) in self._db.execute(
                    "SELECT body FROM docs WHERE idx = 'vitals' AND subject_id = ? AND body ->> 'source' = ?"
                    " ORDER BY t_ms DESC LIMIT 1",
                    (subject, source),
                )
            ]
            opened = dict(
                self._db.execute(
                    "SELECT subject_id, count(*) FROM docs WHERE idx = 'alerts' AND status = 'open' GROUP BY subject_id"
                ).fetchall()
            )
        latest: dict[str, dict[str, Any]] = {}
        for subject, body in newest:
            doc = orjson.loads(body)
            latest.setdefault(subject, {})[doc["source"]] = doc
        return [
            {"subject_id": s, "last_seen_ms": int(t), "latest": latest.get(s, {}), "open_alerts": int(opened.get(s, 0))}
            for s, t in seen
        ]

    def has_subject(self, subject_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM docs WHERE idx = 'vitals' AND subject_id = ? LIMIT 1", (subject_id,)
            ).fetchone()
        return row is not None

    def between(
        self, kind: str, subject_id: str, start_ms: int, end_ms: int, limit: int = MAX_DOCS
    ) -> list[dict[str, Any]]:
        return self._bodies(
            "SELECT body FROM docs WHERE idx = ? AND subject_id = ? AND t_ms >= ? AND t_ms < ? ORDER BY t_ms, id"
            " LIMIT ?",
            (kind, subject_id, start_ms, end_ms, min(limit, MAX_DOCS)),
        )

    def alerts(
        self, subject_id: str | None = None, status: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        return self._bodies(
            "SELECT body FROM docs WHERE idx = 'alerts' AND (?1 IS NULL OR subject_id = ?1)"
            " AND (?2 IS NULL OR status = ?2) ORDER BY t_ms DESC, id LIMIT ?3",
            (subject_id, status, min(limit, MAX_DOCS)),
        )

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        found = self._bodies("SELECT body FROM docs WHERE idx = 'alerts' AND id = ?", (alert_id,))
        return found[0] if found else None

    def alerts_changed_since(self, since_ms: int, limit: int = MAX_DOCS) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body, written_ms FROM docs WHERE idx = 'alerts' AND (written_ms >= ?1 OR status = 'open'"
                " OR (written_ms IS NULL AND (t_ms >= ?1 OR coalesce(body ->> 'raised_ms', 0) >= ?1"
                " OR coalesce(body ->> 'end_ms', 0) >= ?1)))"
                " ORDER BY coalesce(written_ms, t_ms), id LIMIT ?2",
                (since_ms, min(limit, MAX_DOCS)),
            ).fetchall()
        return [{**orjson.loads(body), INDEXED_FIELD: written} for body, written in rows]

    def alert_counts(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body ->> 'kind', status, count(*) FROM docs WHERE idx = 'alerts' GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
        return [{"kind": k, "status": st, "count": int(n)} for k, st, n in rows]

    def device_statuses(self, since_ms: int = 0) -> list[dict[str, Any]]:
        return self._bodies(
            "SELECT body FROM (SELECT body, body ->> 'device_id' AS device, row_number() OVER"
            " (PARTITION BY body ->> 'device_id' ORDER BY t_ms DESC) AS k FROM docs WHERE idx = 'status' AND t_ms >= ?)"
            " WHERE k = 1 ORDER BY device",
            (since_ms,),
        )

    def latest(self, kind: str, subject_id: str, n: int = 1) -> list[dict[str, Any]]:
        return self._bodies(
            "SELECT body FROM docs WHERE idx = ? AND subject_id = ? ORDER BY t_ms DESC, id LIMIT ?",
            (kind, subject_id, n),
        )

    def dump(self) -> list[tuple[str, str, str]]:
        """Every (kind, id, body), sorted: what tests compare across runs."""
        return self._db.execute("SELECT idx, id, body FROM docs ORDER BY idx, id").fetchall()

    def close(self) -> None:
        self._db.close()
