"""``sleepstack bench speed``: speed-layer throughput and end-to-end latency.

* Throughput: the Lambda handler on one Kinesis event carrying 10,000 user records of
  mixed strap and 100 Hz bed records (the mix a night produces: one strap notification a
  second, one 30-s bed frame an epoch), with the embedded live and state stores, on one
  core, for both wires in the same run, rounds interleaved: **v2** (top-level keys:
  contract v2, packed per shard into KPL aggregates of one PUT unit, as the sender sends
  them) and **v1** (under ``"v1"``: contract v1, one plain Kinesis record each). Reported
  as records/s, samples/s (bed samples + strap notifications), MiB/s of Kinesis data,
  ``shard_ratio`` = bytes/s / 1 MiB/s (one Kinesis shard's write limit), and the
  ceiling: ``bare_decode_mib_s`` (base64 of the event, KPL unpacking, JSON parse of
  every user record and one numpy pass over every bed frame's samples, nothing else) and
  ``ceiling_ratio`` = handler / bare decode. Median of ``rounds`` runs after an untimed
  warm-up. Goals on the v2 wire: shard_ratio >= 20, ceiling_ratio >= 0.5.
* Latency: records replayed in real time (event times rebased to now) through the
  collector's durable spool, the sender (KPL aggregates, its default linger with the
  epoch-completing records sent at once, 0.2-s poll),
  kinesalite, the local event-source poller and the handler into the embedded store;
  for every completed epoch, the time from its window closing (the epoch's end) until
  its complete vitals document is queryable. p50/p95/max. Goal: p95 <= 2 s.
"""

from __future__ import annotations

import base64
import dataclasses
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from core.contract import BedFrame, Record, to_wire
from core.contract.epochs import EPOCH_MS, epoch_start_ms
from core.contract.kpl import deaggregate, is_aggregated
from ingest.aggregation import DEFAULT_LINGER_MS, pack_records
from ingest.producer import KinesisProducer
from ingest.sender import SpoolSender
from ingest.spool import Spool
from local.event_source_mapping import EventSourceMapping, LambdaContext, kinesis_event
from local.shard_reader import Checkpoints
from sleepstack import wiring
from sleepstack.bench.fixtures import ONE_SHARD, bench_settings, mixed_records, one_shard, private_stream, send_at

__all__ = ["bench_speed_latency", "bench_speed_throughput"]

MIB = 1 << 20


def _event(payloads: list[tuple[str, bytes]]) -> dict[str, Any]:
    now = datetime.now(tz=UTC)
    rows = [
        {"PartitionKey": k, "SequenceNumber": str(10**20 + i), "Data": d, "ApproximateArrivalTimestamp": now}
        for i, (k, d) in enumerate(payloads)
    ]
    return kinesis_event(rows, shard_id=ONE_SHARD, arn="arn:aws:kinesis:local:0:stream/bench", region="local")


def _wire(recs: list[Record], version: int) -> list[tuple[str, bytes]]:
    """The Kinesis records the sender would put: v2 packed per shard (one shard), v1 plain."""
    if version == 1:
        return [(r.device_id, to_wire(r, version=1)) for r in recs]
    return [(p.partition_key, p.data) for p in pack_records(recs, shard_of=one_shard)]


def _bare_decode(event: dict[str, Any]) -> int:
    """The least any handler must do with ``event``: base64, KPL unpacking, JSON, one numpy pass per frame."""
    total = 0
    for rec in event["Records"]:
        data = base64.b64decode(rec["kinesis"]["data"])
        users = [u.data for u in deaggregate(data)] if is_aggregated(data) else [data]
        for u in users:
            obj = orjson.loads(u)
            if "samples_i16le" in obj:
                total += int(np.frombuffer(base64.b64decode(obj["samples_i16le"]), dtype="<i2").sum())
            elif "samples" in obj:
                total += int(np.asarray(obj["samples"], dtype=np.int16).sum())
    return total


def bench_speed_throughput(records: int = 10_000, subjects: int = 8, rounds: int = 3, seed: int = 0) -> dict[str, Any]:
    recs = mixed_records(records, subjects, seed)
    samples = sum(len(r.samples) if isinstance(r, BedFrame) else 1 for r in recs)
    n_bed = sum(isinstance(r, BedFrame) for r in recs)
    wires = {v: _wire(recs, v) for v in (2, 1)}
    events = {v: _event(w) for v, w in wires.items()}
    secs: dict[int, list[float]] = {2: [], 1: []}
    bare: dict[int, list[float]] = {2: [], 1: []}
    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-speed-") as tmp:
        for r in range(rounds + 1):  # round 0: warm-up (imports, filter design caches)
            for v, event in events.items():
                handler = wiring.speed_layer_handler(bench_settings(Path(tmp) / f"r{r}-v{v}"))
                t = time.perf_counter()
                resp = handler(event, LambdaContext())
                elapsed = time.perf_counter() - t
                if resp["batchItemFailures"] or handler.stats.quarantined or handler.stats.records != len(recs):
                    raise RuntimeError(f"bench batch not clean: {resp}, quarantined={handler.stats.quarantined}")
                t = time.perf_counter()
                _bare_decode(event)
                bare_elapsed = time.perf_counter() - t
                if r:
                    secs[v].append(elapsed)
                    bare[v].append(bare_elapsed)

    def figures(v: int) -> dict[str, Any]:
        nbytes = sum(len(d) for _, d in wires[v])
        s = statistics.median(secs[v])
        b = statistics.median(bare[v])
        return {
            "wire": f"v{v}" + (" + KPL aggregation" if v == 2 else ", one Kinesis record each"),
            "kinesis_records": len(wires[v]),
            "mib": round(nbytes / MIB, 2),
            "seconds_per_batch": [round(x, 3) for x in secs[v]],
            "records_per_s": round(len(recs) / s),
            "samples_per_s": round(samples / s),
            "mib_per_s": round(nbytes / MIB / s, 2),
            "shard_ratio": round(nbytes / MIB / s, 2),
            "bare_decode_seconds": round(b, 4),
            "bare_decode_mib_s": round(nbytes / MIB / b, 1),
            "ceiling_ratio": round(b / s, 3),
        }

    return {
        "records": len(recs),
        "bed_frames": n_bed,
        "strap_notifications": len(recs) - n_bed,
        "rounds": rounds,
        **figures(2),
        "goal_shard_ratio": 20,
        "goal_ceiling_ratio": 0.5,
        "v1": figures(1),
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


def _replay_in_real_time(spool: Spool, recs: list[Record]) -> None:
    """Spool each record when the collector would have it; the sender thread takes it from there."""
    i = 0
    while i < len(recs):
        now_ms = time.time() * 1000
        due = []
        while i < len(recs) and send_at(recs[i]) <= now_ms:
            due.append(recs[i])
            i += 1
        if due:
            spool.append_records(due)
        else:
            time.sleep(min(0.02, max(0.0, (send_at(recs[i]) - now_ms) / 1000)))


def _quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench_speed_latency(
    seconds: float = 90.0,
    subjects: int = 10,
    poll_s: float = 0.2,
    seed: int = 0,
    linger_ms: int = DEFAULT_LINGER_MS,
    idle_poll_s: float | None = None,
) -> dict[str, Any]:
    """Replay ``seconds`` of ``subjects`` strap+bed pairs in real time (spool, sender, stream); latency per epoch.

    The poller pauses ``poll_s`` between drains, or as the stack's services do with
    ``idle_poll_s``: ``poll_s`` while records flow, backing off to ``idle_poll_s`` when idle.
    """
    from sleepstack.services.loop import IdlePoll

    per_subject = int(seconds) + int(seconds) // 30 + 2
    raw = mixed_records(per_subject * subjects, subjects, seed)
    start_ms = int(time.time() * 1000) + 2000
    base_ms = start_ms - start_ms % EPOCH_MS + EPOCH_MS
    by_subject: dict[str, list[Record]] = {}
    for r in raw:
        by_subject.setdefault(r.subject_id, []).append(r)
    recs = [r for group in by_subject.values() for r in _rebased(group, base_ms)]  # everyone starts together

    recs.sort(key=send_at)
    end_ms = recs[0].event_time_ms + int(seconds * 1000)
    recs = [r for r in recs if send_at(r) <= end_ms]
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
        pause = IdlePoll(lambda: handler.stats.kinesis_records, fast_s=poll_s, idle_s=idle_poll_s or poll_s)

        def poll() -> None:
            while not stop.is_set():
                esm.drain()
                stop.wait(pause.next_pause())

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        # the collector's path: durable spool, then the sender packing aggregates with its linger
        spool = Spool(Path(tmp) / "spool.sqlite")
        sender = SpoolSender(spool, KinesisProducer(client, "latency"), linger_ms=linger_ms)
        sending = threading.Thread(target=sender.drain, kwargs={"stop": stop.is_set, "idle_s": 0.2}, daemon=True)
        sending.start()
        _replay_in_real_time(spool, recs)
        time.sleep(2.0 + poll_s + linger_ms / 1000)
        stop.set()
        poller.join()
        sending.join()
        spool.close()
    lat = sorted(t - (epoch + EPOCH_MS) / 1000 for (_, epoch), t in visible.items() if epoch + EPOCH_MS <= end_ms)
    if not lat:
        raise RuntimeError("no epoch completed during the latency run; raise --seconds")
    return {
        "seconds": seconds,
        "subjects": subjects,
        "poll_interval_s": poll_s,
        "sender_linger_ms": linger_ms,
        "latency_kinesis_records": sender.stats.kinesis_records,
        "latency_user_records": sender.stats.sent,
        "epochs_measured": len(lat),
        "latency_p50_s": round(_quantile(lat, 0.5), 3),
        "latency_p95_s": round(_quantile(lat, 0.95), 3),
        "latency_max_s": round(lat[-1], 3),
        "goal_p95_s": 2.0,
    }
