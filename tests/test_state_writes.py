"""Speed-layer state writes (ADR 0007): one write unit a state, old JSON still read,
unchanged states not written, and a crash between any two writes loses or duplicates nothing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from core.contract import to_wire
from core.contract.records import make_record_id
from core.errors import StateCodecError
from core.live.state_codec import decode_state, encode_state
from dead_letters import LocalDeadLetters
from local.event_source_mapping import LambdaContext
from local.live_store import LocalLiveStore
from local.state_store import LocalStateStore
from speed_layer.handler import SpeedLayerHandler
from speed_layer.processing import apply_records
from speed_layer.state_store import Lease, Persisted, StateStore, item_bytes
from tests.test_speed_layer import RULES, _event, _night

WRITE_UNIT_BYTES = 1024


def _dynamo_item(device: str, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The item DynamoStateStore writes (key, state, TTL), to size it as DynamoDB bills it."""
    return {"device_id": {"S": device}, "state": {"B": encode_state(device, state)}, "expires_at": {"N": "1767660570"}}


@pytest.fixture(scope="module")
def night_states() -> list[tuple[str, dict[str, Any]]]:
    """Every state the speed layer would write over 2.5 h of a night (strap and bed, one
    invocation a second as with a 1-s batching window), in JSON round trip as stored."""
    _, recs = _night(hours=2.5)
    states: dict[str, dict[str, Any]] = {}
    out: list[tuple[str, dict[str, Any]]] = []
    second: list[Any] = []
    for rec in [*recs, None]:
        if second and (rec is None or rec.event_time_ms // 1000 != second[0].event_time_ms // 1000):
            applied = apply_records(second, states, RULES)
            states = {**states, **json.loads(json.dumps(applied.states))}
            out.extend(applied.states.items())
            second = []
        if rec is not None:
            second.append(rec)
    return out


def test_every_state_of_a_night_fits_one_write_unit_and_round_trips(
    night_states: list[tuple[str, dict[str, Any]]],
) -> None:
    sizes: dict[str, list[int]] = {}
    old: dict[str, list[int]] = {}
    for device, state in night_states:
        assert decode_state(device, encode_state(device, state)) == state
        sizes.setdefault(device, []).append(item_bytes(_dynamo_item(device, state)))
        old.setdefault(device, []).append(len(json.dumps(state, separators=(",", ":"))))
    assert set(sizes) == {"strap-1", "bed-1"}
    assert max(max(v) for v in sizes.values()) <= WRITE_UNIT_BYTES
    assert max(old["strap-1"]) > 2 * WRITE_UNIT_BYTES  # the JSON form took three units at its largest
    # mid-night with open alerts: the states checked include raised runs still in the tracker
    assert any(r["raised"] for _, s in night_states for r in (s.get("alerts") or {})["runs"].values())


def test_a_worst_case_strap_state_fits_one_write_unit() -> None:
    """A full epoch at 150 bpm (2-3 RR a notification), contact flapping, an open alert
    of every strap kind and a health tracker with open technical runs."""
    device = "AA:BB:CC:DD:EE:FF"
    epoch_ms = 1_767_660_570_000
    rows = []
    for i in range(30):
        t_ms = epoch_ms + i * 1000 + 7
        device_ms = t_ms - 1234
        rid = make_record_id("strap", device, device_ms)
        rr = [400 + (i * 37) % 50 + 0.390625 * (i % 3), 401.3671875, 399.4140625][: 2 + i % 2]
        rows.append([t_ms, rid, 150 + i % 3, rr, i % 5 != 0, device_ms])
    run = {"start_ms": epoch_ms - 600_000, "end_ms": epoch_ms, "value": 151.25, "raised": True}
    state = {
        "v": 1,
        "device_id": device,
        "subject_id": "subject-0123456789abcdef",
        "source": "strap",
        "last_frame_ms": None,
        "open_epoch_ms": epoch_ms,
        "open": rows,
        "alerts": {"last_epoch_ms": epoch_ms - 30_000, "in_bed_s": 0, "runs": {"hr_high": run, "contact_lost": run}},
        "health": {
            "subject_id": "subject-0123456789abcdef",
            "last_ms": epoch_ms,
            "runs": {"battery_low": run, "disconnected": run},
        },
    }
    assert decode_state(device, encode_state(device, state)) == state
    assert item_bytes(_dynamo_item(device, state)) <= WRITE_UNIT_BYTES


def test_states_written_as_json_by_an_older_stack_decode_and_continue(tmp_path: Path) -> None:
    """A stack upgraded mid-night: the state table holds JSON text; the new handler reads it
    and produces what it would have from its own encoding."""
    _, recs = _night(hours=0.3)
    half = len(recs) // 2
    first = apply_records(recs[:half], {}, RULES)
    legacy = {d: json.loads(json.dumps(s)) for d, s in first.states.items()}
    for s in legacy.values():  # rows without the device time, as the older stack kept them
        s["open"] = [r[:5] for r in s["open"]]
    import sqlite3

    with sqlite3.connect(tmp_path / "state.sqlite") as older:  # the older stack's table, and what it wrote
        older.execute("CREATE TABLE device_state (device_id TEXT PRIMARY KEY, state TEXT NOT NULL)")
        older.executemany("INSERT INTO device_state VALUES (?, ?)", [(d, json.dumps(s)) for d, s in legacy.items()])
    older.close()
    db = LocalStateStore(tmp_path / "state.sqlite")  # adds the position column, keeps the rows
    assert db.get_many(legacy) == legacy
    assert {p.after_seq for p in db.get_positioned(legacy).values()} == {None}
    assert decode_state("strap-1", json.dumps(legacy["strap-1"]).encode()) == legacy["strap-1"]
    rest_old = apply_records(recs[half:], legacy, RULES)
    rest_new = apply_records(recs[half:], first.states, RULES)
    assert rest_old.docs == rest_new.docs
    db.put_many(rest_old.states)  # written back in the new form, rows kept as they were
    assert db.get_many(rest_old.states) == rest_old.states
    db.close()


def test_a_corrupt_stored_state_is_a_typed_error() -> None:
    with pytest.raises(StateCodecError, match="does not decode"):
        decode_state("d", b"\x02not zlib")
    with pytest.raises(StateCodecError, match="unknown device-state tag"):
        decode_state("d", b"\x07" + __import__("zlib").compress(b"{}"))


class CountingStates(StateStore):
    """A state store that counts what it is asked to write, and can crash on a chosen write."""

    def __init__(self, inner: LocalStateStore, crash_on: int | None = None) -> None:
        self.inner, self.crash_on, self.puts, self.written = inner, crash_on, 0, 0

    def get_many(self, device_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return self.inner.get_many(device_ids)

    def put_many(self, states: Mapping[str, dict[str, Any]]) -> None:
        self.puts += 1
        if self.puts == self.crash_on:
            raise RuntimeError("killed before the state write")
        self.inner.put_many(states)
        self.written += len(states)

    def delete_many(self, device_ids: Iterable[str]) -> int:
        return self.inner.delete_many(device_ids)

    def get_positioned(self, device_ids: Iterable[str]) -> dict[str, Persisted]:
        return self.inner.get_positioned(device_ids)

    def put_positioned(self, states: Mapping[str, Persisted]) -> None:
        self.inner.put_positioned(states)

    def renew_lease(self, shard: str, owner: str, counter: int, horizon: int | None) -> Lease | None:
        return self.inner.renew_lease(shard, owner, counter, horizon)

    def take_lease(self, shard: str, owner: str, horizon: int) -> tuple[Lease, Lease | None]:
        return self.inner.take_lease(shard, owner, horizon)


def _batches(seconds: int = 240, per: int = 20) -> list[list[bytes]]:
    _, recs = _night(hours=seconds / 3600)
    wire = [to_wire(r) for r in recs]
    return [wire[i : i + per] for i in range(0, len(wire), per)]


def test_unchanged_states_are_not_written(tmp_path: Path) -> None:
    batches = _batches()
    states = CountingStates(LocalStateStore(tmp_path / "state.sqlite"))
    handler = SpeedLayerHandler(
        LocalLiveStore(tmp_path / "live.sqlite"), states, LocalDeadLetters(tmp_path / "dlq"), rules=RULES
    )
    seq = 1000
    for batch in batches:
        handler(_event(batch, seq), LambdaContext())
        seq += len(batch)
    written = states.written
    assert written == handler.stats.state_writes > 0
    for batch in batches:  # the whole stream again (a replay): every record is behind, no state changes
        handler(_event(batch, seq), LambdaContext())
        seq += len(batch)
    assert states.written == written
    assert handler.stats.state_unchanged >= len(batches)


@pytest.mark.parametrize("crash_at", ["index", "state"])
def test_a_crash_between_any_two_writes_loses_and_duplicates_nothing(tmp_path: Path, crash_at: str) -> None:
    """Kill the invocation at every batch in turn, before its documents are stored or after
    them and before its states are; Lambda retries the batch (from the old state): the
    store ends identical to a run without crashes, and holds each document once."""
    batches = _batches(seconds=150, per=25)

    def run(name: str, crash: int | None) -> list[tuple[str, str, str]]:
        live = LocalLiveStore(tmp_path / name / "live.sqlite")
        states = CountingStates(
            LocalStateStore(tmp_path / name / "state.sqlite"), crash_on=crash if crash_at == "state" else None
        )
        handler = SpeedLayerHandler(live, states, LocalDeadLetters(tmp_path / name / "dlq"), rules=RULES)
        real_index, calls = live.index, [0]

        def index(docs: Any) -> Any:
            calls[0] += 1
            if crash_at == "index" and calls[0] == crash:
                raise RuntimeError("killed before the documents")
            return real_index(docs)

        live.index = index  # type: ignore[method-assign]
        seq = 1000
        for batch in batches:
            for _attempt in range(2):
                try:
                    handler(_event(batch, seq), LambdaContext())
                    break
                except RuntimeError:
                    continue  # the event source mapping retries the whole batch
            else:
                pytest.fail("the retry failed too")
            seq += len(batch)
        dump = live.dump()
        live.close()
        return dump

    reference = run("ref", None)
    assert len({(k, i) for k, i, _ in reference}) == len(reference) > 0
    for crash in range(1, len(batches) + 1, 3):
        assert run(f"crash-{crash}", crash) == reference, crash


def test_cost_bench_prices_the_documented_volumes_and_counts_what_the_handler_writes() -> None:
    from sleepstack.bench.costs import bill, state_volumes

    # docs/costs.md before ADR 0007: 37,200 state writes a bed-night at 2 WRU, one read each
    before = {"wru_before": 74_400, "wru_after": 37_200, "rru": 37_200}
    monthly = bill({"per_10h_bed_night": before})
    # 74,400 x 30 x 1,000 x $0.625/M + 37,200 x 30 x 1,000 x $0.125/M = $1,395 + $139.5
    assert abs(monthly["1000_beds"]["before"]["dynamodb_usd"] - 1534.5) <= 0.5
    assert monthly["1000_beds"]["after"]["dynamodb_usd"] == 697.5 + 139.5
    assert monthly["100_beds"]["before"]["per_bed_usd"] == round((250 + 153.45) / 100, 2)
    volumes = state_volumes(hours=0.25)
    per = volumes["per_10h_bed_night"]
    assert per["reads"] == per["writes_before"] >= per["writes_after"] == per["wru_after"]
    assert per["wru_before"] > per["writes_before"]  # JSON states of over 1 KB took two units
    assert volumes["largest_item_bytes"]["after"] <= WRITE_UNIT_BYTES < volumes["largest_item_bytes"]["before"]


def test_cost_bench_counts_epoch_writes_from_a_run_of_the_handler() -> None:
    """Epoch writes through the real handler over 15 minutes of a night: one lease write an
    invocation, a state write per device about every 30 s (its epoch), each one write unit."""
    from sleepstack.bench.costs import bill, epoch_write_volumes, state_volumes

    epoch = epoch_write_volumes(hours=0.25)
    assert epoch["lease_writes_per_invocation"] == 1.0
    per = epoch["per_10h_bed_night"]
    # two devices, 1,200 epochs each in 10 h (a few more: the first states, a status, the dirty flushes)
    assert 2 * 1_200 <= per["writes"] <= 2 * 1_200 * 1.1
    assert per["wru"] == per["writes"] and epoch["largest_item_bytes"] <= WRITE_UNIT_BYTES
    # the store is read only on a takeover or a device's first record: twice in the run, scaled to 10 h
    assert per["reads"] == round(2 * 10 / epoch["night_hours"])
    # priced: a bed-night's WRU x 30 x beds + a shard's 36,000 lease writes a night x 30 x shards + reads
    volumes = state_volumes(hours=0.25)
    monthly = bill(volumes, epoch)
    expected = (per["wru"] * 30 * 1_000 + 36_000 * 30 * 2) * 0.625e-6 + per["rru"] * 30 * 1_000 * 0.125e-6
    assert monthly["1000_beds"]["epoch_writes"]["dynamodb_usd"] == round(expected)
    assert monthly["1000_beds"]["epoch_writes"]["per_bed_usd"] <= 1.25
    assert monthly["100_beds"]["epoch_writes"]["per_bed_usd"] <= 3.00
