"""``sleepstack bench ingest``: records/s from the durable spool to Kinesis (kinesalite on loopback)
against a bare boto3 PutRecords loop sending the same records to the same endpoint, in
alternating rounds after an untimed warm-up; medians and their ratio. Goal: ratio >= 0.8 with the spool's
durability on (``synchronous=FULL``: every acknowledgement is fsynced).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core.contract import Record, to_wire
from ingest.producer import KinesisProducer, batches
from ingest.sender import SpoolSender
from ingest.spool import Spool
from sleepstack.bench.fixtures import private_stream, simulated_night_records

__all__ = ["bench_ingest"]


def _records(n: int, seed: int) -> list[Record]:
    recs: list[Record] = []
    k = 0
    while len(recs) < n:
        recs += simulated_night_records(f"b{k:03d}", seed + k)
        k += 1
    return recs[:n]


def bench_ingest(records: int = 20_000, rounds: int = 3, seed: int = 0, synchronous: str = "FULL") -> dict[str, Any]:
    """Run the ingest benchmark on a private kinesalite; returns the figures."""
    recs = _records(records, seed)
    entries = [(r.device_id, to_wire(r)) for r in recs]
    mib = sum(len(d) + len(k) for k, d in entries) / 2**20
    bare_rps: list[float] = []
    spool_rps: list[float] = []
    fill_rps: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="sleepstack-bench-") as tmp,
        private_stream(Path(tmp)) as (_, client, stream),
    ):
        warm = Spool(Path(tmp) / "warmup.sqlite", synchronous=synchronous)
        warm.append_records(recs[:2000])  # untimed: JIT of kinesalite, connection pools
        SpoolSender(warm, KinesisProducer(client, stream)).drain()
        for batch in batches(entries[:2000]):
            client.put_records(StreamName=stream, Records=batch)
        for r in range(rounds):
            t = time.perf_counter()
            for batch in batches(entries):
                resp = client.put_records(StreamName=stream, Records=batch)
                if resp.get("FailedRecordCount"):
                    raise RuntimeError(f"bare loop: {resp['FailedRecordCount']} records rejected")
            bare_rps.append(len(entries) / (time.perf_counter() - t))

            spool = Spool(Path(tmp) / f"spool-{r}.sqlite", synchronous=synchronous)
            t = time.perf_counter()
            spool.append_records(recs)
            fill_rps.append(len(recs) / (time.perf_counter() - t))
            sender = SpoolSender(spool, KinesisProducer(client, stream))
            t = time.perf_counter()
            sent = sender.drain()
            spool_rps.append(sent / (time.perf_counter() - t))
            if sent != len(recs) or spool.backlog()["outbox"]:
                raise RuntimeError(f"spool round {r}: sent {sent} of {len(recs)}")
            spool.close()
    bare, spooled = statistics.median(bare_rps), statistics.median(spool_rps)
    return {
        "records": len(recs),
        "mib": round(mib, 1),
        "rounds": rounds,
        "synchronous": synchronous,
        "bare_put_records_per_s": round(bare),
        "spool_to_kinesis_records_per_s": round(spooled),
        "ratio": round(spooled / bare, 3),
        "ratio_per_round": [round(s / b, 3) for s, b in zip(spool_rps, bare_rps, strict=True)],
        "spool_fill_records_per_s": round(statistics.median(fill_rps)),
        "goal_ratio": 0.8,
    }
