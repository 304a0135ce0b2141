"""The speed-layer service: the real Lambda handler on every shard, through the event-source mapping."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sleepstack import wiring
from sleepstack.services.base import Service
from sleepstack.services.loop import IdlePoll, run_loop

__all__ = ["SpeedLayerService"]


class SpeedLayerService(Service):
    """Continuously drains the stream into the handler with the template's mapping settings,
    checkpointed; the ledger (:class:`local.ledger.Ledger`) keeps the ids it applied.

    Figures: ``caught_up_ms`` (every record put before it has been applied),
    ``iterator_age_ms`` (Lambda's IteratorAge), ``behind_records`` and the handler's counts.
    """

    name = "speed_layer"

    def run(self) -> None:
        from local.event_source_mapping import EventSourceMapping
        from local.ledger import Ledger
        from local.shard_reader import Checkpoints
        from local.template import event_source_settings, load_template
        from speed_layer.state_store import StateStoreError
        from speed_layer.store import StoreError

        settings = self.settings
        esm = event_source_settings(load_template(settings.template), Environment=settings.environment)
        letters = wiring.dead_letters(settings, self.home.dead_letters / "speed-layer")
        self.handler = handler = wiring.speed_layer_handler(settings, letters=letters)
        ledger = Ledger(self.home.ledger_db)

        def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
            resp = handler(event, context)
            ledger.add(handler.stats.last_applied)  # before the mapping moves the checkpoint past them
            return resp

        self.mapping = EventSourceMapping(
            wiring.kinesis_client(settings),
            wiring.stream_name(settings),
            invoke,
            Checkpoints(self.home.checkpoints("speed-layer")),
            letters,
            batch_size=int(esm["BatchSize"]),
            batching_window_s=float(esm.get("MaximumBatchingWindowInSeconds") or 0),
            bisect_on_error=bool(esm["BisectBatchOnFunctionError"]),
            max_retries=int(esm["MaximumRetryAttempts"]),
            max_record_age_s=float(esm.get("MaximumRecordAgeInSeconds", -1)),
            stall_on=(StoreError, StateStoreError, OSError, sqlite3.Error),
        )
        self.caught_up_ms = 0
        self.last_beat_s = 0.0
        # fast while Kinesis records arrive, backing off to settings.idle_poll_s on an empty stream
        poll = IdlePoll(lambda: handler.stats.kinesis_records, idle_s=settings.idle_poll_s)
        run_loop(self.step, self.name, self.control, self.stop, poll=poll)

    def figures(self) -> dict[str, Any]:
        now_ms = int(time.time() * 1000)
        stats, mapping = self.handler.stats, self.mapping.stats
        arrival = mapping.last_arrival_ms
        return {
            "caught_up_ms": self.caught_up_ms,
            # Lambda's IteratorAge: the age of the newest record delivered, while there is more
            "iterator_age_ms": max(0, now_ms - arrival) if arrival and mapping.in_hand else 0,
            "behind_records": mapping.in_hand,
            "records": stats.records,
            "kinesis_records": stats.kinesis_records,
            "documents": stats.documents,
            "quarantined": stats.quarantined,
            "rejected": stats.rejected,
            "alerts": stats.alerts,
            "state_writes": stats.state_writes,
            "takeovers": stats.takeovers,
            "replayed": stats.replayed,
            "sent_to_on_failure": mapping.sent_to_on_failure,
            "checkpoint_resets": mapping.checkpoint_resets,
        }

    def _stop_or_beat(self) -> bool:
        """Asked between pages: a long catch-up still reports its progress."""
        if time.time() - self.last_beat_s >= 1.0:
            self.last_beat_s = time.time()
            self.control.beat(self.name, "running", **self.figures())
        return self.stop()

    def step(self) -> dict[str, Any]:
        t0 = time.time()
        self.mapping.drain(stop=self._stop_or_beat)
        if not self.stop():
            self.caught_up_ms = int(t0 * 1000)  # every record put before t0 has been read and applied
        return self.figures()
