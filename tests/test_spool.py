"""The durable spool and its sender: order, partial failures, endpoint down, kill -9, size bound."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.ble.bed_profile import BedNotification, encode_bed_frame
from core.ble.hrm import HeartRateMeasurement, encode_hrm
from core.contract import BedFrame, StrapSample, from_wire, make_record_id
from core.contract.kpl import deaggregate, is_aggregated
from ingest.aggregation import PUT_UNIT_BYTES, ShardMap, pack
from ingest.producer import KinesisProducer
from ingest.sender import SpoolSender
from ingest.simulated_devices import MALFORMED_HRM
from ingest.spool import Notification, OutboxEntry, Spool, SpoolFullError
from tests.conftest import STREAM, T0_MS, FlakyClient, read_stream, user_records

REPO = Path(__file__).resolve().parent.parent


def _strap_notes(n: int, device: str = "strap-1", t0: int = T0_MS) -> list[Notification]:
    return [
        Notification(
            device, "s001", "strap", t0 + 1000 * k, encode_hrm(HeartRateMeasurement(60 + k % 20, (1000.0,), True))
        )
        for k in range(n)
    ]


def _outbox_records(spool: Spool) -> list[StrapSample | BedFrame]:
    return [from_wire(e.data) for e in spool.pending(10**9, 10**12)]


def test_notifications_become_records_and_bad_payloads_are_quarantined(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    good = _strap_notes(10)
    bad = [Notification("strap-1", "s001", "strap", T0_MS + 500 + k, p) for k, p in enumerate(MALFORMED_HRM)]
    spool.append(good[:5] + bad + good[5:])
    assert spool.frame() == 14
    recs = _outbox_records(spool)
    assert [r.device_time_ms for r in recs] == [n.receive_ms for n in good]  # order kept, none lost
    q = spool.quarantined()
    assert [x["payload_hex"] for x in q] == [p.hex() for p in MALFORMED_HRM]
    assert all(x["reason"] for x in q)
    c = spool.counters()
    assert (c["received"], c["records"], c["quarantined"]) == (14, 10, 4)
    assert spool.backlog() == {"notifications": 0, "outbox": 10, "open_frames": 0}


def _bed_notes(n: int, t0: int, seq0: int = 0) -> list[Notification]:
    return [
        Notification(
            "bed-1",
            "s001",
            "bed",
            t0 + 500 * k + 50,
            encode_bed_frame(BedNotification(seq0 + k, t0 + 500 * k, 100, (7,) * 50)),
        )
        for k in range(n)
    ]


def test_open_frame_survives_a_restart_and_keeps_its_ingest_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    first = _bed_notes(20, T0_MS + 3_000)  # 10 s of samples, mid-epoch: stays open
    spool.append(first)
    spool.frame()
    spool.close()
    spool = Spool(tmp_path / "s.sqlite")  # collector restarted hours later
    spool.append(_bed_notes(2, T0_MS + 6 * 3_600_000, seq0=100))
    spool.frame()
    (frame, *_) = _outbox_records(spool)
    assert isinstance(frame, BedFrame)
    assert frame.ingest_time_ms == first[-1].receive_ms
    assert len(frame.samples) == 1000


def test_a_spool_from_an_older_collector_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE open_frames (device_id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, start_ms INTEGER NOT NULL,"
        " fs_hz INTEGER NOT NULL, samples BLOB NOT NULL, next_seq INTEGER NOT NULL, next_ms REAL NOT NULL,"
        " gap_samples INTEGER NOT NULL)"
    )
    db.execute(
        "INSERT INTO open_frames VALUES ('bed-1','s001',?,100,?,1,?,0)", (T0_MS, b"\x07\x00" * 50, T0_MS + 500.0)
    )
    db.commit()
    db.close()
    spool = Spool(path)
    spool.frame_all(end_of_stream=True)
    (frame,) = _outbox_records(spool)
    assert isinstance(frame, BedFrame)
    assert frame.ingest_time_ms == T0_MS + 500
    assert frame.samples == (7,) * 50


def test_sender_sends_in_order_and_retries_only_failed_entries(tmp_path: Path, kinesis: Any) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.append(_strap_notes(700))
    flaky = FlakyClient(kinesis)
    sender = SpoolSender(
        spool, KinesisProducer(flaky, STREAM, sleep=lambda s: None), sleep=lambda s: None, max_record_bytes=0
    )  # plain records: one Kinesis record each
    assert sender.drain() == 700
    assert flaky.calls[:3] == [500, 250, 200]  # the rejected half alone, then the rest
    assert spool.backlog()["outbox"] == 0
    assert spool.counters()["sent"] == 700
    stream = read_stream(kinesis, STREAM)
    ids = [json.loads(r["Data"])["record_id"] for r in stream]
    assert sorted(ids) == sorted(make_record_id("strap", "strap-1", T0_MS + 1000 * k) for k in range(700))


def test_sender_packs_each_device_into_aggregates_and_retries_only_rejected_ones(tmp_path: Path, kinesis: Any) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.append(_strap_notes(700))
    flaky = FlakyClient(kinesis)
    sender = SpoolSender(spool, KinesisProducer(flaky, STREAM, sleep=lambda s: None), sleep=lambda s: None)
    assert sender.drain() == 700
    kinesis_records = read_stream(kinesis, STREAM)
    assert all(is_aggregated(r["Data"]) for r in kinesis_records)
    assert all(len(r["Data"]) + len(r["PartitionKey"]) <= PUT_UNIT_BYTES for r in kinesis_records)
    assert flaky.calls == [len(kinesis_records), len(kinesis_records) // 2]  # the rejected half alone
    assert sender.stats.kinesis_records == sender.stats.put_units == len(kinesis_records) < 700 / 50
    times = [json.loads(r["Data"])["device_time_ms"] for r in user_records(kinesis, STREAM)]
    assert sorted(times) == [T0_MS + 1000 * k for k in range(700)]  # every record once


def test_a_device_lingers_until_its_aggregate_fills_or_its_time_is_up(tmp_path: Path, kinesis: Any) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    now = [0.0]
    sender = SpoolSender(spool, KinesisProducer(kinesis, STREAM), linger_ms=800, monotonic=lambda: now[0])
    spool.append(_strap_notes(3))
    assert sender.step() == 0  # three small records: not full, not old
    now[0] = 0.5
    spool.append(_strap_notes(2, t0=T0_MS + 3000))
    assert sender.step() == 0
    now[0] = 0.81  # the oldest has waited 0.81 s: the device's five go together
    assert sender.step() == 5
    assert sender.stats.kinesis_records == 1
    spool.append(_strap_notes(200, t0=T0_MS + 10_000))  # more than one PUT unit: sent at once
    assert sender.step() == 200
    assert sender.step(flush=True) == 0


def test_a_record_that_completes_an_epoch_is_sent_at_once_with_what_lingers(tmp_path: Path, kinesis: Any) -> None:
    """The linger delays the per-notification trace, never an epoch's close (ADR 7)."""
    from core.contract import to_wire
    from core.contract.epochs import EPOCH_MS
    from ingest.aggregation import epoch_of
    from sleepstack.bench.fixtures import simulated_night_records

    spool = Spool(tmp_path / "s.sqlite")
    now = [0.0]
    sender = SpoolSender(spool, KinesisProducer(kinesis, STREAM), linger_ms=10_000, monotonic=lambda: now[0])
    start = T0_MS - T0_MS % EPOCH_MS + EPOCH_MS - 3000  # three notifications before an epoch boundary
    spool.append(_strap_notes(3, t0=start))
    assert sender.step() == 0  # one epoch, young: they linger
    now[0] = 1.0
    spool.append(_strap_notes(1, t0=start + 3000))  # the first notification of the next epoch
    assert sender.step() == 4 and sender.stats.kinesis_records == 1
    bed = next(r for r in simulated_night_records("s", 0) if r.kind == "bed")
    strap = next(r for r in simulated_night_records("s", 0) if r.kind == "strap")
    assert epoch_of(to_wire(bed)) is None and epoch_of(b"not json") is None
    assert epoch_of(to_wire(strap)) == strap.event_time_ms - strap.event_time_ms % EPOCH_MS


def test_devices_bound_for_one_shard_share_aggregates_and_keep_their_order(tmp_path: Path, kinesis: Any) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    for k in range(6):
        spool.append(_strap_notes(5, device=f"strap-{k}"))
    now = [0.0]
    sender = SpoolSender(spool, KinesisProducer(kinesis, STREAM), linger_ms=800, monotonic=lambda: now[0])
    assert sender.step() == 0
    now[0] = 1.0
    assert sender.step() == 30
    shards = ShardMap.of_stream(kinesis, STREAM)
    records = read_stream(kinesis, STREAM)  # one aggregate per shard, each holding that shard's devices
    assert len(records) == len({shards.shard_of(f"strap-{k}") for k in range(6)}) == 2
    users = []
    for record in records:
        inside = deaggregate(record["Data"])
        assert record["PartitionKey"] == inside[0].partition_key
        assert {shards.shard_of(u.partition_key) for u in inside} == {shards.shard_of(record["PartitionKey"])}
        users += inside
    for k in range(6):
        mine = [json.loads(u.data)["device_time_ms"] for u in users if u.partition_key == f"strap-{k}"]
        assert mine == [T0_MS + 1000 * j for j in range(5)]


def test_the_shard_map_follows_hash_key_ranges_and_skips_closed_shards() -> None:
    half = 2**127
    shards = [
        {
            "ShardId": "old",
            "HashKeyRange": {"StartingHashKey": "0"},
            "SequenceNumberRange": {"EndingSequenceNumber": "1"},
        },
        {"ShardId": "lo", "HashKeyRange": {"StartingHashKey": "0"}, "SequenceNumberRange": {}},
        {"ShardId": "hi", "HashKeyRange": {"StartingHashKey": str(half)}, "SequenceNumberRange": {}},
    ]
    m = ShardMap.from_shards(shards)
    assert m.shard_ids == ("lo", "hi")
    for key in ("strap-1", "bed-7", "x"):
        h = int.from_bytes(hashlib.md5(key.encode(), usedforsecurity=False).digest(), "big")
        assert m.shard_of(key) == ("lo" if h < half else "hi")
    entries = [OutboxEntry(i, f"d{i % 4}", b"x" * 10) for i in range(40)]
    packed = pack(entries, shard_of=m.shard_of)
    assert {m.shard_of(p.partition_key) for p in packed} == {m.shard_of(f"d{i}") for i in range(4)}
    for p in packed:  # every user record of an aggregate hashes to the aggregate's shard
        assert {m.shard_of(u.partition_key) for u in deaggregate(p.data)} == {m.shard_of(p.partition_key)}


def test_endpoint_down_keeps_spooling_and_drains_in_order_when_back(tmp_path: Path, kinesis: Any) -> None:
    dead = boto3.client(
        "kinesis",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=0.2, read_timeout=0.2),
    )
    spool = Spool(tmp_path / "s.sqlite")
    waits: list[float] = []
    sender = SpoolSender(spool, KinesisProducer(dead, STREAM), sleep=waits.append, base_backoff_s=0.5)
    spool.append(_strap_notes(300))
    for _ in range(4):
        assert sender.step() == 0
        waits.append(sender.backoff_s())
    spool.append(_strap_notes(300, t0=T0_MS + 300_000))  # the collector keeps spooling
    assert sender.stats.failures == 4
    backlog = spool.backlog()
    assert (backlog["outbox"], backlog["notifications"]) == (300, 300)
    caps = [0.5 * 2**k for k in range(4)]
    assert all(0 <= w <= c for w, c in zip(waits, caps, strict=True))  # exponential, full jitter

    sender.producer.client = kinesis  # the endpoint is back
    assert sender.drain() == 600
    assert sender.stats.consecutive_failures == 0
    times = [json.loads(r["Data"])["device_time_ms"] for r in user_records(kinesis, STREAM)]
    assert times == sorted(times)  # one device = one partition key = one shard, in order
    assert len(times) == 600


def test_size_bound_warns_then_rejects_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=256 * 1024)
    caplog.set_level(logging.WARNING, "ingest.spool")
    with pytest.raises(SpoolFullError, match="full"):
        for k in range(2000):
            spool.append(_strap_notes(10, t0=T0_MS + 10_000 * k))
    assert any("% full" in r.message for r in caplog.records)
    assert spool.nearly_full
    assert spool.counters()["rejected_spool_full"] == 10
    # draining frees room: framed + acknowledged rows are deleted and their pages reused
    while spool.frame():
        pass
    spool.ack([e.id for e in spool.pending(10**9, 10**12)])
    spool.append(_strap_notes(10, t0=T0_MS - 100_000))


_CHILD = textwrap.dedent(
    """
    import sys, json
    from pathlib import Path
    from core.ble.hrm import HeartRateMeasurement, encode_hrm
    from ingest.spool import Notification, Spool
    spool = Spool(Path(sys.argv[1]))
    sent = open(sys.argv[2], "ab")
    t0 = int(sys.argv[3])
    k = 0
    while True:
        spool.append([Notification("strap-1", "s001", "strap", t0 + 1000 * k,
                                   encode_hrm(HeartRateMeasurement(60, (1000.0,), True)))])
        print(k, flush=True)  # k is committed
        k += 1
        if k % 7 == 0:
            spool.frame()
            batch = spool.pending(5)
            for e in batch:  # "Kinesis": durably written, then acknowledged
                sent.write(e.data + b"\\n")
            sent.flush()
            import os; os.fsync(sent.fileno())
            spool.ack([e.id for e in batch])
    """
)


@pytest.mark.slow
def test_kill_9_loses_nothing_that_was_committed(tmp_path: Path) -> None:
    db, sent = tmp_path / "s.sqlite", tmp_path / "sent.ndjson"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db), str(sent), str(T0_MS)], stdout=subprocess.PIPE, cwd=REPO, text=True
    )
    assert child.stdout is not None
    committed = -1
    for line in child.stdout:
        committed = int(line)
        if committed >= 400:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()

    spool = Spool(db)  # restart
    while spool.frame():
        pass
    after = {from_wire(e.data).device_time_ms for e in spool.pending(10**9, 10**12)}
    before = {from_wire(line).device_time_ms for line in sent.read_bytes().splitlines() if line}
    expected = {T0_MS + 1000 * k for k in range(committed + 1)}
    assert expected <= before | after  # every committed sample reaches the stream
    assert spool.counters()["received"] >= committed + 1


def _night_stream() -> list[Notification]:
    """Strap and two bed sensors over ~4 epochs, with a link gap, a silence past the idle limit and a restart."""
    bed_a = _bed_notes(70, T0_MS + 7_000)  # 35 s from mid-epoch
    bed_a += _bed_notes(30, T0_MS + 47_000, seq0=75)[0:30]  # 5 notifications lost: a gap
    late = T0_MS + 62_000
    bed_a += [  # contiguous in device time, but received 90 s after the last one: rule (c)
        Notification(n.device_id, n.subject_id, n.kind, n.receive_ms + 90_000, n.payload)
        for n in _bed_notes(20, late, seq0=105)
    ]
    bed_b = [
        Notification("bed-2", n.subject_id, n.kind, n.receive_ms + 130, n.payload)
        for n in _bed_notes(150, T0_MS + 1_000, seq0=900)
    ]
    stream = bed_a + bed_b + _strap_notes(90, t0=T0_MS + 300)
    return sorted(stream, key=lambda n: (n.receive_ms, n.device_id))


def _framed(spool: Spool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for e in spool.pending(10**9, 10**12):
        rid = json.loads(e.data)["record_id"]
        assert out.get(rid, e.data) == e.data, f"record id {rid} names two contents"
        out[rid] = e.data
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cuts=st.lists(st.integers(1, 120), min_size=1, max_size=12),
    limits=st.lists(st.integers(1, 60), min_size=1, max_size=12),
    events=st.lists(st.sampled_from(["none", "restart", "shutdown", "kill"]), min_size=1, max_size=12),
    pause=st.floats(0, 1),
)
def test_framing_is_a_pure_function_of_the_notifications(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int], limits: list[int], events: list[str], pause: float
) -> None:
    """Whatever the flush sizes, shutdowns, kills and restarts: the same frames, one content per id."""
    stream = _night_stream()
    ref = Spool(tmp_path_factory.mktemp("ref") / "s.sqlite", synchronous="NORMAL")
    ref.append(stream)
    ref.frame_all(end_of_stream=True)
    expected = _framed(ref)

    path = tmp_path_factory.mktemp("cut") / "s.sqlite"
    spool = Spool(path, synchronous="NORMAL")
    i = 0
    for k, cut in enumerate(cuts):
        chunk = stream[i : i + cut]
        i += len(chunk)
        spool.append(chunk)
        spool.frame(limits[k % len(limits)])
        event = events[k % len(events)]
        if event == "shutdown" and chunk:  # the collector stops: its clock is between this and the next receipt
            nxt = stream[i].receive_ms if i < len(stream) else chunk[-1].receive_ms + 10**6
            spool.frame_all(now_ms=int(chunk[-1].receive_ms + pause * (nxt - chunk[-1].receive_ms)))
        if event in ("restart", "shutdown", "kill"):  # kill: no framing at all, the process just ends
            spool.close()
            spool = Spool(path, synchronous="NORMAL")
    spool.append(stream[i:])
    spool.frame_all(end_of_stream=True)
    assert _framed(spool) == expected
