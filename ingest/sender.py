"""Drains the spool to Kinesis, oldest record first, deleting only what Kinesis accepted.

Each :meth:`SpoolSender.step` frames pending notifications and reads the oldest outbox
records (up to what one PutRecords call can carry). It packs the records of all devices
bound for one shard into KPL-aggregated Kinesis records of at most one PUT payload unit
(:mod:`ingest.aggregation`; the shard map is read with ListShards every minute), holding
back a shard whose aggregate is not full for at most ``linger_ms`` (a record waits at
most about ``linger_ms`` plus one poll interval), but not a record that completes an
epoch (:func:`ingest.aggregation.epoch_of`). It sends them through
:class:`ingest.producer.KinesisProducer` (which resends only the rejected entries, with
exponential backoff and full jitter) and acknowledges the user records of every
aggregate Kinesis accepted. When the endpoint is unreachable or the call fails, nothing
is deleted: the sender backs off (exponentially, with full jitter, capped) and the
backlog drains in order once the endpoint returns, while the collector keeps spooling.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from ingest.aggregation import DEFAULT_LINGER_MS, PUT_UNIT_BYTES, Packed, ShardMap, epoch_of, pack, put_units
from ingest.producer import MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL, KinesisProducer
from ingest.spool import OutboxEntry, Spool

__all__ = ["SenderStats", "SpoolSender"]

log = logging.getLogger(__name__)

#: User records read from the outbox per step: what 500 full aggregates could carry, within 5 MiB.
_READ_RECORDS = 20_000
_READ_BYTES = MAX_BYTES_PER_CALL * 9 // 10


@dataclass
class SenderStats:
    #: user records accepted
    sent: int = 0
    #: Kinesis records accepted (aggregates and plain records) and the PUT payload units they cost
    kinesis_records: int = 0
    put_units: int = 0
    calls: int = 0
    failures: int = 0
    consecutive_failures: int = 0


@dataclass
class SpoolSender:
    """Moves records from ``spool`` to the stream behind ``producer``."""

    spool: Spool
    producer: KinesisProducer
    base_backoff_s: float = 0.2
    max_backoff_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=lambda: random.Random(1))  # noqa: S311 - jitter, not crypto
    stats: SenderStats = field(default_factory=SenderStats)
    #: the collector's clock (ms since the epoch); with it, bed frames whose device has gone
    #: silent are closed and sent (:meth:`ingest.spool.Spool.frame`), else they wait
    clock: Callable[[], int] | None = None
    #: how long a device's records may wait for its aggregate to fill (ms); 0 sends at once
    linger_ms: int = DEFAULT_LINGER_MS
    #: the largest aggregate (data + partition key), bytes
    max_record_bytes: int = PUT_UNIT_BYTES
    monotonic: Callable[[], float] = time.monotonic
    #: how often the stream's shard map is read again (s); the packing follows resharding
    shard_map_ttl_s: float = 60.0
    _first_seen: dict[int, float] = field(default_factory=dict)
    _epoch: dict[int, int | None] = field(default_factory=dict)
    _shards: ShardMap | None = None
    _shards_read_at: float = float("-inf")

    def step(self, *, flush: bool = False) -> int:
        """Frame, send one batch and acknowledge it; returns user records accepted (0: nothing due).

        With ``flush`` nothing lingers: every pending record is sent now. Raises nothing for
        a failed call: it is counted, logged, and the caller should wait :meth:`backoff_s`
        before the next step.
        """
        self.spool.frame(now_ms=self.clock() if self.clock is not None else None)
        aggregating = self.max_record_bytes > 0  # else every record goes plain: one call's worth at most
        shard_of = self._shard_of() if aggregating else None
        read = _READ_RECORDS if aggregating else MAX_RECORDS_PER_CALL
        batch = self._due(self.spool.pending(read, _READ_BYTES), flush, shard_of)
        if not batch:
            return 0
        packed = self._within_one_call(pack(batch, self.max_record_bytes, shard_of))
        entries = [{"Data": p.data, "PartitionKey": p.partition_key} for p in packed]
        self.stats.calls += 1
        try:
            accepted = self.producer.put_batch(entries)
        except (BotoCoreError, ClientError) as exc:
            self.stats.failures += 1
            self.stats.consecutive_failures += 1
            log.warning("PutRecords to %s failed (%s); %d records stay spooled", self.producer.stream, exc, len(batch))
            return 0
        ok = [p for p, good in zip(packed, accepted, strict=True) if good]
        ids = [i for p in ok for i in p.ids]
        self.spool.ack(ids)
        for i in ids:
            self._first_seen.pop(i, None)
            self._epoch.pop(i, None)
        self.stats.sent += len(ids)
        self.stats.kinesis_records += len(ok)
        self.stats.put_units += sum(put_units(len(p.data) + len(p.partition_key.encode())) for p in ok)
        if len(ok) < len(packed):
            self.stats.failures += 1
            self.stats.consecutive_failures += 1
        else:
            self.stats.consecutive_failures = 0
        return len(ids)

    def _shard_of(self) -> Callable[[str], str] | None:
        """The stream's key -> shard function, read every ``shard_map_ttl_s``; None (pack per device) if unreadable."""
        now = self.monotonic()
        if now - self._shards_read_at >= self.shard_map_ttl_s:
            self._shards_read_at = now
            try:
                self._shards = ShardMap.of_stream(self.producer.client, self.producer.stream)
            except (BotoCoreError, ClientError, KeyError) as exc:
                log.warning("cannot read the shards of %s (%s); packing each device alone", self.producer.stream, exc)
                self._shards = None
        return self._shards.shard_of if self._shards and self._shards.shard_ids else None

    def _due(self, pending: list[OutboxEntry], flush: bool, shard_of: Callable[[str], str] | None) -> list[OutboxEntry]:
        """The pending records of shards whose aggregate is full or whose oldest record has lingered enough."""
        now = self.monotonic()
        for e in pending:
            self._first_seen.setdefault(e.id, now)
        if flush or self.linger_ms <= 0:
            return pending

        def group(e: OutboxEntry) -> str:
            return shard_of(e.partition_key) if shard_of else e.partition_key

        oldest: dict[str, float] = {}
        size: dict[str, int] = {}
        epochs: dict[str, set[int | None]] = {}
        for e in pending:
            g = group(e)
            oldest.setdefault(g, self._first_seen[e.id])
            size[g] = size.get(g, 0) + len(e.data)
            if e.id not in self._epoch:
                self._epoch[e.id] = epoch_of(e.data)
            epochs.setdefault(g, set()).add(self._epoch[e.id])
        ready = {
            g
            for g, t in oldest.items()
            if size[g] >= self.max_record_bytes
            or (now - t) * 1000 >= self.linger_ms
            or None in epochs[g]  # a bed frame: its epochs are complete
            or len(epochs[g]) > 1  # a strap record of a later epoch closes the open one
        }
        return [e for e in pending if group(e) in ready]

    @staticmethod
    def _within_one_call(packed: list[Packed]) -> list[Packed]:
        """The first records that fit one PutRecords call; the rest (all later in their device's order) wait."""
        out: list[Packed] = []
        size = 0
        for p in packed:
            n = len(p.data) + len(p.partition_key.encode())
            if len(out) == MAX_RECORDS_PER_CALL or (out and size + n > MAX_BYTES_PER_CALL):
                break
            out.append(p)
            size += n
        return out

    def backoff_s(self) -> float:
        """How long to wait after the current run of failures (full jitter)."""
        if self.stats.consecutive_failures == 0:
            return 0.0
        cap = min(self.max_backoff_s, self.base_backoff_s * 2 ** min(self.stats.consecutive_failures - 1, 20))
        return self.rng.uniform(0, cap)

    def drain(self, *, stop: Callable[[], bool] = lambda: False, idle_s: float = 0.0) -> int:
        """Send until the spool is empty (or ``stop()``); returns records accepted.

        With ``idle_s`` > 0 it keeps polling an empty spool every ``idle_s`` seconds until
        ``stop()`` (the collector's background sender), letting records linger to fill
        aggregates; with 0 it sends everything at once and returns once empty.
        """
        total = 0
        while not stop():
            n = self.step(flush=idle_s <= 0)
            total += n
            if self.stats.consecutive_failures:
                self.sleep(self.backoff_s())
            elif n == 0:
                if idle_s <= 0 and self._empty():
                    break
                self.sleep(idle_s)
        return total

    def _empty(self) -> bool:
        b = self.spool.backlog()
        return b["notifications"] == 0 and b["outbox"] == 0
