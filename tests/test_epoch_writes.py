"""State writes at epoch boundaries (ADR 0007): the cache under a shard lease, the rebuild
from the stream on a takeover, and kill tests showing the store ends identical to a run
that never crashed, through every crash point, retries, bisections, partial failures,
lost responses and two containers alternating on one shard."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.contract import Record, to_wire
from dead_letters import LocalDeadLetters
from local.event_source_mapping import LambdaContext, kinesis_event
from local.live_store import LocalLiveStore
from local.state_store import LocalStateStore
from speed_layer import handler as handler_module
from speed_layer.epoch_writes import EpochWriter, durable
from speed_layer.handler import SpeedLayerHandler
from speed_layer.processing import decode as real_decode
from speed_layer.replay import KinesisReplay, decoded
from speed_layer.state_store import Lease, LeaseTaken, Persisted
from tests.test_speed_layer import RULES, _night

SHARD = "shardId-000000000000"
ARN = "arn:aws:kinesis:local:0:stream/s"
Row = tuple[int, bytes, float]  # sequence number, data, arrival (s)


def _stream(minutes: float) -> list[Row]:
    """A strap and a bed sensor's records as one shard holds them, arriving at their event time."""
    _, recs = _night(hours=minutes / 60)
    return [(10_000 + 7 * i, to_wire(r), r.event_time_ms / 1000 + 0.4) for i, r in enumerate(recs)]


def _event(rows: list[Row]) -> dict[str, Any]:
    return kinesis_event(
        [
            {
                "PartitionKey": "k",
                "SequenceNumber": str(seq),
                "Data": data,
                "ApproximateArrivalTimestamp": datetime.fromtimestamp(t, tz=UTC),
            }
            for seq, data, t in rows
        ],
        shard_id=SHARD,
        arn=ARN,
        region="local",
    )


class Killer:
    """Raises at one armed point of the next invocation: before the documents, before the
    state write, or after it (before the invocation returns)."""

    def __init__(self, live: LocalLiveStore, states: LocalStateStore) -> None:
        self.armed: str | None = None
        real_index, real_put = live.index, states.put_positioned

        def index(docs: Any) -> Any:
            self._maybe("index")
            return real_index(docs)

        def put(written: Mapping[str, Persisted]) -> None:
            self._maybe("state")
            real_put(written)
            self._maybe("after_state")

        live.index = index  # type: ignore[method-assign]
        states.put_positioned = put  # type: ignore[method-assign,assignment]

    def _maybe(self, point: str) -> None:
        if self.armed == point:
            self.armed = None
            raise RuntimeError(f"killed at {point}")


def _replay_of(stream: list[Row]) -> Callable[[str, str, int, int], Iterator[tuple[int, Record]]]:
    def replay(source: str, shard: str, after: int, before: int) -> Iterator[tuple[int, Record]]:
        assert (source, shard) == (ARN, SHARD)
        return decoded((s, d) for s, d, _ in stream if after < s < before)

    return replay


def _run(
    tmp: Path,
    stream: list[Row],
    *,
    per: int = 10,
    kills: Mapping[int, str] | None = None,
    alternate: int = 0,
    epoch_writes: bool = True,
) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """Deliver ``stream`` as the event source mapping would; ``kills``: batch -> what goes wrong
    on its first attempt (a crash point, ``lost``: the response is lost after the handler returned,
    ``partial``: a record in the middle fails, ``fresh``: the container is replaced);
    ``alternate``: every so many batches the other container gets the shard."""
    tmp.mkdir()
    live, states = LocalLiveStore(tmp / "live.sqlite"), LocalStateStore(tmp / "state.sqlite")
    killer = Killer(live, states)
    replay = _replay_of(stream)
    writers: dict[str, EpochWriter] = {}

    def container(name: str, *, fresh: bool = False) -> SpeedLayerHandler:
        if fresh or name not in writers:
            writers[name] = EpochWriter(states, replay, owner=name + str(len(writers)))
        return SpeedLayerHandler(
            live,
            states,
            LocalDeadLetters(tmp / "dlq"),
            rules=RULES,
            epoch_writes=writers[name] if epoch_writes else None,
        )

    handlers = {"A": container("A"), "B": container("B")}
    writes = 0
    fail_seq: list[str] = []  # the record id of the one record to fail, once

    def flaky_decode(data: bytes) -> Any:
        rec = real_decode(data)
        if fail_seq and rec.record_id == fail_seq[0]:
            fail_seq.clear()
            raise RuntimeError("a transient failure of one record")
        return rec

    setattr(handler_module, "decode", flaky_decode)  # noqa: B010 - the handler's view of decode
    try:

        def deliver(rows: list[Row], who: str, attempt: int, trouble: str | None) -> None:
            nonlocal writes
            h = handlers[who]
            if trouble in ("index", "state", "after_state"):
                killer.armed = trouble
            if trouble == "partial":
                fail_seq.append(real_decode(rows[len(rows) // 2][1]).record_id)
            before = h.stats.state_writes
            try:
                resp = h(_event(rows), LambdaContext())
            except RuntimeError:
                # a function error: retried, bisected, by the other container (a takeover mid-epoch)
                other = "B" if who == "A" else "A"
                mid = len(rows) // 2
                for half in (rows[:mid], rows[mid:]) if mid else (rows,):
                    deliver(half, other, attempt + 1, None)
                return
            finally:
                killer.armed = None
            writes += h.stats.state_writes - before
            if trouble == "lost":  # the mapping never saw the response: the same batch again
                deliver(rows, who, attempt + 1, None)
                return
            failed = [int(f["itemIdentifier"]) for f in resp.get("batchItemFailures") or []]
            if failed:
                deliver([r for r in rows if r[0] >= min(failed)], who, attempt + 1, None)

        batches = [stream[i : i + per] for i in range(0, len(stream), per)]
        for i, rows in enumerate(batches):
            who = "B" if alternate and (i // alternate) % 2 else "A"
            trouble = (kills or {}).get(i)
            if trouble == "fresh":
                handlers[who] = container(who, fresh=True)
                trouble = None
            deliver(rows, who, 0, trouble)
    finally:
        setattr(handler_module, "decode", real_decode)  # noqa: B010
    dump = live.dump()
    live.close()
    takeovers = sum(w.stats.takeovers for w in writers.values())
    return dump, {"writes": writes, "takeovers": takeovers, "replayed": sum(w.stats.replayed for w in writers.values())}


@pytest.fixture(scope="module")
def stream() -> list[Row]:
    return _stream(minutes=4)


@pytest.fixture(scope="module")
def reference(stream: list[Row], tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """The store after a run of the handler that writes every changed state and never crashes."""
    dump, _ = _run(tmp_path_factory.mktemp("ref") / "r", stream, epoch_writes=False)
    assert len({(k, i) for k, i, _ in dump}) == len(dump) > 0
    return dump


def test_epoch_writes_give_the_same_store_with_far_fewer_state_writes(
    tmp_path: Path, stream: list[Row], reference: list[tuple[str, str, str]]
) -> None:
    old_dump, old = _run(tmp_path / "old", stream, per=3, epoch_writes=False)
    dump, new = _run(tmp_path / "new", stream, per=3)
    assert dump == old_dump == reference
    assert new["takeovers"] == 1 and new["replayed"] == 0  # the first invocation takes the lease
    # a strap's epoch closes every 30 s, a bed frame every 30 s: about 2 x 8 writes in 4 min
    # (plus each device's first), against one per device per 3-record batch before
    assert new["writes"] <= 2 * (4 * 2 + 2) + 2
    assert old["writes"] >= 5 * new["writes"]


KILL_POINTS = ["index", "state", "after_state", "lost", "partial", "fresh"]


@pytest.mark.parametrize("trouble", KILL_POINTS)
@pytest.mark.parametrize("alternate", [0, 3])
def test_every_crash_and_takeover_leaves_the_store_of_a_run_without_crashes(
    tmp_path: Path, stream: list[Row], reference: list[tuple[str, str, str]], trouble: str, alternate: int
) -> None:
    """Trouble at every 4th batch (its retry goes to the other container, so most crashes are
    followed by a takeover mid-epoch that rebuilds from the stream), with or without the two
    containers also alternating every 3 batches: the store equals the reference, each
    document once."""
    kills = dict.fromkeys(range(1, 200, 4), trouble)
    dump, n = _run(tmp_path / "run", stream, kills=kills, alternate=alternate)
    assert dump == reference
    if trouble in ("index", "state", "after_state") or alternate:
        assert n["takeovers"] > 3 and n["replayed"] > 0  # the rebuild path really ran


def test_a_takeover_rebuilds_exactly_the_cache_it_replaces(stream: list[Row], tmp_path: Path) -> None:
    """After every batch, a second container takes the shard over: its rebuilt states (stored
    states + the stream replayed from the lease's horizon) equal the first container's cache."""
    states = LocalStateStore(tmp_path / "state.sqlite")
    live = LocalLiveStore(tmp_path / "live.sqlite")
    replay = _replay_of(stream)
    a = EpochWriter(states, replay, owner="a")
    handler = SpeedLayerHandler(live, states, LocalDeadLetters(tmp_path / "dlq"), rules=RULES, epoch_writes=a)
    devices = {r.device_id for _, r in decoded((s, d) for s, d, _ in stream)}
    per = 30
    for i in range(0, len(stream) - per, per):
        handler(_event(stream[i : i + per]), LambdaContext())
        handler(_event(stream[i + per : i + per + 1]), LambdaContext())  # a renewal: the horizon is written
        nxt = stream[i + per + 1][0]
        b = EpochWriter(states, replay, owner=f"b{i}")
        cache = a._shards[SHARD].devices
        assert b.begin(ARN, SHARD, nxt, devices, RULES) == {d: cache[d].state for d in devices}
        # a lost the shard to b: its renewal fails at its next batch, and it takes the shard back
        stream_rows = stream[i + per + 1 : i + per + 2]
        handler(_event(stream_rows), LambdaContext())
        handler(_event(stream[i + per + 2 : i + per + per // 2]), LambdaContext())
    assert a.stats.takeovers > 3
    assert any(e.dirty_since_ms is not None for e in a._shards[SHARD].devices.values())  # ahead of the store


def test_durable_leaves_out_only_the_open_rows() -> None:
    state = {"v": 1, "open_epoch_ms": 30_000, "open": [[1, "id", 60, [1000.0], True, 2]], "alerts": None}
    assert durable(state) == {"v": 1, "open_epoch_ms": 30_000, "alerts": None}


def test_the_local_lease_is_a_conditional_write(tmp_path: Path) -> None:
    s = LocalStateStore(tmp_path / "state.sqlite")
    lease, old = s.take_lease(SHARD, "a", 9)  # a first lease: the horizon given
    assert (lease.owner, lease.counter, lease.horizon, old) == ("a", 1, 9, None)
    assert s.renew_lease(SHARD, "a", 1, 42) is not None
    assert s.renew_lease(SHARD, "a", 1, 43) is None  # a stale counter: not renewed, nothing written
    b, old = s.take_lease(SHARD, "b", 99)  # a takeover keeps the horizon
    assert (b.counter, b.horizon, old and old.owner) == (3, 42, "a")
    assert s.renew_lease(SHARD, "a", 2, 44) is None
    s.put_positioned({"d": Persisted({"x": 1}, 10**50)})  # a Kinesis sequence number: 56 digits
    assert s.get_positioned(["d"]) == {"d": Persisted({"x": 1}, 10**50)}
    assert s.delete_many(["d"]) == 1
    # an erasure takes every lease from its holder (which rebuilds), and keeps its horizon
    assert s.renew_lease(SHARD, "b", 3, 44) is None
    assert s.take_lease(SHARD, "c", 99)[1] == Lease("", 4, 42)
    s.close()


def test_the_dynamodb_lease_and_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from speed_layer.state_store import DynamoStateStore

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "device_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        s = DynamoStateStore(ddb, "state", clock=lambda: 1_000.0)
        lease, old = s.take_lease(SHARD, "a", 5)
        assert (lease.counter, lease.horizon, old) == (1, 5, None)
        assert s.renew_lease(SHARD, "a", 1, 10**50) == Lease("a", 2, 10**50)
        assert s.renew_lease(SHARD, "a", 1, 7) is None
        b, old = s.take_lease(SHARD, "b", 6)
        assert (b.owner, b.counter, b.horizon, old and old.owner) == ("b", 3, 10**50, "a")
        s.put_positioned({"strap-1": Persisted({"v": 9}, 10**55)})
        s.put_many({"bed-1": {"v": 8}})
        assert s.get_positioned(["strap-1", "bed-1"]) == {
            "strap-1": Persisted({"v": 9}, 10**55),
            "bed-1": Persisted({"v": 8}, None),
        }
        assert s.delete_many(["strap-1"]) == 1
        assert s.renew_lease(SHARD, "b", 3, 7) is None
        assert s.take_lease(SHARD, "c", 6)[1] == Lease("", 4, 10**50)


def test_a_lease_taken_meanwhile_is_a_typed_error(tmp_path: Path) -> None:
    s = LocalStateStore(tmp_path / "state.sqlite")
    s.take_lease(SHARD, "a", 0)
    real = s._db.execute

    def racing(sql: str, *args: Any) -> Any:  # another container's takeover lands between read and write
        if sql.startswith("UPDATE shard_lease SET owner"):
            real("UPDATE shard_lease SET counter = counter + 1")
        return real(sql, *args)

    s._db = type("Db", (), {"execute": staticmethod(racing), "in_transaction": property(lambda _: True)})()
    with pytest.raises(LeaseTaken, match="changed while it was taken over"):
        s.take_lease(SHARD, "b", 0)


def test_kinesis_replay_reads_after_a_position_up_to_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _, recs = _night(hours=0.01)
    with mock_aws():
        k = boto3.client("kinesis", region_name="us-east-1")
        k.create_stream(StreamName="s", ShardCount=1)
        seqs = []
        for r in recs[:12]:
            seqs.append(int(k.put_record(StreamName="s", Data=to_wire(r), PartitionKey="k")["SequenceNumber"]))
        k.put_record(StreamName="s", Data=b"not json", PartitionKey="k")  # quarantined when it came: skipped
        shard = k.list_shards(StreamName="s")["Shards"][0]["ShardId"]
        arn = k.describe_stream(StreamName="s")["StreamDescription"]["StreamARN"]
        got = list(KinesisReplay(k, page_limit=5)(arn, shard, seqs[2], seqs[9]))
        assert [s for s, _ in got] == seqs[3:9]
        assert [r.record_id for _, r in got] == [r.record_id for r in recs[3:9]]
        assert len(list(KinesisReplay(k)(arn, shard, seqs[2], 10**60))) == 9


def test_an_erasure_mid_night_rebuilds_the_others_and_resurrects_no_erased_state(
    tmp_path: Path, stream: list[Row]
) -> None:
    """A subject's device state is erased while a container holds the shard with the other
    device's open epoch in its cache: the holder rebuilds (the other device exactly, from the
    kept horizon) and folds no record of the erased device back into a state."""
    states = LocalStateStore(tmp_path / "state.sqlite")
    live = LocalLiveStore(tmp_path / "live.sqlite")
    writer = EpochWriter(states, _replay_of(stream), owner="a")
    handler = SpeedLayerHandler(live, states, LocalDeadLetters(tmp_path / "dlq"), rules=RULES, epoch_writes=writer)
    cut = 0
    while cut < 60 or writer._shards[SHARD].devices["strap-1"].dirty_since_ms is None:
        handler(_event(stream[cut : cut + 5]), LambdaContext())
        cut += 5
    before = {d: e.state for d, e in writer._shards[SHARD].devices.items()}
    assert states.get_many(["strap-1"])["strap-1"] != before["strap-1"]  # its open epoch: in the cache only
    assert states.delete_many(["bed-1"]) == 1
    rebuilt = EpochWriter(states, _replay_of(stream), owner="b").begin(
        ARN, SHARD, stream[cut][0], {"strap-1", "bed-1"}, RULES
    )
    assert rebuilt == {"strap-1": before["strap-1"]}


def test_a_takeover_right_after_a_first_lease_replays_its_batch(tmp_path: Path, stream: list[Row]) -> None:
    """A shard's first lease (none in the store: a new table, or one lost) is taken with the
    batch's start as its horizon, so a container that takes over before any renewal still
    replays the first holder's batch (its strap rows are in no stored state)."""
    states = LocalStateStore(tmp_path / "state.sqlite")
    live = LocalLiveStore(tmp_path / "live.sqlite")
    dlq = LocalDeadLetters(tmp_path / "dlq")
    first = EpochWriter(states, _replay_of(stream), owner="first")
    handler = SpeedLayerHandler(live, states, dlq, rules=RULES, epoch_writes=first)
    for i in range(0, 60, 10):
        handler(_event(stream[i : i + 10]), LambdaContext())
    states._db.execute("DELETE FROM shard_lease")
    cut = 60
    while True:  # a new container with no lease: a batch that leaves its strap ahead of the store
        fresh = EpochWriter(states, _replay_of(stream), owner=f"fresh{cut}")
        h = SpeedLayerHandler(live, states, dlq, rules=RULES, epoch_writes=fresh)
        h(_event(stream[cut : cut + 5]), LambdaContext())
        cut += 5
        if fresh._shards[SHARD].devices["strap-1"].dirty_since_ms is not None:
            break
        states._db.execute("DELETE FROM shard_lease")
    cache = {d: e.state for d, e in fresh._shards[SHARD].devices.items()}
    taken = EpochWriter(states, _replay_of(stream), owner="b").begin(ARN, SHARD, stream[cut][0], set(cache), RULES)
    assert taken == cache


@pytest.mark.integration
def test_two_containers_alternating_on_kinesalite_replay_from_the_real_stream(tmp_path: Path) -> None:
    """The local stack's pieces: records put into kinesalite, the local event source mapping,
    and two handlers wired as the stack wires them (epoch writes on, the replay reading
    kinesalite), taking the shard in turns every three invocations: the store equals the
    handler without epoch writes, and the takeovers really read the stream again."""
    from local.event_source_mapping import EventSourceMapping
    from local.shard_reader import Checkpoints
    from sleepstack import wiring
    from sleepstack.bench.fixtures import private_stream

    _, recs = _night(hours=4 / 60)

    def run(home: Path, epoch_writes: bool) -> tuple[list[tuple[str, str, str]], list[EpochWriter]]:
        with private_stream(home) as (settings, client, stream):
            for i in range(0, len(recs), 100):  # plain records, one a notification or frame
                entries = [{"Data": to_wire(r), "PartitionKey": r.device_id} for r in recs[i : i + 100]]
                assert client.put_records(StreamName=stream, Records=entries)["FailedRecordCount"] == 0
            live, states = LocalLiveStore(home / "live.sqlite"), LocalStateStore(home / "state.sqlite")
            letters = LocalDeadLetters(home / "dlq")
            cfg = dataclasses.replace(settings, epoch_writes=epoch_writes)
            handlers = [wiring.speed_layer_handler(cfg, store=live, states=states, letters=letters) for _ in range(2)]
            calls = [0]

            def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
                calls[0] += 1
                return handlers[(calls[0] // 3) % 2](event, context)

            mapping = EventSourceMapping(client, stream, invoke, Checkpoints(home / "cp.json"), letters, batch_size=10)
            mapping.drain()
            dump = live.dump()
            live.close()
            kept.extend(handlers)
            return dump, [h.epoch_writes for h in handlers if h.epoch_writes is not None]

    kept: list[SpeedLayerHandler] = []
    reference, none = run(tmp_path / "ref", epoch_writes=False)
    kept.clear()
    dump, writers = run(tmp_path / "epoch", epoch_writes=True)
    handlers = kept
    assert not none and len(writers) == 2
    assert dump == reference and len(reference) > 200
    assert all(w.stats.takeovers > 3 and w.stats.replayed > 0 for w in writers)
    assert sum(h.stats.takeovers for h in handlers) == sum(w.stats.takeovers for w in writers)
    assert sum(h.stats.replayed for h in handlers) == sum(w.stats.replayed for w in writers)
