"""Kinesis producer: PutRecords batches, retrying only the entries that failed.

A call carries at most 500 records and 5 MiB; each record (data + partition key) is
under 1 MiB. The partition key is the device id, so a device's records stay in order on
one shard. Entries a partial failure rejects (``ProvisionedThroughputExceededException``,
``InternalFailure``) are resent, alone, with exponential backoff and full jitter
("Exponential Backoff And Jitter", AWS Architecture Blog, 2015).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from core.contract import MAX_RECORD_BYTES, Record, to_wire
from core.errors import SleepstackError
from ingest.aggregation import PUT_UNIT_BYTES, ShardMap, pack_records

__all__ = ["MAX_BYTES_PER_CALL", "MAX_RECORDS_PER_CALL", "KinesisProducer", "ProducerError", "ProducerStats", "batches"]

log = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL: Final = 500
MAX_BYTES_PER_CALL: Final = 5 * 1024 * 1024


class ProducerError(SleepstackError):
    """Records could not be delivered after every retry."""


@dataclass
class ProducerStats:
    records: int = 0
    bytes: int = 0
    calls: int = 0
    retried_entries: int = 0


@dataclass
class KinesisProducer:
    """Send records to ``stream`` through an injected boto3 Kinesis ``client``."""

    client: Any
    stream: str
    max_attempts: int = 8
    base_delay_s: float = 0.05
    max_delay_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311 - jitter, not crypto
    stats: ProducerStats = field(default_factory=ProducerStats)

    def put(self, records: Iterable[Record], *, max_record_bytes: int = PUT_UNIT_BYTES) -> int:
        """Encode records, pack each shard's into aggregates (:mod:`ingest.aggregation`) and send them.

        Returns user records sent. ``max_record_bytes`` of 0 sends every record plain (one
        Kinesis record each).
        """
        records = list(records)
        if max_record_bytes <= 0:
            return self.put_encoded((r.device_id, to_wire(r)) for r in records)
        shards = ShardMap.of_stream(self.client, self.stream)
        self.put_encoded((p.partition_key, p.data) for p in pack_records(records, max_record_bytes, shards.shard_of))
        return len(records)

    def put_encoded(self, entries: Iterable[tuple[str, bytes]]) -> int:
        """Send (partition key, data) pairs; returns how many the stream accepted.

        Raises :class:`ProducerError` if a batch still has rejected entries after
        ``max_attempts`` calls.
        """
        sent = 0
        for batch in batches(entries):
            accepted = self.put_batch(batch)
            if not all(accepted):
                raise ProducerError(
                    f"{accepted.count(False)} records not accepted by {self.stream} after {self.max_attempts} attempts"
                )
            sent += len(batch)
        return sent

    def put_batch(self, batch: list[dict[str, Any]]) -> list[bool]:
        """One PutRecords batch (``{"Data", "PartitionKey"}`` entries, within the call limits).

        Entries a partial failure rejects are resent, alone, with backoff and jitter, up to
        ``max_attempts`` calls. Returns, per entry, whether the stream accepted it; errors
        of the call itself (endpoint unreachable, stream missing) propagate.
        """
        accepted = [False] * len(batch)
        pending = list(range(len(batch)))
        for attempt in range(self.max_attempts):
            self.stats.calls += 1
            resp = self.client.put_records(StreamName=self.stream, Records=[batch[i] for i in pending])
            failed = [i for i, r in zip(pending, resp["Records"], strict=True) if "ErrorCode" in r]
            for i, r in zip(pending, resp["Records"], strict=True):
                if "ErrorCode" not in r:
                    accepted[i] = True
                    self.stats.records += 1
                    self.stats.bytes += len(batch[i]["Data"]) + len(batch[i]["PartitionKey"])
            if not failed:
                break
            codes = {r["ErrorCode"] for r in resp["Records"] if "ErrorCode" in r}
            log.warning(
                "PutRecords: %d of %d entries failed (%s), retrying them",
                len(failed),
                len(pending),
                ", ".join(sorted(codes)),
            )
            self.stats.retried_entries += len(failed)
            pending = failed
            if attempt + 1 < self.max_attempts:
                self.sleep(self.rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt)))
        return accepted


def batches(entries: Iterable[tuple[str, bytes]]) -> Iterator[list[dict[str, Any]]]:
    """Group (partition key, data) pairs into PutRecords batches within the call limits."""
    batch: list[dict[str, Any]] = []
    size = 0
    for key, data in entries:
        n = len(data) + len(key.encode())
        if n > MAX_RECORD_BYTES:
            raise ProducerError(f"record of {n} bytes for {key} exceeds the 1 MiB Kinesis limit")
        if batch and (len(batch) == MAX_RECORDS_PER_CALL or size + n > MAX_BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append({"Data": data, "PartitionKey": key})
        size += n
    if batch:
        yield batch
