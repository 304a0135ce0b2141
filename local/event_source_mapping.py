"""Local stand-in for Lambda's Kinesis event source mapping.

It invokes the same handler with the same event shape and reproduces the mapping's
semantics (AWS Lambda Developer Guide, "Using Lambda with Kinesis Data Streams"):

* per shard, in order; batches of at most ``batch_size`` records, flushed when full,
  when the batching window has passed, or when the shard is caught up;
* ``ReportBatchItemFailures``: the checkpoint moves to just before the lowest failed
  sequence number and the batch is retried from there;
* a function error retries the batch, split in halves when ``bisect_on_error``;
* after ``max_retries`` retries, or for records older than ``max_record_age_s``, the
  batch's metadata goes to the on-failure destination and the shard moves on.

The checkpoint of a shard only advances past records whose invocation succeeded.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dead_letters import DeadLetterSink
from local.kinesis import LOCAL_REGION
from local.shard_reader import Checkpoints, StreamShards

__all__ = ["EventSourceMapping", "LambdaContext", "MappingStats", "kinesis_event"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], dict[str, Any] | None]


@dataclass(frozen=True)
class LambdaContext:
    """The parts of Lambda's context object handlers use."""

    function_name: str = "sleepstack-speed-layer"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:sleepstack-speed-layer"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def kinesis_event(records: list[dict[str, Any]], *, shard_id: str, arn: str, region: str) -> dict[str, Any]:
    """The Lambda event for a batch of GetRecords records, as the event source sends it."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/sleepstack-speed-layer",
                "awsRegion": region,
                "eventSourceARN": arn,
            }
            for r in records
        ]
    }


@dataclass
class MappingStats:
    invocations: int = 0
    records_delivered: int = 0
    retries: int = 0
    bisections: int = 0
    sent_to_on_failure: int = 0
    checkpoint_resets: int = 0  # shards whose checkpoint the stream no longer held (read from the oldest)
    #: arrival time (ms) of the newest record delivered: now minus it is Lambda's IteratorAge
    last_arrival_ms: int = 0
    #: records read from the stream and not yet delivered, in the drain under way
    in_hand: int = 0


@dataclass
class EventSourceMapping:
    client: Any
    stream: str
    handler: Handler
    checkpoints: Checkpoints
    on_failure: DeadLetterSink
    batch_size: int = 100
    batching_window_s: float = 0.0
    bisect_on_error: bool = True
    max_retries: int = 3
    max_record_age_s: float = -1  # -1: infinite, as on AWS
    region: str = LOCAL_REGION
    clock: Callable[[], float] = time.time
    stats: MappingStats = field(default_factory=MappingStats)
    #: errors that stall the shard instead of counting as function errors: the checkpoint stays,
    #: nothing goes to the on-failure destination, and the caller retries later (a full disk
    #: under the local store must not turn into skipped records)
    stall_on: tuple[type[BaseException], ...] = ()
    _shards: StreamShards | None = field(default=None, repr=False)

    def drain(self, stop: Callable[[], bool] | None = None) -> MappingStats:
        """Deliver every record now in the stream, shard by shard, then return.

        ``stop`` is asked between pages: when it says so, the records read but not yet
        delivered are left for the next run (their checkpoint was not moved).
        """
        if self._shards is None:
            self._shards = StreamShards(self.client, self.stream, self.checkpoints)
        try:
            return self._drain(self._shards, stop)
        except BaseException:
            self._shards.forget()  # read afresh from the checkpoints next time
            raise

    def _drain(self, shards: StreamShards, stop: Callable[[], bool] | None) -> MappingStats:
        arn = shards.arn()
        for reader in shards.readers():
            shard = reader.shard_id
            buffer: list[dict[str, Any]] = []
            opened = self.clock()
            for page in reader.pages():
                self.stats.in_hand = len(buffer)
                if stop is not None and stop():
                    return self.stats
                buffer.extend(page)
                while len(buffer) >= self.batch_size or (
                    buffer and self.batching_window_s and self.clock() - opened >= self.batching_window_s
                ):
                    self._deliver(shard, arn, buffer[: self.batch_size], attempt=0)
                    buffer = buffer[self.batch_size :]
                    opened = self.clock()
            while buffer:  # caught up: flush what is left
                self._deliver(shard, arn, buffer[: self.batch_size], attempt=0)
                buffer = buffer[self.batch_size :]
            self.stats.in_hand = 0
            if reader.reset_reason:
                self.stats.checkpoint_resets += 1
        return self.stats

    def _deliver(self, shard: str, arn: str, batch: list[dict[str, Any]], attempt: int) -> None:
        if self.max_record_age_s >= 0:
            now = self.clock()
            expired = [r for r in batch if now - r["ApproximateArrivalTimestamp"].timestamp() > self.max_record_age_s]
            if expired:
                self._to_on_failure(shard, arn, expired, "RecordAgeExceeded")
                batch = [r for r in batch if r not in expired]
                if not batch:
                    return
        self.stats.invocations += 1
        try:
            resp = self.handler(kinesis_event(batch, shard_id=shard, arn=arn, region=self.region), LambdaContext())
        except self.stall_on:
            raise
        except Exception as exc:  # noqa: BLE001 - a function error, as Lambda sees it
            log.warning("function error on %s (%d records): %s", shard, len(batch), type(exc).__name__)
            self._retry(shard, arn, batch, attempt, bisect=True, reason=f"FunctionError: {exc}")
            return
        failures = (resp or {}).get("batchItemFailures") or []
        if not failures:
            self._commit(shard, batch)
            return
        lowest = min(int(f["itemIdentifier"]) for f in failures)
        done = [r for r in batch if int(r["SequenceNumber"]) < lowest]
        if done:
            self._commit(shard, done)
        rest = [r for r in batch if int(r["SequenceNumber"]) >= lowest]
        self._retry(shard, arn, rest, attempt, bisect=False, reason="ReportedBatchItemFailures")

    def _retry(
        self, shard: str, arn: str, batch: list[dict[str, Any]], attempt: int, *, bisect: bool, reason: str
    ) -> None:
        if attempt >= self.max_retries:
            self._to_on_failure(shard, arn, batch, reason)
            self._commit(shard, batch)
            return
        self.stats.retries += 1
        if bisect and self.bisect_on_error and len(batch) > 1:
            self.stats.bisections += 1
            mid = len(batch) // 2
            self._deliver(shard, arn, batch[:mid], attempt + 1)
            self._deliver(shard, arn, batch[mid:], attempt + 1)
        else:
            self._deliver(shard, arn, batch, attempt + 1)

    def _commit(self, shard: str, records: list[dict[str, Any]]) -> None:
        self.stats.records_delivered += len(records)
        newest = max(r["ApproximateArrivalTimestamp"].timestamp() for r in records)
        self.stats.last_arrival_ms = max(self.stats.last_arrival_ms, int(1000 * newest))
        self.checkpoints.commit(shard, max((r["SequenceNumber"] for r in records), key=int))

    def _to_on_failure(self, shard: str, arn: str, records: list[dict[str, Any]], reason: str) -> None:
        """Lambda's on-failure record: metadata of the batch, not its payloads."""
        self.stats.sent_to_on_failure += len(records)
        first, last = records[0]["SequenceNumber"], records[-1]["SequenceNumber"]
        self.on_failure.put(
            f"on-failure/{shard}/{first}",
            {
                "requestContext": {"condition": reason, "functionArn": LambdaContext().invoked_function_arn},
                "KinesisBatchInfo": {
                    "shardId": shard,
                    "startSequenceNumber": first,
                    "endSequenceNumber": last,
                    "batchSize": len(records),
                    "streamArn": arn,
                },
            },
        )
