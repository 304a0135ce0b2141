"""Simulated nights through the code both layers run, in one process, for truth audits and agreement tests.

The path is the stack's, without its processes and its network hops:

* **collector**: each device's notifications (:func:`simulator.nights.strap_measurements`,
  :func:`simulator.nights.bed_notifications`) less those sent while its link was down
  (``drops``), turned into records by the collector's own functions
  (:func:`core.ble.device_records.strap_sample`, :class:`core.ble.device_records.BedFramer`,
  which cuts the frames and reports the gaps);
* **stream**: the sender's packing (:func:`ingest.aggregation.pack_records`: KPL
  aggregates on contract v2), delivered in stream order as Lambda events of
  ``batch_size`` Kinesis records (:func:`local.event_source_mapping.kinesis_event`);
* **speed layer**: the Lambda handler itself (:class:`speed_layer.handler.SpeedLayerHandler`)
  over a local live store and state store;
* **raw landing**: the Firehose transformation (:func:`batch_layer.raw_landing.firehose_transform`)
  of every de-aggregated user record into its lake row;
* **batch layer**: what the nightly job applies per subject-night
  (:func:`core.nights.nightly.stage_subject_night`, :func:`core.nights.nightly.summarize_night`).

The local stack (``sleepstack demo``, ``tests/test_stack_services.py``) runs the same
functions under its supervisor; this module is how a figure can be checked in seconds.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from batch_layer.raw_landing import firehose_transform
from batch_layer.stage_models import bundled
from core.ble.device_records import BedFramer, strap_sample
from core.contract import Record
from core.contract.epochs import night_of
from core.contract.kpl import unpack
from core.nights.nightly import stage_subject_night, summarize_night
from dead_letters.sinks import LocalDeadLetters
from ingest.aggregation import pack_records
from local.event_source_mapping import kinesis_event
from local.live_store import LocalLiveStore
from local.state_store import LocalStateStore
from simulator.nights import SimulatedNight, bed_notifications, strap_measurements
from speed_layer.handler import SpeedLayerHandler

__all__ = ["Drop", "LayersOutput", "collected_records", "run_layers"]

_SHARD: Final = "shardId-000000000000"
_ARN: Final = "arn:aws:kinesis:local:000000000000:stream/evaluation"


@dataclass(frozen=True, slots=True)
class Drop:
    """A device's link down for ``[start_ms, end_ms)``: its notifications in that time are lost."""

    device_id: str
    start_ms: int
    end_ms: int


def collected_records(
    night: SimulatedNight,
    *,
    strap_device: str | None,
    bed_device: str | None,
    drops: Sequence[Drop] = (),
    ingest_delay_ms: int = 200,
) -> list[Record]:
    """The records the collector builds from the night's notifications, less ``drops``, in time order."""
    subject = night.config.subject_id

    def lost(device: str, t_ms: float) -> bool:
        return any(d.device_id == device and d.start_ms <= t_ms < d.end_ms for d in drops)

    out: list[tuple[int, Record]] = []
    if strap_device:
        for t_ms, m in strap_measurements(night):
            if not lost(strap_device, t_ms):
                rec, _ = strap_sample(
                    m, device_id=strap_device, subject_id=subject, receive_ms=t_ms, ingest_ms=t_ms + ingest_delay_ms
                )
                out.append((t_ms, rec))
    if bed_device:
        framer = BedFramer()
        for t_ms, note in bed_notifications(night):
            if not lost(bed_device, note.device_time_ms):
                out.extend((t_ms, f) for f in framer.feed(bed_device, subject, note, t_ms + ingest_delay_ms))
        out.extend((f.ingest_time_ms, f) for f in framer.flush(bed_device))
    out.sort(key=lambda p: (p[0], p[1].kind))
    return [r for _, r in out]


@dataclass
class LayersOutput:
    """What both layers made of the records."""

    vitals: list[dict[str, Any]] = field(default_factory=list)  # speed layer: epoch-vitals documents
    alerts: list[dict[str, Any]] = field(default_factory=list)  # speed layer: alert documents (final state)
    epochs: pd.DataFrame = field(default_factory=pd.DataFrame)  # batch: curated epochs
    nights: pd.DataFrame = field(default_factory=pd.DataFrame)  # batch: curated night summaries
    quarantined: int = 0


def run_layers(records: Sequence[Record], *, tz: str = "UTC", batch_size: int = 500) -> LayersOutput:
    """``records`` (stream order) through the speed layer's handler and the nightly job's functions."""
    out = LayersOutput()
    packed = [(p.partition_key, p.data) for p in pack_records(records, shard_of=lambda _key: _SHARD)]
    with tempfile.TemporaryDirectory(prefix="sleepstack-layers-") as tmp:
        home = Path(tmp)
        store = LocalLiveStore(home / "live.sqlite")
        states = LocalStateStore(home / "state.sqlite")
        handler = SpeedLayerHandler(store, states, LocalDeadLetters(home / "dead-letters"))
        now = datetime.now(tz=UTC)
        try:
            for i in range(0, len(packed), batch_size):
                rows = [
                    {
                        "PartitionKey": k,
                        "SequenceNumber": str(10**20 + i + j),
                        "Data": d,
                        "ApproximateArrivalTimestamp": now,
                    }
                    for j, (k, d) in enumerate(packed[i : i + batch_size])
                ]
                handler(kinesis_event(rows, shard_id=_SHARD, arn=_ARN, region="local"), None)
            for kind, _, body in store.dump():
                (out.vitals if kind == "vitals" else out.alerts if kind == "alerts" else []).append(json.loads(body))
        finally:
            store.close()
            states.close()
        out.quarantined = handler.stats.quarantined
    out.epochs, out.nights = _batch(_lake_rows(packed), tz)
    return out


def _lake_rows(packed: Sequence[tuple[str, bytes]]) -> pd.DataFrame:
    """The raw lake's rows: Firehose de-aggregates each record and the transformation lands each user record."""
    users = [data for _, blob in packed for _, data in unpack(blob)]
    event = {"records": [{"recordId": str(i), "data": base64.b64encode(d).decode()} for i, d in enumerate(users)]}
    rows = [
        json.loads(base64.b64decode(r["data"])) for r in firehose_transform(event)["records"] if r["result"] == "Ok"
    ]
    return pd.DataFrame(rows)


def _batch(raw: pd.DataFrame, tz: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The nightly job's per-group functions over ``raw``, grouped by subject and night as it groups."""
    if raw.empty:
        return pd.DataFrame(), pd.DataFrame()
    raw["night"] = [night_of(int(t), tz) for t in raw["event_time_ms"]]
    epochs, nights = [], []
    for _, group in raw.groupby(["subject_id", "night"], sort=True):
        staged = stage_subject_night(group.reset_index(drop=True), models=bundled())
        if len(staged):
            epochs.append(staged)
            nights.append(summarize_night(staged, bundled()))
    return pd.concat(epochs, ignore_index=True), pd.concat(nights, ignore_index=True)
