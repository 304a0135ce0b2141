"""Local stand-in for the speed layer's DynamoDB state table: SQLite tables.

States are stored as :mod:`core.live.state_codec` bytes, as on AWS; a row holding the JSON
text of an older stack still decodes. A state's position in its shard (``after_seq``, a
decimal string: Kinesis sequence numbers exceed SQLite's 64-bit integers) sits beside it,
and each shard's lease (:class:`speed_layer.state_store.Lease`) is a row of
``shard_lease``, renewed by a conditional ``UPDATE`` as DynamoDB's conditional write does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.live.state_codec import decode_state, encode_state
from local.sqlite import add_columns, open_db, write_transaction
from speed_layer.state_store import Lease, LeaseTaken, Persisted, StateStore, StateStoreError

__all__ = ["LocalStateStore"]

_WHAT = "the embedded state store"


class LocalStateStore(StateStore):
    def __init__(self, path: Path) -> None:
        self._db = open_db(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS device_state (device_id TEXT PRIMARY KEY, state TEXT NOT NULL)")
        add_columns(self._db, "device_state", (("after_seq", "TEXT"),))  # a table made before epoch writes
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS shard_lease"
            " (shard TEXT PRIMARY KEY, owner TEXT NOT NULL, counter INTEGER NOT NULL, horizon TEXT)"
        )
        self._lock = threading.Lock()

    def get_many(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {d: p.state for d, p in self.get_positioned(device_ids).items()}

    def put_many(self, states: Mapping[str, dict[str, Any]]) -> None:
        self.put_positioned({d: Persisted(s, None) for d, s in states.items()})

    def get_positioned(self, device_ids: Iterable[str]) -> dict[str, Persisted]:
        ids = list(device_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT device_id, state, after_seq FROM device_state WHERE device_id IN ({marks})",  # noqa: S608 - placeholders only
                ids,
            ).fetchall()
        return {d: Persisted(decode_state(d, s), None if a is None else int(a)) for d, s, a in rows}

    def put_positioned(self, states: Mapping[str, Persisted]) -> None:
        rows = [
            (d, encode_state(d, p.state), None if p.after_seq is None else str(p.after_seq)) for d, p in states.items()
        ]
        with self._lock, write_transaction(self._db, StateStoreError, _WHAT):
            self._db.executemany(
                "INSERT OR REPLACE INTO device_state (device_id, state, after_seq) VALUES (?, ?, ?)", rows
            )

    def delete_many(self, device_ids: Iterable[str]) -> int:
        rows = [(d,) for d in dict.fromkeys(device_ids)]
        with self._lock, write_transaction(self._db, StateStoreError, _WHAT):
            before = self._db.total_changes
            self._db.executemany("DELETE FROM device_state WHERE device_id = ?", rows)
            deleted = self._db.total_changes - before
            self._db.execute("UPDATE shard_lease SET owner = '', counter = counter + 1")  # horizons kept
            return deleted

    def renew_lease(self, shard: str, owner: str, counter: int, horizon: int | None) -> Lease | None:
        with self._lock, write_transaction(self._db, StateStoreError, _WHAT):
            cur = self._db.execute(
                "UPDATE shard_lease SET counter = counter + 1, horizon = ?"
                " WHERE shard = ? AND owner = ? AND counter = ?",
                (None if horizon is None else str(horizon), shard, owner, counter),
            )
            renewed = cur.rowcount == 1
        return Lease(owner, counter + 1, horizon) if renewed else None

    def take_lease(self, shard: str, owner: str, horizon: int) -> tuple[Lease, Lease | None]:
        with self._lock, write_transaction(self._db, StateStoreError, _WHAT):
            row = self._db.execute(
                "SELECT owner, counter, horizon FROM shard_lease WHERE shard = ?", (shard,)
            ).fetchone()
            old = None if row is None else Lease(row[0], int(row[1]), None if row[2] is None else int(row[2]))
            kept = old.horizon if old is not None and old.horizon is not None else horizon
            lease = Lease(owner, (old.counter if old else 0) + 1, kept)
            if old is None:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO shard_lease VALUES (?, ?, ?, ?)", (shard, owner, lease.counter, str(kept))
                )
            else:
                cur = self._db.execute(
                    "UPDATE shard_lease SET owner = ?, counter = ?, horizon = ? WHERE shard = ? AND counter = ?",
                    (owner, lease.counter, str(kept), shard, old.counter),
                )
            if cur.rowcount != 1:
                raise LeaseTaken(f"the lease of {shard} changed while it was taken over")
        return lease, old

    def close(self) -> None:
        self._db.close()
