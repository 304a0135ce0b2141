"""Local stand-in for the speed layer's DynamoDB state table: one SQLite table.

States are stored as :mod:`core.live.state_codec` bytes, as on AWS; a row holding the JSON
text of an older stack still decodes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.live.state_codec import decode_state, encode_state
from local.sqlite import open_db, write_transaction
from speed_layer.state_store import StateStore, StateStoreError

__all__ = ["LocalStateStore"]


class LocalStateStore(StateStore):
    def __init__(self, path: Path) -> None:
        self._db = open_db(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS device_state (device_id TEXT PRIMARY KEY, state TEXT NOT NULL)")
        self._lock = threading.Lock()

    def get_many(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(device_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(f"SELECT device_id, state FROM device_state WHERE device_id IN ({marks})", ids)  # noqa: S608 - placeholders only
            return {d: decode_state(d, s) for d, s in rows.fetchall()}

    def put_many(self, states: Mapping[str, dict[str, Any]]) -> None:
        rows = [(d, encode_state(d, s)) for d, s in states.items()]
        with self._lock, write_transaction(self._db, StateStoreError, "the embedded state store"):
            self._db.executemany("INSERT OR REPLACE INTO device_state VALUES (?, ?)", rows)

    def delete_many(self, device_ids: Iterable[str]) -> int:
        rows = [(d,) for d in dict.fromkeys(device_ids)]
        with self._lock, write_transaction(self._db, StateStoreError, "the embedded state store"):
            before = self._db.total_changes
            self._db.executemany("DELETE FROM device_state WHERE device_id = ?", rows)
            return self._db.total_changes - before

    def close(self) -> None:
        self._db.close()
