"""Device health: the Battery Service and status codecs, the collector's statuses, technical
alerts against the simulated faults' known times, and the lake's device_status view."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_layer.lake_schema import RAW_SCHEMA
from core.ble.device_status import (
    StatusSnapshot,
    decode_battery_level,
    decode_status,
    encode_status,
    hrm_contact,
    status_record,
)
from core.ble.hrm import HeartRateMeasurement, encode_hrm
from core.contract import DeviceStatus, from_wire, to_row, to_wire, validate
from core.errors import DecodeError
from core.live.alerts import AlertRules
from core.live.device_health import HealthTracker
from ingest.collector import Collector, DeviceTarget
from ingest.fake_ble import Drop, FakeBleWorld, FakePeripheral, load_recording, recording_lines
from ingest.simulated_devices import DeviceFaults, simulated_peripherals
from ingest.spool import Spool
from local.duckdb_sql import LocalSqlEngine
from speed_layer.processing import apply_records
from tests.conftest import T0_MS, record_until_played, sim_night

MIN = 60_000
#: statuses come a minute apart, each a notification or two after the minute
STEP = MIN + 5_000


@given(
    kind=st.sampled_from(["strap", "bed"]),
    connected=st.booleans(),
    notifications=st.integers(0, 2**32 - 1),
    last=st.none() | st.integers(946_684_800_000, 4_102_444_799_999),
    battery=st.none() | st.integers(0, 100),
    worn=st.none() | st.booleans(),
    rssi=st.none() | st.integers(-127, 20),
)
def test_status_payload_round_trips(
    kind: str,
    connected: bool,
    notifications: int,
    last: int | None,
    battery: int | None,
    worn: bool | None,
    rssi: int | None,
) -> None:
    snap = StatusSnapshot(kind, connected, notifications, last, battery, worn, rssi)
    assert decode_status(encode_status(snap)) == snap


def test_bad_battery_and_status_payloads_are_refused_by_name() -> None:
    assert decode_battery_level(b"\x57") == 87
    with pytest.raises(DecodeError, match="over 100"):
        decode_battery_level(b"\x65")
    with pytest.raises(DecodeError, match="1 byte"):
        decode_battery_level(b"")
    with pytest.raises(DecodeError, match="expected 17"):
        decode_status(b"\x01\x02")
    bad_version = b"\x02" + encode_status(StatusSnapshot("bed", True, 1))[1:]
    with pytest.raises(DecodeError, match="version 2"):
        decode_status(bad_version)
    assert hrm_contact(encode_hrm(HeartRateMeasurement(60, (), sensor_contact=True))) is True
    assert hrm_contact(encode_hrm(HeartRateMeasurement(0, (), sensor_contact=False))) is False
    assert hrm_contact(encode_hrm(HeartRateMeasurement(60))) is None
    assert hrm_contact(b"") is None


def test_a_status_record_passes_the_contract_and_the_wire() -> None:
    rec = status_record(
        StatusSnapshot("strap", True, 58, T0_MS - 900, 64, True), device_id="st", subject_id="s001", receive_ms=T0_MS
    )
    assert from_wire(to_wire(validate(rec))) == rec
    assert to_row(rec)["kind"] == "status" and to_row(rec)["battery_pct"] == 64


# ---------------------------------------------------------------- a night with faults, end to end

FAULTS = DeviceFaults(
    low_battery_pct=21.5, low_drain_pct_h=2.0, slip_after_min=20, slip_min=12, silence_after_min=40, silence_min=7
)


def _collected(tmp_path: Path, minutes: int = 60) -> tuple[list[Any], list[FakePeripheral], Collector]:
    peripherals = simulated_peripherals([sim_night()], drop_ms=0, faults=FAULTS)
    t_end = sim_night().t0_ms + minutes * MIN
    for p in peripherals:
        p.script = [it for it in p.script if isinstance(it, Drop) or it[0] < t_end]
    world = FakeBleWorld(peripherals)
    spool = Spool(tmp_path / "spool.sqlite", synchronous="NORMAL")
    collector = Collector(
        spool,
        [DeviceTarget(p.address, "s001", p.kind) for p in peripherals],
        backend=world.client_backend(),
        clock=world.clock_ms,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
    )
    asyncio.run(record_until_played(world, collector))
    spool.frame_all(end_of_stream=True)
    return [from_wire(e.data) for e in spool.pending(10**9, 10**12)], peripherals, collector


@pytest.fixture(scope="module")
def faulty_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], list[FakePeripheral], Collector]:
    return _collected(tmp_path_factory.mktemp("faults"))


def test_the_collector_reports_battery_wear_and_link_of_each_device(
    faulty_night: tuple[list[Any], list[FakePeripheral], Collector],
) -> None:
    records, peripherals, collector = faulty_night
    statuses = [r for r in records if isinstance(r, DeviceStatus)]
    strap = sorted((r for r in statuses if r.device_id == "strap-s001"), key=lambda r: r.event_time_ms)
    bed = sorted((r for r in statuses if r.device_id == "bed-s001"), key=lambda r: r.event_time_ms)
    assert len(strap) >= 55 and len(bed) >= 55  # a minute apart over an hour, plus connects and drops
    assert all(r.device_kind == "strap" for r in strap) and all(r.worn is None for r in bed)
    t0 = sim_night().t0_ms
    by_peripheral = {p.address: p for p in peripherals}
    for r in strap + bed:  # the battery read matches the device's own level then, to the percent
        truth = by_peripheral[r.device_id].battery_at(r.event_time_ms)
        assert r.battery_pct is not None and truth is not None and abs(r.battery_pct - truth) <= 1
    slip_a, slip_b = FAULTS.slip_window(t0)
    for r in strap:  # worn exactly outside the slip (statuses a notification or more inside it)
        if slip_a + 2_000 <= r.event_time_ms < slip_b:
            assert r.worn is False
        elif r.event_time_ms < slip_a or r.event_time_ms >= slip_b + 2_000:
            assert r.worn is True or r.last_notification_ms is None  # None: on connect, before a measurement
    quiet_a, quiet_b = FAULTS.silence_window(t0)
    down = [r for r in bed if not r.connected and r.event_time_ms < t0 + 59 * MIN]  # not the recording's end
    assert down and all(quiet_a - 2_000 <= r.event_time_ms <= quiet_b + 60_000 for r in down)
    assert collector.stats.battery_reads >= 2  # on each connect


def test_technical_alerts_fire_at_the_faults_known_times(
    faulty_night: tuple[list[Any], list[FakePeripheral], Collector],
) -> None:
    records, _, _ = faulty_night
    rules = AlertRules()
    docs = apply_records(records, {}, rules).docs
    alerts = [d for k, d in docs if k == "alerts" and d["category"] == "technical"]
    opened = {(a["device_id"], a["kind"]): a for a in alerts if a["status"] == "open"}
    closed = {(a["device_id"], a["kind"]): a for a in alerts if a["status"] == "closed"}
    t0 = sim_night().t0_ms
    slip_a, slip_b = FAULTS.slip_window(t0)
    quiet_a, quiet_b = FAULTS.silence_window(t0)
    # not worn: from the first status after the strap slipped (statuses a minute apart), raised 10 min on
    nw = opened[("strap-s001", "not_worn")]
    assert slip_a <= nw["start_ms"] <= slip_a + STEP and nw["raised_ms"] == nw["start_ms"] + rules.not_worn_s * 1000
    assert slip_b <= closed[("strap-s001", "not_worn")]["end_ms"] <= slip_b + STEP
    # battery low: from the first status at or after the strap's level reached 20 %
    low_from = FAULTS.battery_low_from(t0)
    bl = opened[("strap-s001", "battery_low")]
    assert low_from <= bl["start_ms"] <= low_from + STEP and bl["value"] <= 20 and bl["threshold"] == 20
    # silent: from the bed's last notification before it went out of range
    ds = opened[("bed-s001", "device_silent")]
    assert (
        quiet_a - 2_000 <= ds["start_ms"] <= quiet_a
        and ds["raised_ms"] == ds["start_ms"] + rules.device_silent_s * 1000
    )
    assert quiet_b <= closed[("bed-s001", "device_silent")]["end_ms"] <= quiet_b + 2 * MIN
    # the strap's own vitals saw the slip too (contact_lost, from its epochs, a minute on)
    cl = opened[("strap-s001", "contact_lost")]
    assert slip_a - 30_000 <= cl["start_ms"] <= slip_a + 30_000
    # nothing else: the bed keeps its battery, the strap never goes silent
    assert set(opened) == {
        ("strap-s001", "not_worn"),
        ("strap-s001", "battery_low"),
        ("strap-s001", "contact_lost"),
        ("bed-s001", "device_silent"),
    }
    status_docs = [d for k, d in docs if k == "status"]
    assert len(status_docs) == sum(isinstance(r, DeviceStatus) for r in records) >= 110


def test_health_alerts_are_the_same_however_the_statuses_are_batched(
    faulty_night: tuple[list[Any], list[FakePeripheral], Collector],
) -> None:
    records, _, _ = faulty_night
    statuses = [r for r in records if isinstance(r, DeviceStatus)]
    whole = apply_records(statuses, {}, AlertRules()).docs
    states: dict[str, Any] = {}
    pieces: list[Any] = []
    for i in range(0, len(statuses), 7):
        applied = apply_records(statuses[i : i + 7], states, AlertRules())
        pieces += applied.docs
        states = {**states, **applied.states}
    again = apply_records(statuses[:20], states, AlertRules())  # a redelivery: the same documents, no alert
    assert sorted(map(repr, pieces)) == sorted(map(repr, whole))
    assert not [d for k, d in again.docs if k == "alerts"] and len(again.behind) == 20
    ids = {r.record_id for r in statuses[:20]}
    assert sorted(d["doc_id"] for _, d in again.docs) == sorted(ids)


def test_a_device_handed_to_another_subject_closes_its_alerts_under_the_first() -> None:
    tracker = HealthTracker(AlertRules())
    low = StatusSnapshot("strap", True, 60, battery_pct=10)
    docs = tracker.observe(status_record(low, device_id="st", subject_id="s001", receive_ms=T0_MS))
    assert [(d["subject_id"], d["status"]) for d in docs] == [("s001", "open")]
    docs = tracker.observe(status_record(low, device_id="st", subject_id="s002", receive_ms=T0_MS + MIN))
    assert [(d["subject_id"], d["status"]) for d in docs] == [("s001", "closed"), ("s002", "open")]


def test_a_recording_keeps_its_battery(tmp_path: Path) -> None:
    (strap, _) = simulated_peripherals([sim_night()], drop_ms=0, faults=FAULTS)
    strap.script = strap.script[:30]
    path = tmp_path / "strap.jsonl"
    path.write_text("\n".join(recording_lines(strap)))
    back = load_recording(path)
    assert (back.battery_pct, back.battery_drain_pct_h) == (FAULTS.low_battery_pct, FAULTS.low_drain_pct_h)
    path.write_text(path.read_text().replace('"battery_pct": 21.5', '"battery_pct": 140'))
    with pytest.raises(Exception, match="battery_pct"):
        load_recording(path)


def test_the_lake_answers_device_status_in_sql(
    tmp_path: Path, faulty_night: tuple[list[Any], list[FakePeripheral], Collector]
) -> None:
    records, _, _ = faulty_night
    part = tmp_path / "raw" / "dt=2026-01-05"
    part.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([to_row(r) for r in records], schema=RAW_SCHEMA), part / "a.parquet")
    engine = LocalSqlEngine(tmp_path)
    rows = engine.query(
        "SELECT device_id, min(battery_pct) AS low, count(*) AS n, sum(CASE WHEN connected THEN 0 ELSE 1 END) AS down"
        " FROM sleepstack.device_status GROUP BY device_id ORDER BY device_id"
    )
    statuses = [r for r in records if isinstance(r, DeviceStatus)]
    for row in rows.to_dict("records"):
        mine = [r for r in statuses if r.device_id == row["device_id"]]
        assert row["n"] == len(mine)
        assert row["low"] == min(r.battery_pct for r in mine if r.battery_pct is not None)
        assert row["down"] == sum(not r.connected for r in mine)
    assert set(rows["device_id"]) == {"strap-s001", "bed-s001"}
    cols = engine.query("SELECT * FROM sleepstack.device_status LIMIT 0").columns.tolist()
    assert "battery_pct" in cols and "hr_bpm" not in cols and cols[-1] == "dt"


class _NoSlices(list[Any]):
    """A script that refuses to be sliced (a slice copies the rest of a night's script)."""

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            raise AssertionError("the script was copied")
        return super().__getitem__(index)


def test_the_battery_level_is_read_without_copying_the_script() -> None:
    """battery_at runs for every notification; copying the script there made a night's playback quadratic
    (the demo's collection went from about 20 s to 4 min)."""
    t0 = T0_MS
    script = _NoSlices([Drop(5_000), *((t0 + 1000 * i, b"\x00\x3c") for i in range(7200))])
    p = FakePeripheral("strap-x", "strap", script, battery_pct=50.0, battery_drain_pct_h=2.0)
    assert p.battery_at(t0) == 50
    assert p.battery_at(t0 + 3_600_000) == 48  # two percent an hour of recording time
    assert p.battery_at(None) == 50  # nothing played yet: the level at the first notification
