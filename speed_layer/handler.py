"""The speed-layer Lambda handler (Kinesis event source, ReportBatchItemFailures).

Thin: powertools' ``BatchProcessor`` runs :func:`speed_layer.processing.documents_for` on
each record. A record that breaks the contract is quarantined to the dead-letter sink
with its reason and counted — it is not reported as a failure, so it never blocks the
shard. Any other error fails that record, and Lambda retries from the lowest failed
sequence number. The documents of the successful records are bulk-indexed at the end;
if the store refuses them the invocation raises and the whole batch is retried (document
ids are deterministic, so the retry overwrites).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from core.errors import ContractError
from speed_layer.dead_letters import DeadLetterSink, dead_letter
from speed_layer.processing import Doc, documents_for
from speed_layer.store import LiveStore

__all__ = ["HandlerStats", "SpeedLayerHandler", "lambda_handler"]

log = logging.getLogger(__name__)


@dataclass
class HandlerStats:
    records: int = 0
    documents: int = 0
    quarantined: int = 0
    #: valid records that yielded no document (bed frames covering no complete epoch)
    without_documents: set[str] = field(default_factory=set)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class SpeedLayerHandler:
    """Callable Lambda handler bound to its live store and dead-letter sink."""

    store: LiveStore
    dead_letters: DeadLetterSink
    stats: HandlerStats = field(default_factory=HandlerStats)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        docs: list[Doc] = []
        processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
        response = process_partial_response(
            event=event, record_handler=self._record_handler(docs), processor=processor, context=context
        )
        if docs:
            self.store.index(docs)
        self.stats.documents += len(docs)
        return dict(response)

    def _record_handler(self, docs: list[Doc]) -> Callable[[KinesisStreamRecord], None]:
        def handle(record: KinesisStreamRecord) -> None:
            data = record.kinesis.data_as_bytes()
            self.stats.records += 1
            try:
                record_id, new = documents_for(data)
            except ContractError as exc:
                self._quarantine(record, data, exc)
                return
            if not new:
                self.stats.without_documents.add(record_id)
            docs.extend(new)

        return handle

    def _quarantine(self, record: KinesisStreamRecord, data: bytes, exc: ContractError) -> None:
        self.stats.quarantined += 1
        self.stats.quarantine_reasons[exc.field] = self.stats.quarantine_reasons.get(exc.field, 0) + 1
        shard = record.event_id.split(":", 1)[0]
        seq = record.kinesis.sequence_number
        log.warning("quarantined %s/%s: %s (payload %s)", shard, seq, exc, data[:64].hex())
        self.dead_letters.put(
            f"contract/{shard}/{seq}",
            dead_letter(
                data,
                reason=str(exc),
                field=exc.field,
                source={
                    "eventSourceARN": record.event_source_arn,
                    "shard": shard,
                    "sequenceNumber": seq,
                    "partitionKey": record.kinesis.partition_key,
                },
            ),
        )


_handler: SpeedLayerHandler | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS entry point: wires the handler from the environment on the first invocation."""
    global _handler  # noqa: PLW0603 - one wiring per Lambda execution environment
    if _handler is None:
        from sleepstack.settings import Settings
        from sleepstack.wiring import speed_layer_handler

        _handler = speed_layer_handler(Settings.from_env())
    return _handler(event, context)
