"""Producer, event-source poller, handler and Firehose delivery against moto's Kinesis."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_layer.lake_schema import RAW_SCHEMA
from batch_layer.raw_landing import firehose_transform, partition_keys
from core.contract import to_row, to_wire
from dead_letters import LocalDeadLetters
from ingest.producer import KinesisProducer, ProducerError
from local.compaction import compact_partition
from local.event_source_mapping import EventSourceMapping
from local.firehose import FirehoseDelivery, render_prefix
from local.live_store import LocalLiveStore
from local.shard_reader import Checkpoints
from local.state_store import LocalStateStore
from simulator.nights import night_records
from speed_layer.handler import SpeedLayerHandler
from tests.conftest import STREAM, FlakyClient, aggregate_one, read_stream, sim_night


def _records(minutes: int = 6) -> list[Any]:
    recs = night_records(sim_night(), strap_device="strap-1", bed_device="bed-1")
    t0 = recs[0].event_time_ms
    return [r for r in recs if r.event_time_ms < t0 + minutes * 60_000]


def test_producer_retries_only_failed_entries(kinesis: Any) -> None:
    recs = _records(2)
    flaky = FlakyClient(kinesis)
    prod = KinesisProducer(flaky, STREAM, sleep=lambda s: None)
    assert prod.put(recs, max_record_bytes=0) == len(recs)  # plain: one Kinesis record each
    assert flaky.calls[1] == len(recs[:500]) // 2  # only the rejected half was resent
    assert prod.stats.retried_entries == len(recs[:500]) // 2
    assert len(read_stream(kinesis, STREAM)) == len(recs)


def test_producer_splits_by_count_and_bytes() -> None:
    calls: list[int] = []

    class Sink:
        def put_records(self, **kw: Any) -> dict[str, Any]:
            calls.append(len(kw["Records"]))
            assert sum(len(r["Data"]) + len(r["PartitionKey"]) for r in kw["Records"]) <= 5 * 1024 * 1024
            return {"FailedRecordCount": 0, "Records": [{}] * len(kw["Records"])}

    prod = KinesisProducer(Sink(), STREAM)
    assert prod.put_encoded([("k", b"x" * 10)] * 1201) == 1201
    assert calls == [500, 500, 201]
    calls.clear()
    prod.put_encoded([("k", b"x" * 900_000)] * 12)
    assert max(calls) == 5
    with pytest.raises(ProducerError):
        prod.put_encoded([("k", b"x" * (1 << 20))])


def _speed_layer(
    tmp: Path, client: Any, batch_size: int, name: str
) -> tuple[LocalLiveStore, SpeedLayerHandler, EventSourceMapping]:
    store = LocalLiveStore(tmp / name / "live.sqlite")
    dlq = LocalDeadLetters(tmp / name / "dlq")
    handler = SpeedLayerHandler(store, LocalStateStore(tmp / name / "state.sqlite"), dlq)
    esm = EventSourceMapping(client, STREAM, handler, Checkpoints(tmp / name / "ckpt.json"), dlq, batch_size=batch_size)
    return store, handler, esm


def _dump(store: LocalLiveStore) -> list[tuple[str, str, str]]:
    return store.dump()


def test_speed_layer_output_is_batch_size_invariant_and_replay_safe(kinesis: Any, tmp_path: Path) -> None:
    recs = _records(4)
    KinesisProducer(kinesis, STREAM).put(recs)
    KinesisProducer(kinesis, STREAM).put_encoded([("bad", b"{}")])
    outputs = []
    for bs in (1, 7, 100, 10_000):
        store, handler, esm = _speed_layer(tmp_path, kinesis, bs, f"bs{bs}")
        esm.drain()
        outputs.append(_dump(store))
        assert handler.stats.quarantined == 1
        assert store.distinct_record_ids() == len(recs)
    assert all(o == outputs[0] for o in outputs[1:])
    # deliver everything a second time (checkpoint lost): documents are overwritten, not duplicated
    store, _, esm = _speed_layer(tmp_path, kinesis, 100, "bs100")
    (tmp_path / "bs100" / "ckpt.json").unlink()
    esm.drain()
    assert _dump(store) == outputs[0]


def test_poller_checkpoints_at_lowest_failure_and_gives_up_after_max_retries(kinesis: Any, tmp_path: Path) -> None:
    KinesisProducer(kinesis, STREAM).put_encoded([("one-shard", json.dumps({"i": i}).encode()) for i in range(10)])
    seen: list[list[int]] = []
    poison = 6

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        items = [
            (r["kinesis"]["sequenceNumber"], json.loads(__import__("base64").b64decode(r["kinesis"]["data"])))
            for r in event["Records"]
        ]
        seen.append([v["i"] for _, v in items])
        return {"batchItemFailures": [{"itemIdentifier": s} for s, v in items if v["i"] == poison]}

    dlq = LocalDeadLetters(tmp_path / "dlq")
    ckpt = Checkpoints(tmp_path / "ckpt.json")
    esm = EventSourceMapping(kinesis, STREAM, handler, ckpt, dlq, batch_size=10, max_retries=2)
    esm.drain()
    assert seen[0] == list(range(10))
    assert seen[1:] == [list(range(poison, 10))] * 2  # retried from the lowest failed record
    (letter,) = dlq.read_all()
    assert letter["requestContext"]["condition"] == "ReportedBatchItemFailures"
    assert letter["KinesisBatchInfo"]["batchSize"] == 10 - poison
    esm.drain()  # checkpoint moved past the poison batch: nothing is redelivered
    assert len(seen) == 3


def test_poller_bisects_on_function_error(kinesis: Any, tmp_path: Path) -> None:
    KinesisProducer(kinesis, STREAM).put_encoded([("k", json.dumps({"i": i}).encode()) for i in range(8)])
    sizes: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        sizes.append(len(event["Records"]))
        if any(b'"i": 3' in __import__("base64").b64decode(r["kinesis"]["data"]) for r in event["Records"]):
            raise RuntimeError("boom")
        return {"batchItemFailures": []}

    esm = EventSourceMapping(
        kinesis,
        STREAM,
        handler,
        Checkpoints(tmp_path / "c.json"),
        LocalDeadLetters(tmp_path / "dlq"),
        batch_size=8,
        max_retries=3,
    )
    stats = esm.drain()
    assert sizes[:3] == [8, 4, 2] and stats.bisections >= 3
    assert stats.sent_to_on_failure == 1 and stats.records_delivered == 8


def test_prefix_expressions() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 5, 23, 4, 5, tzinfo=UTC)
    assert (
        render_prefix("raw/dt=!{partitionKeyFromQuery:dt}/h=!{timestamp:HH}/", arrival=at, keys={"dt": "2026-01-05"})
        == "raw/dt=2026-01-05/h=23/"
    )
    assert (
        render_prefix(
            "e/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
            arrival=at,
            keys={},
            error_type="format-conversion-failed",
        )
        == "e/format-conversion-failed/2026/01/05/"
    )
    with pytest.raises(KeyError):
        render_prefix("!{partitionKeyFromQuery:nope}", arrival=at, keys={})


def test_delivery_lands_every_valid_record_once_and_quarantines_the_rest(kinesis: Any, tmp_path: Path) -> None:
    recs = _records(3)
    KinesisProducer(kinesis, STREAM).put(recs)
    KinesisProducer(kinesis, STREAM).put_encoded([("bad", b"nope")])
    lake = tmp_path / "lake"

    def deliver() -> None:
        FirehoseDelivery(
            kinesis, STREAM, lake, Checkpoints(tmp_path / "d.json"), LocalDeadLetters(lake), buffer_bytes=200_000
        ).drain()

    deliver()
    files = sorted(lake.glob("raw/dt=*/*.parquet"))
    ids = [i for f in files for i in pq.read_table(f, columns=["record_id"])["record_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == len(recs) and len(files) > 1
    (err,) = list(lake.glob("errors/format-conversion-failed/*/*/*/*.json"))
    assert json.loads(err.read_text())["field"] == "<record>"
    (tmp_path / "d.json").unlink()  # redelivery after a lost checkpoint overwrites the same objects
    deliver()
    assert sorted(lake.glob("raw/dt=*/*.parquet")) == files


def test_delivery_unpacks_aggregates_and_lands_v1_and_v2_as_the_same_rows(kinesis: Any, tmp_path: Path) -> None:
    recs = _records(2)
    bed = [r for r in recs if r.kind == "bed"]
    strap = [r for r in recs if r.kind == "strap"]
    good = [to_wire(r, version=1) for r in strap[:20]] + [b'{"kind":"strap"}'] + [to_wire(r) for r in strap[20:]]
    corrupt = aggregate_one("strap-1", [to_wire(r) for r in strap[:3]])[:-5]
    entries = [("strap-1", aggregate_one("strap-1", good)), ("strap-1", corrupt)]
    entries += [("bed-1", to_wire(r, version=1)) for r in bed] + [
        ("bed-1", aggregate_one("bed-1", [to_wire(r) for r in bed]))
    ]
    KinesisProducer(kinesis, STREAM).put_encoded(entries)
    lake = tmp_path / "lake"
    delivery = FirehoseDelivery(kinesis, STREAM, lake, Checkpoints(tmp_path / "d.json"), LocalDeadLetters(lake))
    delivery.drain()
    assert delivery.stats.records == len(strap) + 2 * len(bed) and delivery.stats.errors == 2
    (conversion,) = lake.glob("errors/format-conversion-failed/*/*/*/*.json")
    assert json.loads(conversion.read_text())["source"]["subSequenceNumber"] == 20
    (processing,) = lake.glob("errors/processing-failed/*/*/*/*.json")
    assert json.loads(processing.read_text())["field"] == "<aggregate>"
    rows = [row for f in lake.glob("raw/dt=*/*.parquet") for row in pq.read_table(f).to_pylist()]
    assert {r["schema_version"] for r in rows} == {2}
    # each bed frame came twice, v1 plain and v2 in an aggregate: as the same row
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["record_id"], []).append(row)
    assert sorted(by_id) == sorted(r.record_id for r in strap + bed)
    assert all(len(v) == 2 and v[0] == v[1] for k, v in by_id.items() if k in {r.record_id for r in bed})


def test_delivery_compacts_a_trickle_into_a_few_files(kinesis: Any, tmp_path: Path) -> None:
    recs = _records(3)
    lake = tmp_path / "lake"
    delivery = FirehoseDelivery(
        kinesis, STREAM, lake, Checkpoints(tmp_path / "d.json"), LocalDeadLetters(lake), buffer_bytes=20_000
    )
    for k in range(0, len(recs), 15):  # records trickle in between polls
        KinesisProducer(kinesis, STREAM).put(recs[k : k + 15])
        delivery.drain()
    files = sorted(lake.glob("raw/dt=*/*.parquet"))
    assert delivery.stats.objects > 10 and delivery.stats.compacted > 0
    assert len(files) <= 2 * len(list(lake.glob("raw/dt=*"))) * (delivery.compact_min_files + 1)
    ids = [i for f in files for i in pq.read_table(f, columns=["record_id"])["record_id"].to_pylist()]
    assert sorted(ids) == sorted(r.record_id for r in recs)  # nothing lost, nothing doubled


def test_compaction_drops_redelivered_duplicates_and_reruns_cleanly(tmp_path: Path) -> None:
    rows = [to_row(r) for r in _records(3)]
    part = tmp_path / "dt=2026-01-05"
    part.mkdir()
    for k in range(0, len(rows), 20):
        pq.write_table(pa.Table.from_pylist(rows[k : k + 30], schema=RAW_SCHEMA), part / f"f{k:04d}.parquet")
    stats = compact_partition(part, min_files=2)
    assert stats.files_after == 1 and stats.rows == len(rows) and stats.duplicates_dropped > 0
    (merged,) = part.glob("*.parquet")
    table = pq.read_table(merged).to_pandas()
    assert table["record_id"].is_unique and set(table["record_id"]) == {r["record_id"] for r in rows}
    assert table.equals(table.sort_values(["subject_id", "event_time_ms"], kind="stable"))
    assert compact_partition(part, min_files=2).files_after == 1  # nothing left to do


def test_the_firehose_transform_lands_v1_and_v2_as_the_same_row_and_fails_bad_records() -> None:
    recs = _records(1)
    bed = next(r for r in recs if r.kind == "bed")
    datas = [to_wire(bed, version=1), to_wire(bed), b'{"kind":"bed","schema_version":2}']
    event = {"records": [{"recordId": str(i), "data": base64.b64encode(d).decode()} for i, d in enumerate(datas)]}
    out = firehose_transform(event)["records"]  # what sleepstack.lambda_entry.firehose_transform_handler returns
    assert [r["recordId"] for r in out] == ["0", "1", "2"]
    assert [r["result"] for r in out] == ["Ok", "Ok", "ProcessingFailed"]
    rows = [json.loads(base64.b64decode(r["data"])) for r in out[:2]]
    assert rows[0] == rows[1] == json.loads(json.dumps(to_row(bed)))
    assert rows[0]["samples"][:3] == list(bed.samples[:3])
    assert out[0]["metadata"]["partitionKeys"]["dt"] == partition_keys(bed)["dt"]
    assert out[2]["data"] == event["records"][2]["data"]


def test_a_poison_aggregate_goes_to_the_on_failure_destination_and_its_neighbours_flow(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strap = [r for r in _records(2) if r.kind == "strap"]
    wires = [to_wire(r) for r in strap]
    poison = wires[15]
    aggregates = [aggregate_one("strap-1", wires[k : k + 10]) for k in range(0, 30, 10)]
    kinesis.create_stream(StreamName="s1", ShardCount=1)
    KinesisProducer(kinesis, "s1").put_encoded([("strap-1", a) for a in aggregates])

    import speed_layer.handler as mod

    real = mod.decode

    def decode(data: bytes) -> Any:
        if data == poison:
            raise RuntimeError("a bug, not bad input")  # fails every delivery
        return real(data)

    monkeypatch.setattr(mod, "decode", decode)
    store = LocalLiveStore(tmp_path / "live.sqlite")
    dlq = LocalDeadLetters(tmp_path / "dlq")
    handler = SpeedLayerHandler(store, LocalStateStore(tmp_path / "state.sqlite"), dlq)
    esm = EventSourceMapping(kinesis, "s1", handler, Checkpoints(tmp_path / "c.json"), dlq, max_retries=1)
    esm.drain()
    (letter,) = dlq.read_all()
    assert letter["requestContext"]["condition"] == "ReportedBatchItemFailures"
    assert letter["KinesisBatchInfo"]["batchSize"] == 2  # the poison aggregate and the one after it
    assert store.count("samples") == 10  # the first aggregate's records
    assert handler.stats.quarantined == 0
