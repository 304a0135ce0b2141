"""A checkpointed, per-shard Kinesis consumer.

``ShardReader`` reads a shard from just after its checkpoint (or TRIM_HORIZON) and hands
out records; the caller commits a sequence number once that record's effects are durable.
Checkpoints live in a JSON file (written atomically), one per consumer.

Polling an idle stream costs one GetRecords per shard: a reader that reached the shard's
tip keeps the iterator that continues right after the last record it read (never the one an
empty read returns: kinesalite places that one by its clock, past records still being
stored) and the next poll reads with it again when it starts where the last one ended (as
Lambda's event-source mapping keeps its iterator between polls), and :class:`StreamShards`
keeps the stream's ARN and shard list for :data:`SHARD_LIST_REFRESH_S` instead of asking
for them on every poll.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["SHARD_LIST_REFRESH_S", "Checkpoints", "ShardReader", "StreamShards", "shard_ids", "stream_arn"]

#: How long a consumer keeps the stream's shard list before listing it again (the local
#: stream's shards are fixed by the template; a new one is read within this time).
SHARD_LIST_REFRESH_S: Final = 60.0

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
    #: after reaching the tip: (the position read through, the iterator continuing right after it;
    #: reused until it expires, then one is asked for afresh)
    _tail: tuple[str | None, str] | None = field(default=None, repr=False)

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
        """Yield non-empty pages of records after ``after`` (default: the checkpoint).

        Continues with the iterator the last call ended with at the shard's tip when it
        starts where that call ended; otherwise (a checkpoint moved back, pages left
        unread, an expired iterator) asks for a new one at the start.
        """
        from botocore.exceptions import ClientError

        self.reset_reason = None
        start = after if after is not None else self.checkpoints.get(self.shard_id)
        kept, self._tail = self._tail, None
        reusing = kept is not None and kept[0] == start
        it: str | None = kept[1] if kept is not None and reusing else self._iterator(start)
        read_through = start if self.reset_reason is None else None
        # the iterator that continues right after ``read_through``: what is kept at the tip. Not
        # the one an empty read returns: kinesalite's is placed by the clock (now), past a record
        # whose sequence number is older but which was not yet stored when the read ran (it was
        # lost that way: one aggregate of 81 user records in a demo)
        resume = it
        while it:
            try:
                resp = self.client.get_records(ShardIterator=it, Limit=self.limit)
            except ClientError as exc:
                if not (reusing and exc.response.get("Error", {}).get("Code") == "ExpiredIteratorException"):
                    raise
                reusing, it = False, self._iterator(start)  # the kept iterator expired: one from the start
                read_through = start if self.reset_reason is None else None
                resume = it
                continue
            reusing = False
            records = resp["Records"]
            if records:
                read_through = records[-1]["SequenceNumber"]
                resume = resp.get("NextShardIterator")
                yield records
            if not records and resp.get("MillisBehindLatest", 0) == 0:
                if resume and resp.get("NextShardIterator"):  # an open shard: poll again from after the last record
                    self._tail = (read_through, resume)
                return
            it = resp.get("NextShardIterator")


@dataclass
class StreamShards:
    """A consumer's view of its stream: the ARN and the shard list, listed again every
    ``refresh_s`` (Lambda's mapping, too, discovers new shards periodically), and one
    :class:`ShardReader` per shard kept across polls (so each keeps its iterator at the tip)."""

    client: Any
    stream: str
    checkpoints: Checkpoints
    refresh_s: float = SHARD_LIST_REFRESH_S
    clock: Callable[[], float] = time.monotonic
    _arn: str | None = field(default=None, repr=False)
    _readers: dict[str, ShardReader] = field(default_factory=dict, repr=False)
    _listed_at: float = field(default=float("-inf"), repr=False)

    def arn(self) -> str:
        if self._arn is None:
            self._arn = stream_arn(self.client, self.stream)
        return self._arn

    def readers(self) -> list[ShardReader]:
        """One reader per shard of the stream, in shard order."""
        if self.clock() - self._listed_at >= self.refresh_s:
            ids = shard_ids(self.client, self.stream)
            self._readers = {
                s: self._readers.get(s) or ShardReader(self.client, self.stream, s, self.checkpoints) for s in ids
            }
            self._listed_at = self.clock()
        return list(self._readers.values())

    def forget(self) -> None:
        """Drop what is kept (after an error: the stream may have been recreated); the next poll lists afresh."""
        self._arn, self._readers, self._listed_at = None, {}, float("-inf")
