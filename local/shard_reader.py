"""A checkpointed, per-shard Kinesis consumer.

``ShardReader`` reads a shard from just after its checkpoint (or TRIM_HORIZON) and hands
out records; the caller commits a sequence number once that record's effects are durable.
Checkpoints live in a JSON file (written atomically), one per consumer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Checkpoints", "ShardReader", "shard_ids", "stream_arn"]

log = logging.getLogger(__name__)


class Checkpoints:
    """Last committed sequence number per shard, in ``path`` (JSON)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._state: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, shard_id: str) -> str | None:
        return self._state.get(shard_id)

    def forget(self, shard_id: str) -> None:
        """Drop a shard's checkpoint (the stream no longer holds it): reading restarts at the oldest record."""
        if self._state.pop(shard_id, None) is not None:
            self._write()

    def commit(self, shard_id: str, sequence_number: str) -> None:
        old = self._state.get(shard_id)
        if old is not None and int(old) >= int(sequence_number):
            return
        self._state[shard_id] = sequence_number
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, sort_keys=True))
        os.replace(tmp, self.path)


def shard_ids(client: Any, stream: str) -> list[str]:
    shards = client.list_shards(StreamName=stream)["Shards"]
    return sorted(s["ShardId"] for s in shards)


def stream_arn(client: Any, stream: str) -> str:
    return str(client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"])


@dataclass
class ShardReader:
    """Pages of records of one shard after ``checkpoints``' position, until caught up."""

    client: Any
    stream: str
    shard_id: str
    checkpoints: Checkpoints
    limit: int = 10_000
    #: set when the checkpoint named a position the stream no longer holds (its retention
    #: passed, or the stream was recreated) and reading restarted from the oldest record
    reset_reason: str | None = None

    def _iterator(self, after: str | None) -> str:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": self.shard_id}
        if after is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            return str(self.client.get_shard_iterator(**kwargs)["ShardIterator"])
        try:
            it = self.client.get_shard_iterator(
                **kwargs, ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidArgumentException":
                raise
            self.reset_reason = f"checkpoint {after} is not in {self.shard_id} any more; resumed from its oldest record"
            log.warning(
                "%s: checkpoint not held by the stream (retention passed or stream recreated); "
                "resuming from the oldest record",
                self.shard_id,
            )
            self.checkpoints.forget(self.shard_id)
            it = self.client.get_shard_iterator(**kwargs, ShardIteratorType="TRIM_HORIZON")
        return str(it["ShardIterator"])

    def pages(self, after: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Yield non-empty pages of records after ``after`` (default: the checkpoint)."""
        it: str | None = self._iterator(after if after is not None else self.checkpoints.get(self.shard_id))
        while it:
            resp = self.client.get_records(ShardIterator=it, Limit=self.limit)
            records = resp["Records"]
            if records:
                yield records
            if not records and resp.get("MillisBehindLatest", 0) == 0:
                return
            it = resp.get("NextShardIterator")
