"""The collector through bleak's real BleakClient/BleakScanner over the fake backend."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest

from core.ble.bed_profile import BED_CLOCK_UUID
from core.contract import BedFrame, StrapSample, from_wire
from ingest.collector import Collector, DeviceTarget, scan
from ingest.fake_ble import Drop, FakeBleWorld, FakePeripheral, load_recording, recording_lines
from ingest.simulated_devices import MALFORMED_HRM, simulated_peripherals
from ingest.spool import Spool
from simulator.nights import night_records
from tests.conftest import record_until_played, sim_night, user_records


def _short_night_peripherals(minutes: int = 20, **kw: object) -> list[FakePeripheral]:
    ps = simulated_peripherals([sim_night()], drop_ms=0, **kw)  # type: ignore[arg-type]
    t_end = sim_night().t0_ms + minutes * 60_000
    for p in ps:
        p.script = [it for it in p.script if isinstance(it, Drop) or it[0] < t_end]
    return ps


async def _record(world: FakeBleWorld, collector: Collector) -> None:
    await record_until_played(world, collector)


def _collect(tmp_path: Path, peripherals: list[FakePeripheral]) -> tuple[Collector, Spool, FakeBleWorld]:
    world = FakeBleWorld(peripherals)
    spool = Spool(tmp_path / "spool.sqlite", synchronous="NORMAL")
    targets = [DeviceTarget(p.address, "s001") for p in peripherals]
    collector = Collector(spool, targets, backend=world.client_backend(), clock=world.clock_ms, backoff_base_s=0.001)
    asyncio.run(_record(world, collector))
    spool.frame_all(end_of_stream=True)
    return collector, spool, world


def _records(spool: Spool) -> list[StrapSample | BedFrame]:
    return [from_wire(e.data) for e in spool.pending(10**9, 10**12)]


def test_two_devices_at_once_give_the_simulators_records(tmp_path: Path) -> None:
    peripherals = _short_night_peripherals()
    collector, spool, _ = _collect(tmp_path, peripherals)
    got = {r.record_id: r for r in _records(spool)}
    t_end = sim_night().t0_ms + 20 * 60_000
    direct = night_records(sim_night(), strap_device="strap-s001", bed_device="bed-s001")
    complete = [r for r in direct if r.event_time_ms + 30_000 < t_end]
    assert len(complete) > 1000
    for r in complete:
        g = got[r.record_id]
        if isinstance(r, StrapSample):
            assert (g.hr_bpm, g.rr_ms, g.sensor_contact) == (r.hr_bpm, r.rr_ms, r.sensor_contact)
        else:
            assert g.samples == r.samples
    assert collector.stats.notifications == spool.counters()["received"] == sum(p.delivered for p in peripherals)
    assert collector.kinds == {"strap-s001": "strap", "bed-s001": "bed"}
    bed = next(p for p in peripherals if p.kind == "bed")
    assert [u for u, _ in bed.writes] == [BED_CLOCK_UUID]  # the clock is set on connect


def test_link_drops_reconnect_resubscribe_and_report_the_gap(tmp_path: Path) -> None:
    peripherals = _short_night_peripherals()
    for p in peripherals:
        n = len(p.script)
        p.script.insert(n // 3, Drop(5_000, refuse=2))
        p.script.insert(2 * n // 3, Drop(1_000, refuse=0))
    collector, spool, _ = _collect(tmp_path, peripherals)
    for p in peripherals:
        dev = collector.stats.per_device[p.address]
        assert dev["drops"] == 3  # two mid-stream, and the end of the recording
        assert dev["connects"] == 3  # re-connected and re-subscribed after each drop
        assert dev["failed_connects"] >= 2  # two refusals, then "not found" once the recording ends
        assert p.lost > 0
    bed = next(p for p in peripherals if p.kind == "bed")
    assert [u for u, _ in bed.writes] == [BED_CLOCK_UUID] * 3
    c = spool.counters()
    assert c["received"] == sum(p.delivered for p in peripherals)
    assert c["bed_gaps"] == 2
    assert c["bed_gap_samples"] == bed.lost * bed.samples_per_frame
    gaps = [r for r in _records(spool) if isinstance(r, BedFrame) and r.gap_samples]
    assert sum(r.gap_samples for r in gaps) == bed.lost * bed.samples_per_frame


def test_malformed_notifications_are_quarantined_and_the_collector_goes_on(tmp_path: Path) -> None:
    peripherals = _short_night_peripherals(malformed=True)
    collector, spool, _ = _collect(tmp_path, peripherals)
    assert [q["payload_hex"] for q in spool.quarantined()] == [p.hex() for p in MALFORMED_HRM]
    strap = next(p for p in peripherals if p.kind == "strap")
    assert collector.stats.per_device[strap.address]["drops"] == 1  # the end of the recording only
    assert spool.counters()["records"] == len(_records(spool))


def test_backoff_is_exponential_with_jitter() -> None:
    c = Collector(Spool.__new__(Spool), [], backoff_base_s=1.0, backoff_max_s=60.0)
    for attempt in range(10):
        caps = min(60.0, 2.0**attempt)
        assert all(0 <= c._backoff_s(attempt) <= caps for _ in range(50))


def test_scan_lists_devices_with_their_kind() -> None:
    world = FakeBleWorld(
        [
            FakePeripheral("AA:01", "strap", [], name="Polar H10", rssi=-50),
            FakePeripheral("AA:02", "bed", [], name="bed", rssi=-70),
        ]
    )
    found = asyncio.run(scan(0.01, backend=world.scanner_backend()))
    assert found == [
        {"address": "AA:01", "name": "Polar H10", "rssi": -50, "kind": "strap"},
        {"address": "AA:02", "name": "bed", "rssi": -70, "kind": "bed"},
    ]


def test_recordings_roundtrip_through_json_lines(tmp_path: Path) -> None:
    p = FakePeripheral("AA:03", "strap", [(1, b"\x00\x3c"), Drop(500, 2), (900, b"\x00\x3d")], name="h")
    path = tmp_path / "rec.jsonl"
    path.write_text("\n".join(recording_lines(p)))
    q = load_recording(path)
    assert (q.address, q.kind, q.script) == (p.address, p.kind, p.script)
    path.write_text('{"t_ms": 1}\n')
    with pytest.raises(ValueError, match="first line"):
        load_recording(path)


def test_clock_value_is_utc_ms(tmp_path: Path) -> None:
    world = FakeBleWorld(_short_night_peripherals(minutes=1))
    spool = Spool(tmp_path / "s.sqlite", synchronous="NORMAL")
    collector = Collector(
        spool, [DeviceTarget("bed-s001", "s001")], backend=world.client_backend(), clock=lambda: 1_767_651_000_123
    )
    for p in world.peripherals.values():
        if p.kind == "strap":
            p.finished = True
    asyncio.run(_record(world, collector))
    bed = world.peripherals["bed-s001"]
    assert struct.unpack("<Q", bed.writes[0][1]) == (1_767_651_000_123,)


@pytest.mark.integration
def test_collect_command_replays_a_recording_into_the_local_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from local.home import Home
    from local.kinesis import KinesaliteServer
    from local.kinesis import local_kinesis_client as kinesis_client
    from sleepstack.cli import main

    paths = []
    for p in _short_night_peripherals(minutes=5):
        p.script.insert(len(p.script) // 2, Drop(3_000, refuse=1))
        paths.append(tmp_path / f"{p.address}.jsonl")
        paths[-1].write_text("\n".join(recording_lines(p)))
    monkeypatch.setenv("SLEEPSTACK_HOME", str(tmp_path / "home"))
    stack = KinesaliteServer(Home(tmp_path / "home"))
    client = kinesis_client(stack.up(), "us-east-1")
    try:
        argv = ["collect", "--json", "--no-progress"]  # the recordings name their subject
        for path in paths:
            argv += ["--replay", str(path)]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert main(["collect", "--no-progress", *argv[3:]]) == 0  # again, as a person reads it: nothing left to play
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith("ble: notified=") and " -> records=" in line and " sent=" in line
        stream = user_records(client, "sleepstack-dev-ingest")
    finally:
        stack.down()
    assert summary["backlog"] == {"notifications": 0, "outbox": 0, "open_frames": 0}
    assert summary["collector"]["drops"] == 4  # one mid-stream per device, and each recording's end
    assert len(stream) == summary["spool"]["records"] == summary["spool"]["sent"]
    assert 0 < summary["sender"]["kinesis_records"] <= summary["sender"]["put_units"] < len(stream)
    kinds = [json.loads(r["Data"])["kind"] for r in stream]
    assert set(kinds) == {"strap", "bed", "status"}
    # each device reports on connect (twice: the drop), on each link loss, and every minute of its 5
    assert 4 * 2 <= kinds.count("status") <= 2 * (2 + 2 + 6)
