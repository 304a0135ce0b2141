"""Polling an idle stream: one GetRecords per shard and poll, and nothing lost or read twice for it.

The consumers keep the iterator a read at a shard's tip returned and the stream's shard
list (:class:`local.shard_reader.StreamShards`); these tests count the Kinesis calls of idle
polls (moto's Kinesis, two shards) and check that records put between polls, after a
stalled invocation, and after an expired iterator are each delivered exactly once.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from dead_letters import LocalDeadLetters
from ingest.producer import KinesisProducer
from local.event_source_mapping import EventSourceMapping
from local.firehose import FirehoseDelivery
from local.shard_reader import Checkpoints
from simulator.nights import night_records
from tests.conftest import STREAM, sim_night


class CountingClient:
    """Wraps a Kinesis client, counting each API call; ``expire_next`` fails the next GetRecords
    with a kept (not freshly asked for) iterator as ExpiredIteratorException."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, Counter[str]()
        self.fresh: set[str] = set()
        self.expire_next = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(**kw: Any) -> Any:
            self.calls[name] += 1
            if name == "get_records" and self.expire_next and kw["ShardIterator"] not in self.fresh:
                self.expire_next = False
                raise ClientError({"Error": {"Code": "ExpiredIteratorException"}}, "GetRecords")
            out = method(**kw)
            if name == "get_shard_iterator":
                self.fresh.add(out["ShardIterator"])
            return out

        return call


def _put(kinesis: Any, first: int, n: int) -> None:
    KinesisProducer(kinesis, STREAM).put_encoded([(f"k{i}", json.dumps({"i": i}).encode()) for i in range(first, n)])


def _mapping(client: Any, tmp_path: Path, seen: list[int], stall_on_i: set[int] | None = None) -> EventSourceMapping:
    def handler(event: dict[str, Any], context: Any) -> None:
        batch = [json.loads(base64.b64decode(r["kinesis"]["data"]))["i"] for r in event["Records"]]
        if stall_on_i and stall_on_i & set(batch):
            stall_on_i.clear()  # the next attempt succeeds
            raise OSError("disk full")
        seen.extend(batch)

    dlq = LocalDeadLetters(tmp_path / "dlq")
    return EventSourceMapping(client, STREAM, handler, Checkpoints(tmp_path / "ckpt.json"), dlq, stall_on=(OSError,))


def test_an_idle_poll_of_the_speed_layer_costs_one_get_records_per_shard(kinesis: Any, tmp_path: Path) -> None:
    client = CountingClient(kinesis)
    seen: list[int] = []
    esm = _mapping(client, tmp_path, seen)
    _put(kinesis, 0, 40)
    esm.drain()
    client.calls.clear()
    for _ in range(5):
        esm.drain()
    assert client.calls == Counter(get_records=2 * 5)  # two shards, five idle polls: no iterators, no listing
    _put(kinesis, 40, 90)
    esm.drain()
    assert sorted(seen) == list(range(90))  # put between polls: each delivered once


def test_a_stalled_invocation_is_read_again_from_the_checkpoint(kinesis: Any, tmp_path: Path) -> None:
    client = CountingClient(kinesis)
    seen: list[int] = []
    esm = _mapping(client, tmp_path, seen, stall_on_i={45})
    _put(kinesis, 0, 40)
    esm.drain()
    _put(kinesis, 40, 50)
    with pytest.raises(OSError, match="disk full"):
        esm.drain()
    esm.drain()
    esm.drain()
    assert sorted(seen) == list(range(50))


def test_an_expired_iterator_is_replaced_and_nothing_is_lost(kinesis: Any, tmp_path: Path) -> None:
    client = CountingClient(kinesis)
    seen: list[int] = []
    esm = _mapping(client, tmp_path, seen)
    _put(kinesis, 0, 20)
    esm.drain()
    _put(kinesis, 20, 60)
    client.expire_next = True
    client.calls.clear()
    esm.drain()
    assert not client.expire_next and client.calls["get_shard_iterator"] == 1  # only the expired one renewed
    assert sorted(seen) == list(range(60))


def test_an_idle_poll_of_the_delivery_costs_one_get_records_per_shard(kinesis: Any, tmp_path: Path) -> None:
    client = CountingClient(kinesis)
    lake = tmp_path / "lake"
    recs = night_records(sim_night(), strap_device="strap-1", bed_device="bed-1")[:400]
    delivery = FirehoseDelivery(client, STREAM, lake, Checkpoints(tmp_path / "d.json"), LocalDeadLetters(lake))
    KinesisProducer(kinesis, STREAM).put(recs[: len(recs) // 2])
    delivery.poll()
    client.calls.clear()
    for _ in range(5):
        delivery.poll()
    assert client.calls == Counter(get_records=2 * 5)
    KinesisProducer(kinesis, STREAM).put(recs[len(recs) // 2 :])
    delivery.poll()
    delivery.poll(flush=True)
    ids = [i for f in lake.glob("raw/dt=*/*.parquet") for i in pq.read_table(f)["record_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == len(recs)


class ClockPlacedClient(CountingClient):
    """kinesalite's behaviour at a shard's tip: an empty GetRecords returns a NextShardIterator
    placed by the server's clock, past any record whose sequence number is older but which was
    still being stored when the read ran. Such an iterator is marked here, and reading with it
    fails the test: a consumer must keep the iterator that continues after its last record."""

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if name != "get_records":
            return call

        def get_records(**kw: Any) -> Any:
            if kw["ShardIterator"].startswith("clock-placed:"):
                raise AssertionError("read with the iterator of an empty read: it may skip a record being stored")
            out = call(**kw)
            if not out["Records"] and out.get("NextShardIterator"):
                out = {**out, "NextShardIterator": "clock-placed:" + out["NextShardIterator"]}
            return out

        return get_records


def test_at_the_tip_the_speed_layer_keeps_the_iterator_after_its_last_record(kinesis: Any, tmp_path: Path) -> None:
    """The lost aggregate of a demo: never poll on with the iterator an empty read returned."""
    client = ClockPlacedClient(kinesis)
    seen: list[int] = []
    esm = _mapping(client, tmp_path, seen)
    _put(kinesis, 0, 30)
    for _ in range(3):  # at the tip, idle
        esm.drain()
    client.calls.clear()
    esm.drain()
    assert client.calls == Counter(get_records=2)  # still one read per shard when idle
    _put(kinesis, 30, 70)
    esm.drain()
    assert sorted(seen) == list(range(70))


def test_at_the_tip_the_delivery_keeps_the_iterator_after_its_last_record(kinesis: Any, tmp_path: Path) -> None:
    client = ClockPlacedClient(kinesis)
    lake = tmp_path / "lake"
    delivery = FirehoseDelivery(client, STREAM, lake, Checkpoints(tmp_path / "d.json"), LocalDeadLetters(lake))
    recs = night_records(sim_night(), strap_device="strap-1", bed_device="bed-1")[:200]
    KinesisProducer(kinesis, STREAM).put(recs[:100])
    for _ in range(3):
        delivery.poll()
    client.calls.clear()
    delivery.poll()
    assert client.calls == Counter(get_records=2)
    KinesisProducer(kinesis, STREAM).put(recs[100:])
    delivery.poll(flush=True)
    ids = [i for f in lake.glob("raw/dt=*/*.parquet") for i in pq.read_table(f)["record_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == len(recs)
