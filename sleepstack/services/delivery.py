"""The delivery service: the local Firehose, from the stream to the raw lake."""

from __future__ import annotations

import time
from typing import Any

from sleepstack import wiring
from sleepstack.services.base import Service
from sleepstack.services.loop import IdlePoll, run_loop

__all__ = ["DeliveryService"]


class DeliveryService(Service):
    """Buffers by size and interval (the template's hints), writes and compacts the raw lake;
    flushes at once when a :class:`local.control.FlushRequest` asks (``stack wait``) and on stop.

    Figures: ``caught_up_ms``, ``flushed_ms`` (everything before it is in the lake),
    ``buffered_records`` and the delivery's counts.
    """

    name = "delivery"

    def run(self) -> None:
        from local.firehose import FirehoseDelivery
        from local.shard_reader import Checkpoints
        from local.template import delivery_buffering, load_template

        settings = self.settings
        size, interval = delivery_buffering(load_template(settings.template))
        self.delivery = FirehoseDelivery(
            wiring.kinesis_client(settings),
            wiring.stream_name(settings),
            settings.lake,
            Checkpoints(self.home.checkpoints("delivery")),
            wiring.dead_letters(settings, settings.lake),
            buffer_bytes=size,
            buffer_interval_s=interval,
        )
        try:
            stats = self.delivery.stats
            # fast while records arrive, backing off to settings.idle_poll_s on an empty stream
            poll = IdlePoll(lambda: stats.records + stats.errors, idle_s=settings.idle_poll_s)
            run_loop(self.step, self.name, self.control, self.stop, poll=poll)
        finally:
            self.delivery.poll(flush=True)  # graceful stop: nothing stays buffered
            self.control.beat(self.name, "stopped", buffered_records=0)

    def step(self) -> dict[str, Any]:
        t0 = time.time()
        request = self.control.flush_request()
        flush = request is not None and 0 < request.requested_ms <= t0 * 1000
        self.delivery.poll(flush=flush, stop=self.stop)
        s = self.delivery.stats
        return {
            "caught_up_ms": int(t0 * 1000),
            "flushed_ms": int(t0 * 1000) if flush or not self.delivery.buffered_records else 0,
            "buffered_records": self.delivery.buffered_records,
            "records": s.records,
            "errors": s.errors,
            "objects": s.objects,
            "bytes": s.bytes,
            "compacted": s.compacted,
            "conflicts": s.conflicts,
            "checkpoint_resets": s.checkpoint_resets,
        }
