"""``sleepstack bench speed``: speed-layer throughput and end-to-end latency.

* Throughput: the Lambda handler on one 10,000-record Kinesis event of mixed strap and
  100 Hz bed records (the mix a night produces: one strap notification a second, one
  30-s bed frame an epoch), with the embedded live and state stores, on one core.
  Reported as records/s, samples/s (bed samples + strap notifications), MiB/s, and
  ``shard_ratio`` = bytes/s / 1 MiB/s (one Kinesis shard's write limit). Median of
  ``rounds`` runs after an untimed warm-up. Goal: shard_ratio >= 20.
* Latency: records replayed in real time (event times rebased to now) through
  kinesalite, the local event-source poller and the handler into the embedded store;
  for every completed epoch, the time from its window closing (the epoch's end) until
  its complete vitals document is queryable. p50/p95/max. Goal: p95 <= 2 s.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.contract import BedFrame, Record, to_wire
from core.epochs import EPOCH_MS, epoch_start_ms
from ingest.producer import KinesisProducer
from local.event_source_mapping import EventSourceMapping, LambdaContext, kinesis_event
from local.shard_reader import Checkpoints
from sleepstack import wiring
from sleepstack.bench.fixtures import bench_settings, mixed_records, private_stream

__all__ = ["bench_speed_latency", "bench_speed_throughput"]

MIB = 1 << 20


def _event(payloads: list[tuple[str, bytes]]) -> dict[str, Any]:
    now = datetime.now(tz=UTC)
    rows = [
        {"PartitionKey": k, "SequenceNumber": str(10**20 + i), "Data": d, "ApproximateArrivalTimestamp": now}
        for i, (k, d) in enumerate(payloads)
    ]
    return kinesis_event(
        rows, shard_id="shardId-000000000000", arn="arn:aws:kinesis:local:0:stream/bench", region="local"
    )


def bench_speed_throughput(records: int = 10_000, subjects: int = 8, rounds: int = 3, seed: int = 0) -> dict[str, Any]:
    recs = mixed_records(records, subjects, seed)
    payloads = [(r.device_id, to_wire(r)) for r in recs]
    nbytes = sum(len(d) for _, d in payloads)
    samples = sum(len(r.samples) if isinstance(r, BedFrame) else 1 for r in recs)
    n_bed = sum(isinstance(r, BedFrame) for r in recs)
    event = _event(payloads)
    secs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-speed-") as tmp:
        for r in range(rounds + 1):  # round 0: warm-up (imports, filter design caches)
            handler = wiring.speed_layer_handler(bench_settings(Path(tmp) / f"r{r}"))
            t = time.perf_counter()
            resp = handler(event, LambdaContext())
            elapsed = time.perf_counter() - t
            if resp["batchItemFailures"] or handler.stats.quarantined:
                raise RuntimeError(f"bench batch not clean: {resp}, quarantined={handler.stats.quarantined}")
            if r:
                secs.append(elapsed)
    s = statistics.median(secs)
    return {
        "records": len(recs),
        "bed_frames": n_bed,
        "strap_notifications": len(recs) - n_bed,
        "mib": round(nbytes / MIB, 2),
        "rounds": rounds,
        "seconds_per_batch": [round(x, 3) for x in secs],
        "records_per_s": round(len(recs) / s),
        "samples_per_s": round(samples / s),
        "mib_per_s": round(nbytes / MIB / s, 2),
        "shard_ratio": round(nbytes / MIB / s, 2),
        "goal_shard_ratio": 20,
    }


def _rebased(recs: list[Record], t0_ms: int) -> list[Record]:
    """Shift ``recs`` so the epoch of the first one starts at epoch-aligned ``t0_ms``."""
    shift = t0_ms - int(epoch_start_ms(recs[0].event_time_ms))
    return [
        dataclasses.replace(
            r,
            device_time_ms=r.device_time_ms + shift,
            event_time_ms=r.event_time_ms + shift,
            ingest_time_ms=r.ingest_time_ms + shift,
        )
        for r in recs
    ]


def _send_at(r: Record) -> int:
    """When a record leaves the collector: a strap notification at once, a bed frame when complete."""
    return r.event_time_ms + (round(r.duration_ms) if isinstance(r, BedFrame) else 0)


def _replay_in_real_time(producer: KinesisProducer, recs: list[Record]) -> None:
    i = 0
    while i < len(recs):
        now_ms = time.time() * 1000
        due = []
        while i < len(recs) and _send_at(recs[i]) <= now_ms:
            due.append(recs[i])
            i += 1
        if due:
            producer.put(due)
        else:
            time.sleep(min(0.02, max(0.0, (_send_at(recs[i]) - now_ms) / 1000)))


def _quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench_speed_latency(
    seconds: float = 90.0, subjects: int = 10, poll_s: float = 0.2, seed: int = 0
) -> dict[str, Any]:
    """Replay ``seconds`` of ``subjects`` strap+bed pairs in real time; latency per epoch."""
    per_subject = int(seconds) + int(seconds) // 30 + 2
    raw = mixed_records(per_subject * subjects, subjects, seed)
    start_ms = int(time.time() * 1000) + 2000
    base_ms = start_ms - start_ms % EPOCH_MS + EPOCH_MS
    by_subject: dict[str, list[Record]] = {}
    for r in raw:
        by_subject.setdefault(r.subject_id, []).append(r)
    recs = [r for group in by_subject.values() for r in _rebased(group, base_ms)]  # everyone starts together

    recs.sort(key=_send_at)
    end_ms = recs[0].event_time_ms + int(seconds * 1000)
    recs = [r for r in recs if _send_at(r) <= end_ms]
    visible: dict[tuple[str, int], float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="sleepstack-bench-latency-") as tmp,
        private_stream(Path(tmp)) as (settings, client, _),
    ):
        client.create_stream(StreamName="latency", ShardCount=1)
        client.get_waiter("stream_exists").wait(StreamName="latency", WaiterConfig={"Delay": 0.2})
        handler = wiring.speed_layer_handler(settings)
        store = handler.store

        # note when each epoch's complete vitals document becomes queryable
        real_index = store.index

        def index(docs: Any) -> Any:
            out = real_index(docs)
            now = time.time()
            for kind, d in docs:
                if kind == "vitals" and d.get("complete"):
                    visible.setdefault((d["device_id"], d["epoch_start_ms"]), now)
            return out

        store.index = index  # type: ignore[method-assign]
        esm = EventSourceMapping(
            client,
            "latency",
            handler,
            Checkpoints(Path(tmp) / "ckpt.json"),
            wiring.dead_letters(settings, Path(tmp) / "on-failure"),
            batch_size=500,
        )
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                esm.drain()
                stop.wait(poll_s)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _replay_in_real_time(KinesisProducer(client, "latency"), recs)
        time.sleep(2.0 + poll_s)
        stop.set()
        poller.join()
    lat = sorted(t - (epoch + EPOCH_MS) / 1000 for (_, epoch), t in visible.items() if epoch + EPOCH_MS <= end_ms)
    if not lat:
        raise RuntimeError("no epoch completed during the latency run; raise --seconds")
    return {
        "seconds": seconds,
        "subjects": subjects,
        "poll_interval_s": poll_s,
        "epochs_measured": len(lat),
        "latency_p50_s": round(_quantile(lat, 0.5), 3),
        "latency_p95_s": round(_quantile(lat, 0.95), 3),
        "latency_max_s": round(lat[-1], 3),
        "goal_p95_s": 2.0,
    }
