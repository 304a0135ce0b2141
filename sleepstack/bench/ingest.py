"""``sleepstack bench ingest``: the collector's path to Kinesis, and what a bed-night costs on the wire.

* Throughput, for both wires in the same run (rounds alternating, after an untimed
  warm-up), on a private kinesalite on loopback: user records/s from the durable spool
  to Kinesis (``synchronous=FULL``: every acknowledgement fsynced) against a bare boto3
  PutRecords loop sending the same Kinesis records to the same endpoint. **v2**
  (top-level keys): contract v2, the sender packing each shard's records into KPL
  aggregates; **v1** (under ``"v1"``): contract v1, one plain Kinesis record each. Goal:
  ratio >= 0.8.
* Per bed-night (one simulated night of a strap and a 100 Hz bed sensor): Kinesis
  records, PUT payload units (25 KB each), wire bytes, and the bytes Firehose bills
  (each record rounded up to 5 KB), for v1 and for v2 as the sender packs them live
  (``linger_ms`` 10,000 by default, records sent when the collector has them, a record
  that completes an epoch at once) with one bed per collector and with ten (a ward's
  gateway; one shard), with one bed and the former 0.8-s linger, and when a backlog (a
  whole night) is drained at once. The
  v2 figures against v1 are the ``*_fewer_x`` ratios. Goal: >= 5x fewer PUT units and
  Firehose bytes per bed-night.
* The envelope choice: the v2 bed frame as JSON with base64 samples against the least a
  binary envelope could be (the same header fields, the samples as raw int16 bytes).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.contract import BedFrame, Record, to_wire
from ingest.aggregation import (
    DEFAULT_LINGER_MS,
    PUT_UNIT_BYTES,
    Pending,
    ShardMap,
    epoch_of,
    pack,
    pack_records,
    put_units,
)
from ingest.producer import KinesisProducer, batches
from ingest.sender import SpoolSender
from ingest.spool import Spool
from sleepstack.bench.fixtures import one_shard, private_stream, send_at, simulated_night_records

__all__ = ["bed_night_wire", "bench_ingest"]

#: Firehose bills every record rounded up to this many bytes.
FIREHOSE_ROUNDING_BYTES = 5 * 1024


def _records(n: int, seed: int) -> list[Record]:
    recs: list[Record] = []
    k = 0
    while len(recs) < n:
        recs += simulated_night_records(f"b{k:03d}", seed + k)
        k += 1
    return recs[:n]


def _bill(kinesis_records: list[tuple[str, bytes]], beds: int) -> dict[str, float]:
    """What ``kinesis_records`` cost per bed: records, PUT units, wire bytes, Firehose billed bytes."""
    units = sum(put_units(len(d) + len(k.encode())) for k, d in kinesis_records)
    billed = sum(-(-len(d) // FIREHOSE_ROUNDING_BYTES) * FIREHOSE_ROUNDING_BYTES for _, d in kinesis_records)
    return {
        "kinesis_records": round(len(kinesis_records) / beds),
        "put_units": round(units / beds),
        "wire_mib": round(sum(len(d) for _, d in kinesis_records) / beds / 2**20, 2),
        "firehose_billed_mib": round(billed / beds / 2**20, 1),
    }


def _live(recs: list[Record], linger_ms: int) -> list[tuple[str, bytes]]:
    """The Kinesis records the sender puts for ``recs`` (one shard) when each is spooled at its send time.

    The sender's rule: a shard's records wait until the oldest has waited ``linger_ms``
    (plus up to one 0.2-s poll, not modelled: it only makes aggregates larger) or until
    they fill a PUT unit.
    """
    out: list[tuple[str, bytes]] = []
    group: list[Pending] = []
    epochs: set[int | None] = set()
    first_ms = 0
    size = 0
    for i, r in enumerate(sorted(recs, key=send_at)):
        t = send_at(r)
        if group and t - first_ms >= linger_ms:
            out += [(p.partition_key, p.data) for p in pack(group, shard_of=one_shard)]
            group = []
        data = to_wire(r)
        if not group:
            first_ms, size, epochs = t, 0, set()
        group.append(Pending(i, r.device_id, data))
        size += len(data)
        epochs.add(epoch_of(data))
        if linger_ms > 0 and (None in epochs or len(epochs) > 1):  # a record that completes an epoch goes at once
            out += [(p.partition_key, p.data) for p in pack(group, shard_of=one_shard)]
            group = []
            continue
        if size >= PUT_UNIT_BYTES:
            full = pack(group, shard_of=one_shard)
            out += [(p.partition_key, p.data) for p in full[:-1]]  # the full aggregates go now
            last = full[-1]
            group = [g for g in group if g.id in set(last.ids)]
            size = sum(len(g.data) for g in group)
            epochs = {epoch_of(g.data) for g in group}
    if group:
        out += [(p.partition_key, p.data) for p in pack(group, shard_of=one_shard)]
    return out


def bed_night_wire(seed: int = 0, linger_ms: int = DEFAULT_LINGER_MS) -> dict[str, Any]:
    """Per bed-night wire figures of v1 and v2 (live with 1 and 10 beds per collector, and a backlog)."""
    night = simulated_night_records("w000", seed)
    ward = [r for k in range(10) for r in simulated_night_records(f"w{k:03d}", seed + k)]
    v1 = _bill([(r.device_id, to_wire(r, version=1)) for r in night], 1)
    backlog = _bill([(p.partition_key, p.data) for p in pack_records(night, shard_of=one_shard)], 1)
    live = _bill(_live(night, linger_ms), 1)
    ward_live = _bill(_live(ward, linger_ms), 10)
    short = _bill(_live(night, 800), 1)
    bed = next(r for r in night if isinstance(r, BedFrame))
    header = json.loads(to_wire(bed))
    packed = header.pop("samples_i16le")
    binary = len(json.dumps(header, separators=(",", ":")).encode()) + 2 * len(bed.samples)

    def fewer(v2: dict[str, float]) -> dict[str, float]:
        return {
            "put_units_fewer_x": round(v1["put_units"] / v2["put_units"], 1),
            "firehose_billed_fewer_x": round(v1["firehose_billed_mib"] / v2["firehose_billed_mib"], 1),
        }

    hours = (send_at(night[-1]) - night[0].event_time_ms) / 3_600_000
    return {
        "bed_night_hours": round(hours, 1),
        "user_records": len(night),
        "linger_ms": linger_ms,
        "v1": v1,
        "v2_live_one_bed_per_collector": {**live, **fewer(live)},
        "v2_live_ten_beds_per_collector": {**ward_live, **fewer(ward_live)},
        "v2_live_one_bed_linger_0_8s": {**short, **fewer(short)},
        "v2_backlog": {**backlog, **fewer(backlog)},
        "bed_frame_bytes": {
            "v1_json": len(to_wire(bed, version=1)),
            "v2_json_base64": len(to_wire(bed)),
            "binary_envelope_at_least": binary,
            "base64_chars": len(packed),
            "firehose_billed_v2_json": -(-len(to_wire(bed)) // FIREHOSE_ROUNDING_BYTES) * FIREHOSE_ROUNDING_BYTES,
            "firehose_billed_binary": -(-binary // FIREHOSE_ROUNDING_BYTES) * FIREHOSE_ROUNDING_BYTES,
        },
    }


def _throughput(
    client: Any, stream: str, tmp: Path, recs: list[Record], version: int, rounds: int, synchronous: str
) -> Callable[[int], dict[str, float]]:
    """One round of the bare loop and the spool for one wire; returns a function running round ``r``."""
    if version == 1:
        entries = [(r.device_id, to_wire(r, version=1)) for r in recs]
    else:
        shards = ShardMap.of_stream(client, stream)
        entries = [(p.partition_key, p.data) for p in pack_records(recs, shard_of=shards.shard_of)]

    def run(r: int) -> dict[str, float]:
        t = time.perf_counter()
        for batch in batches(entries):
            resp = client.put_records(StreamName=stream, Records=batch)
            if resp.get("FailedRecordCount"):
                raise RuntimeError(f"bare loop: {resp['FailedRecordCount']} records rejected")
        bare = len(recs) / (time.perf_counter() - t)
        spool = Spool(tmp / f"spool-v{version}-{r}.sqlite", synchronous=synchronous)
        t = time.perf_counter()
        spool.append_records(recs, version=version)
        fill = len(recs) / (time.perf_counter() - t)
        unit = PUT_UNIT_BYTES if version == 2 else 0
        sender = SpoolSender(spool, KinesisProducer(client, stream), max_record_bytes=unit)
        t = time.perf_counter()
        sent = sender.drain()
        spooled = sent / (time.perf_counter() - t)
        if sent != len(recs) or spool.backlog()["outbox"]:
            raise RuntimeError(f"spool round {r} (v{version}): sent {sent} of {len(recs)}")
        spool.close()
        return {"bare": bare, "spool": spooled, "fill": fill, "kinesis_records": sender.stats.kinesis_records}

    return run


def bench_ingest(records: int = 20_000, rounds: int = 3, seed: int = 0, synchronous: str = "FULL") -> dict[str, Any]:
    """Run the ingest benchmark on a private kinesalite; returns the figures."""
    recs = _records(records, seed)
    with (
        tempfile.TemporaryDirectory(prefix="sleepstack-bench-") as tmp,
        private_stream(Path(tmp)) as (_, client, stream),
    ):
        runs = {v: _throughput(client, stream, Path(tmp), recs, v, rounds, synchronous) for v in (2, 1)}
        warm = Spool(Path(tmp) / "warmup.sqlite", synchronous=synchronous)
        warm.append_records(recs[:2000])  # untimed: JIT of kinesalite, connection pools
        SpoolSender(warm, KinesisProducer(client, stream)).drain()
        got: dict[int, list[dict[str, float]]] = {2: [], 1: []}
        for r in range(rounds):
            for v, run in runs.items():
                got[v].append(run(r))

    def figures(v: int) -> dict[str, Any]:
        bare = statistics.median(g["bare"] for g in got[v])
        spooled = statistics.median(g["spool"] for g in got[v])
        return {
            "kinesis_records": int(got[v][0]["kinesis_records"]),
            "bare_put_records_per_s": round(bare),
            "spool_to_kinesis_records_per_s": round(spooled),
            "ratio": round(spooled / bare, 3),
            "ratio_per_round": [round(g["spool"] / g["bare"], 3) for g in got[v]],
            "spool_fill_records_per_s": round(statistics.median(g["fill"] for g in got[v])),
        }

    return {
        "records": len(recs),
        "rounds": rounds,
        "synchronous": synchronous,
        "wire": "v2 + KPL aggregation",
        **figures(2),
        "goal_ratio": 0.8,
        "v1": figures(1),
        "per_bed_night": bed_night_wire(seed),
    }
