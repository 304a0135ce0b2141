"""The speed-layer Lambda handler (Kinesis event source, ReportBatchItemFailures).

Thin: powertools' ``BatchProcessor`` hands over each Kinesis record; a KPL aggregate is
unpacked into its user records (:mod:`core.contract.kpl`; Lambda does not de-aggregate) and each
user record is decoded (:func:`processing.decode`). A user record that breaks the
contract is quarantined to the dead-letter sink with its reason and counted, alone: its
neighbours in the aggregate are applied. An aggregate that cannot be unpacked (bad
checksum, truncated, malformed) is quarantined whole. Neither is reported as a failure,
so bad input never blocks the shard. Any other error fails that Kinesis record; Lambda
then retries from the lowest failed sequence number, so no record at or after it is
applied now (it will come again).

The valid records then advance their devices' state (:mod:`core.live.epochs`): the
documents are bulk-indexed first and the new states written after, so an invocation that
dies half way is retried from the old state and rewrites the same documents (their ids
are deterministic). Only the states that changed are written (a redelivered batch, all
behind its devices' watermarks, writes none; ADR 0007). If the store refuses documents
the invocation raises and the batch is retried (bisected by the event source mapping).

With an :class:`~speed_layer.epoch_writes.EpochWriter` the states come from the
container's cache under the shard's lease, and a device's state is written only when
something durable changes (its epoch closes, a run opens or closes; ADR 0007); without
one, every changed state is read and written each invocation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from core.contract import Record
from core.contract.kpl import AggregateError, is_aggregated, unpack
from core.errors import ContractError
from core.live.alerts import AlertRules
from dead_letters import DeadLetterSink, dead_letter
from speed_layer.epoch_writes import EpochWriter
from speed_layer.processing import Applied, apply_records, decode
from speed_layer.state_store import StateStore
from speed_layer.store import LiveStore, Rejected

__all__ = ["HandlerStats", "SpeedLayerHandler"]

log = logging.getLogger(__name__)


@dataclass
class HandlerStats:
    #: user records (the records of aggregates, and plain records)
    records: int = 0
    #: Kinesis records, of which aggregates
    kinesis_records: int = 0
    aggregates: int = 0
    documents: int = 0
    quarantined: int = 0
    bytes: int = 0
    #: valid records behind their device's watermark (redeliveries), counted, not applied
    behind: int = 0
    alerts: int = 0
    #: documents the store refused for good (dead-lettered)
    rejected: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    #: record ids the last invocation applied (what a ledger of processed records records)
    last_applied: list[str] = field(default_factory=list)
    #: device states written, and left unwritten because they did not change
    state_writes: int = 0
    state_unchanged: int = 0
    #: epoch writes (ADR 7): shards taken over from another container (or at a start), and
    #: the records those takeovers read again from the stream
    takeovers: int = 0
    replayed: int = 0


@dataclass
class SpeedLayerHandler:
    """Callable Lambda handler bound to its live store, state store and dead-letter sink."""

    store: LiveStore
    states: StateStore
    dead_letters: DeadLetterSink
    rules: AlertRules = field(default_factory=AlertRules)
    #: a subject's rules (the registry's overrides of ``rules``); None: ``rules`` for everyone
    rules_for: Callable[[str], AlertRules] | None = None
    stats: HandlerStats = field(default_factory=HandlerStats)
    #: state writes at epoch boundaries through a cache under the shard's lease; None: every changed state
    epoch_writes: EpochWriter | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        decoded: list[tuple[int, Record]] = []
        processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
        response = process_partial_response(
            event=event, record_handler=self._record_handler(decoded), processor=processor, context=context
        )
        failures = response.get("batchItemFailures") or []
        lowest = min((int(str(f["itemIdentifier"])) for f in failures), default=None)
        records = [rec for seq, rec in decoded if lowest is None or seq < lowest]
        self.stats.last_applied = [rec.record_id for rec in records]
        if records:
            if self.epoch_writes is not None:
                applied = self._apply_cached(self.epoch_writes, event, records, lowest)
            else:
                applied = self._apply_stored(records)
            self.stats.documents += len(applied.docs)
            self.stats.alerts += sum(1 for kind, _ in applied.docs if kind == "alerts")
            self.stats.behind += len(applied.behind)
        return dict(response)

    def _apply_stored(self, records: list[Record]) -> Applied:
        """Fold ``records`` from the stored states; write the states that changed."""
        states = self.states.get_many({r.device_id for r in records})
        applied = apply_records(records, states, self.rules, self.rules_for)
        self._index(applied)
        changed = {d: s for d, s in applied.states.items() if s != states.get(d)}
        if changed:
            self.states.put_many(changed)
        self.stats.state_writes += len(changed)
        self.stats.state_unchanged += len(applied.states) - len(changed)
        return applied

    def _index(self, applied: Applied) -> None:
        if applied.docs:
            for bad in self.store.index(applied.docs):
                self._reject(bad)

    def _apply_cached(
        self, writer: EpochWriter, event: dict[str, Any], records: list[Record], lowest: int | None
    ) -> Applied:
        """Fold ``records`` from the cached states; write only the states :meth:`EpochWriter.plan` names."""
        rows = event["Records"]
        shard = str(rows[0]["eventID"]).split(":", 1)[0]
        seqs = [int(r["kinesis"]["sequenceNumber"]) for r in rows]
        done = [(s, r) for s, r in zip(seqs, rows, strict=True) if lowest is None or s < lowest]
        last_seq = max(s for s, _ in done)
        arrival_ms = int(1000 * max(float(r["kinesis"]["approximateArrivalTimestamp"]) for _, r in done))
        source = str(rows[0]["eventSourceARN"])
        devices = {r.device_id for r in records}
        taken, replayed = writer.stats.takeovers, writer.stats.replayed
        states = writer.begin(source, shard, min(seqs), devices, self.rules, self.rules_for)
        self.stats.takeovers += writer.stats.takeovers - taken
        self.stats.replayed += writer.stats.replayed - replayed
        applied = apply_records(records, states, self.rules, self.rules_for)
        self._index(applied)
        written = writer.plan(shard, applied.states, last_seq, arrival_ms)
        if written:
            self.states.put_positioned(written)
        writer.commit(shard, applied.states, written, last_seq, arrival_ms)
        self.stats.state_writes += len(written)
        self.stats.state_unchanged += len(applied.states) - len(written.keys() & applied.states.keys())
        return applied

    def _record_handler(self, decoded: list[tuple[int, Record]]) -> Callable[[KinesisStreamRecord], None]:
        def handle(record: KinesisStreamRecord) -> None:
            data = record.kinesis.data_as_bytes()
            seq = int(record.kinesis.sequence_number)
            self.stats.kinesis_records += 1
            self.stats.bytes += len(data)
            self.stats.aggregates += is_aggregated(data)
            try:
                users = unpack(data)
            except AggregateError as exc:
                self.stats.records += 1
                self._quarantine(record, data, exc, None)
                return
            self.stats.records += len(users)
            for sub, payload in users:
                self._decode(record, payload, sub, seq, decoded)

        return handle

    def _decode(
        self,
        record: KinesisStreamRecord,
        data: bytes,
        sub: int | None,
        seq: int,
        decoded: list[tuple[int, Record]],
    ) -> None:
        try:
            rec = decode(data)
        except ContractError as exc:
            self._quarantine(record, data, exc, sub)
            return
        decoded.append((seq, rec))

    def _reject(self, bad: Rejected) -> None:
        self.stats.rejected += 1
        log.error("store refused a %s document (status %s); dead-lettered with its reason", bad.kind, bad.status)
        body = json.dumps(bad.doc, sort_keys=True).encode()
        version = hashlib.sha256(body).hexdigest()[:8]  # an alert's open and closed documents share an id
        self.dead_letters.put(
            f"rejected/{bad.kind}/{bad.doc.get('doc_id')}-{version}",
            dead_letter(
                body,
                reason=f"{bad.status}: {bad.reason}",
                field=bad.kind,
                source={"store": type(self.store).__name__},
            ),
        )

    def _quarantine(self, record: KinesisStreamRecord, data: bytes, exc: ContractError, sub: int | None) -> None:
        self.stats.quarantined += 1
        self.stats.quarantine_reasons[exc.field] = self.stats.quarantine_reasons.get(exc.field, 0) + 1
        shard = record.event_id.split(":", 1)[0]
        seq = record.kinesis.sequence_number
        where = seq if sub is None else f"{seq}-{sub}"
        # the reason can quote field values and the payload is health data: both go to the
        # dead letter only, the log names the record's position and the offending field
        log.warning("quarantined %s/%s: field %s breaks the contract", shard, where, exc.field)
        source: dict[str, Any] = {
            "eventSourceARN": record.event_source_arn,
            "shard": shard,
            "sequenceNumber": seq,
            "partitionKey": record.kinesis.partition_key,
        }
        if sub is not None:
            source["subSequenceNumber"] = sub
        self.dead_letters.put(
            f"contract/{shard}/{where}", dead_letter(data, reason=str(exc), field=exc.field, source=source)
        )
