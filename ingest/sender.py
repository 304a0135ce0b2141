"""Drains the spool to Kinesis, oldest record first, deleting only what Kinesis accepted.

Each :meth:`SpoolSender.step` frames pending notifications, reads one PutRecords batch
(at most 500 records, 5 MiB) from the outbox, sends it through
:class:`ingest.producer.KinesisProducer` (which resends only the rejected entries, with
exponential backoff and full jitter) and acknowledges the accepted ones. When the
endpoint is unreachable or the call fails, nothing is deleted: the sender backs off
(exponentially, with full jitter, capped) and the backlog drains in order once the
endpoint returns, while the collector keeps spooling.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from ingest.producer import MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL, KinesisProducer
from ingest.spool import Spool

__all__ = ["SenderStats", "SpoolSender"]

log = logging.getLogger(__name__)


@dataclass
class SenderStats:
    sent: int = 0
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

    def step(self) -> int:
        """Frame, send one batch and acknowledge it; returns records accepted (0: nothing due).

        Raises nothing for a failed call: it is counted, logged, and the caller should wait
        :meth:`backoff_s` before the next step.
        """
        self.spool.frame(now_ms=self.clock() if self.clock is not None else None)
        batch = self.spool.pending(MAX_RECORDS_PER_CALL, MAX_BYTES_PER_CALL)
        if not batch:
            return 0
        entries = [{"Data": e.data, "PartitionKey": e.partition_key} for e in batch]
        self.stats.calls += 1
        try:
            accepted = self.producer.put_batch(entries)
        except (BotoCoreError, ClientError) as exc:
            self.stats.failures += 1
            self.stats.consecutive_failures += 1
            log.warning("PutRecords to %s failed (%s); %d records stay spooled", self.producer.stream, exc, len(batch))
            return 0
        ids = [e.id for e, ok in zip(batch, accepted, strict=True) if ok]
        self.spool.ack(ids)
        self.stats.sent += len(ids)
        if len(ids) < len(batch):
            self.stats.failures += 1
            self.stats.consecutive_failures += 1
        else:
            self.stats.consecutive_failures = 0
        return len(ids)

    def backoff_s(self) -> float:
        """How long to wait after the current run of failures (full jitter)."""
        if self.stats.consecutive_failures == 0:
            return 0.0
        cap = min(self.max_backoff_s, self.base_backoff_s * 2 ** min(self.stats.consecutive_failures - 1, 20))
        return self.rng.uniform(0, cap)

    def drain(self, *, stop: Callable[[], bool] = lambda: False, idle_s: float = 0.0) -> int:
        """Send until the spool is empty (or ``stop()``); returns records accepted.

        With ``idle_s`` > 0 it keeps polling an empty spool every ``idle_s`` seconds until
        ``stop()`` (the collector's background sender); with 0 it returns once empty.
        """
        total = 0
        while not stop():
            n = self.step()
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
