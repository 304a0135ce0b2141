"""Health data stays private: no identifiers or payload bytes in logs, owner-only files."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.ble.hrm import HeartRateMeasurement, encode_hrm
from dead_letters import LocalDeadLetters
from ingest.collector import Collector, DeviceTarget
from ingest.fake_ble import Drop, FakeBleWorld, FakePeripheral, recording_lines
from ingest.simulated_devices import MALFORMED_HRM
from ingest.spool import Spool
from local.event_source_mapping import LambdaContext, kinesis_event
from local.live_store import LocalLiveStore
from local.state_store import LocalStateStore
from speed_layer.handler import SpeedLayerHandler
from tests.conftest import T0_MS, record_until_played

SUBJECT = "JOHN-DOE-MRN-12345"
ADDRESS = "AA:BB:CC:DD:EE:FF"
#: a record whose identifiers break the contract, so its error would quote them
BAD_RECORD = json.dumps(
    {
        "kind": "strap",
        "schema_version": 1,
        "device_id": "JOHN DOE's strap",
        "subject_id": SUBJECT + " (MRN)",
        "device_time_ms": T0_MS,
        "event_time_ms": T0_MS,
        "ingest_time_ms": T0_MS + 100,
        "hr_bpm": 300,
        "rr_ms": [],
        "sensor_contact": True,
        "energy_kj": None,
    }
).encode()
SECRETS = (SUBJECT, ADDRESS, "JOHN DOE", BAD_RECORD[:24].hex(), *(p.hex() for p in MALFORMED_HRM if p))


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO):
        yield caplog


def _assert_private(text: str) -> None:
    leaked = [s for s in SECRETS if s.lower() in text.lower()]
    assert not leaked, f"logs carry {leaked}"


def test_collector_logs_name_no_device_subject_or_payload(tmp_path: Path, all_logs: pytest.LogCaptureFixture) -> None:
    script: list = [(T0_MS + 1000 * k, encode_hrm(HeartRateMeasurement(60, (1000.0,), True))) for k in range(30)]
    script[10:10] = [(T0_MS + 10_500 + k, p) for k, p in enumerate(MALFORMED_HRM)]
    script.insert(20, Drop(2_000, refuse=2))
    world = FakeBleWorld([FakePeripheral(ADDRESS, "strap", script)])
    spool = Spool(tmp_path / "spool.sqlite")
    collector = Collector(spool, [DeviceTarget(ADDRESS, SUBJECT)], backend=world.client_backend(), clock=world.clock_ms)

    asyncio.run(record_until_played(world, collector))
    spool.frame_all(end_of_stream=True)
    assert spool.counters()["quarantined"] == len(MALFORMED_HRM)
    assert collector.stats.drops >= 1 and "link lost" in all_logs.text and "quarantined" in all_logs.text
    _assert_private(all_logs.text)
    # the details are kept where the data is: the spool's quarantine table
    assert {q["device_id"] for q in spool.quarantined()} == {ADDRESS}


def test_speed_layer_logs_name_no_subject_or_payload(tmp_path: Path, all_logs: pytest.LogCaptureFixture) -> None:
    letters = LocalDeadLetters(tmp_path / "dlq")
    handler = SpeedLayerHandler(
        LocalLiveStore(tmp_path / "live.sqlite"), LocalStateStore(tmp_path / "st.sqlite"), letters
    )
    rows = [
        {
            "PartitionKey": ADDRESS,
            "SequenceNumber": "1",
            "Data": BAD_RECORD,
            "ApproximateArrivalTimestamp": datetime.now(UTC),
        }
    ]
    event = kinesis_event(rows, shard_id="shardId-000000000000", arn="arn:aws:kinesis:local:0:stream/s", region="local")
    handler(event, LambdaContext())
    assert handler.stats.quarantined == 1 and "quarantined" in all_logs.text
    _assert_private(all_logs.text)
    (letter,) = letters.read_all()  # the reason and the payload go to the dead letter only
    assert base64.b64decode(letter["payload_b64"]) == BAD_RECORD and letter["reason"]


@pytest.mark.integration
def test_files_under_home_are_owner_only_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, all_logs: pytest.LogCaptureFixture
) -> None:
    from sleepstack.cli import main

    script: list = [(T0_MS + 1000 * k, encode_hrm(HeartRateMeasurement(60, (1000.0,), True))) for k in range(20)]
    recording = tmp_path / "strap.jsonl"
    recording.write_text("\n".join(recording_lines(FakePeripheral(ADDRESS, "strap", script))))
    home = tmp_path / "home"
    monkeypatch.setenv("SLEEPSTACK_HOME", str(home))
    old = os.umask(0o022)
    try:
        assert main(["stack", "up"]) == 0
        # the recording names no subject: the registry says whose the strap is
        assert main(["subjects", "add", SUBJECT, "--enrolled", "2020-01-01T00:00+00:00"]) == 0
        assert main(["devices", "add", ADDRESS, "--kind", "strap"]) == 0
        assert main(["assign", ADDRESS, SUBJECT, "--from", "2020-01-01T00:00+00:00"]) == 0
        assert main(["collect", "--replay", str(recording)]) == 0
    finally:
        main(["stack", "down"])
        os.umask(old)
    paths = [home, *home.rglob("*")]
    assert any(p.name == "collector.sqlite" for p in paths)
    loose = [f"{p} {stat.filemode(p.stat().st_mode)}" for p in paths if p.stat().st_mode & 0o077]
    assert not loose, f"readable by others: {loose}"
    _assert_private(all_logs.text)


def test_notifier_logs_name_no_subject_device_label_or_recipient(
    tmp_path: Path, all_logs: pytest.LogCaptureFixture
) -> None:
    from core.live.alerts import alert_id
    from core.notify import parse_routes
    from local.outbox import Outbox
    from sleepstack.notify.channels import ChannelError
    from sleepstack.notify.engine import Notifier

    class Channel:
        def __init__(self, fail: bool) -> None:
            self.fail, self.sent = fail, 0

        def send(self, address: str, key: str, message: dict[str, object]) -> None:
            if self.fail:
                raise ChannelError("webhook: HTTP 503")
            self.sent += 1

    store = LocalLiveStore(tmp_path / "live.sqlite")
    doc = {
        "doc_id": alert_id(ADDRESS, "hr_high", T0_MS),
        "subject_id": SUBJECT,
        "device_id": ADDRESS,
        "source": "strap",
        "kind": "hr_high",
        "category": "clinical",
        "status": "closed",
        "start_ms": T0_MS,
        "end_ms": T0_MS + 60_000,
        "raised_ms": T0_MS + 30_000,
        "duration_s": 60.0,
        "value": 151.0,
        "threshold": 120.0,
    }
    store.index([("alerts", doc)])
    routes = parse_routes(
        {
            "routes": [
                {
                    "name": "all",
                    "notify_close": True,
                    "tiers": [{"recipients": [{"email": "john.doe@example.org"}, {"webhook": "http://127.0.0.1:9/x"}]}],
                }
            ]
        },
        "routes.yaml",
    )
    email = Channel(fail=False)
    notifier = Notifier(
        routes,
        store,
        Outbox(tmp_path / "outbox.sqlite"),
        {"email": email, "webhook": Channel(fail=True)},
        subject_info=lambda d: ((), "JOHN DOE bed 4", "UTC"),
        alerts_store=store,
    )
    notifier.step()
    assert email.sent == 2 and "failed" in all_logs.text
    _assert_private(all_logs.text)
    assert "john.doe" not in all_logs.text and "151" not in all_logs.text
