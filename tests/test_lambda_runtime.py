"""The packaged Lambda zip in AWS's Runtime Interface Emulator, through ``awslambdaric``, invoked over HTTP.

The zip is built for the Lambda platform, unzipped as the task root and run with only what
the python3.11 runtime provides (the runtime client and boto3, :mod:`sleepstack.emulator`),
configured as the template configures the function. DynamoDB and S3 are moto's server;
OpenSearch is a ``_bulk`` endpoint that keeps the documents
(:mod:`sleepstack.bench.lambda_runtime`). ``make lambda-emulator`` builds the emulator
(Go, from the module proxy) under ``build/rie/``; CI runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from core.contract import Record, to_wire
from ingest.aggregation import pack_records
from sleepstack.bench.fixtures import one_shard, simulated_night_records
from sleepstack.bench.lambda_runtime import (
    NOTIFIER_HANDLER,
    TRANSFORM_HANDLER,
    aws_standins,
    firehose_event,
    speed_layer_event,
    speed_layer_function,
    unzip_package,
)
from sleepstack.emulator import EmulatedFunction, EmulatorError, build_emulator, runtime_dir
from sleepstack.package import build_lambda
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.lambda_runtime]

BUILD = REPO_ROOT / "build"
POISON = b'{"kind": "strap", "not": "a record"}'


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(emulator, task root, runtime directory)."""
    if shutil.which("go") is None and not (BUILD / "rie" / "aws-lambda-rie").exists():
        pytest.skip(
            "Go is not installed, so the Lambda Runtime Interface Emulator cannot be built: apt-get install golang-go"
        )
    try:
        emulator = build_emulator(BUILD)
    except EmulatorError as exc:
        pytest.fail(str(exc))
    tmp = tmp_path_factory.mktemp("lambda")
    zip_path, _, _ = build_lambda(REPO_ROOT, tmp / "build")
    return emulator, unzip_package(zip_path, tmp / "task"), runtime_dir(BUILD)


@pytest.fixture(scope="module")
def night() -> list[Record]:
    recs = simulated_night_records("emu", seed=3)
    start = len(recs) // 3
    t0 = recs[start].event_time_ms
    return [r for r in recs[start:] if r.event_time_ms < t0 + 8 * 60_000]


def _objects(stand: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in stand.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_the_speed_layer_handles_plain_aggregated_poison_and_partial_failures_in_the_lambda_runtime(
    emulated: tuple[Path, Path, Path], night: list[Record], tmp_path: Path
) -> None:
    emulator, task_root, runtime = emulated
    q = len(night) // 4
    plain, packed, tail = night[:q], night[q : 2 * q], night[2 * q :]
    seq = 10**20
    with (
        aws_standins(dead_letter_bucket=False) as stand,
        speed_layer_function(emulator, task_root, runtime, stand.env, log=tmp_path / "rie.log") as fn,
    ):
        # plain records, one Kinesis record each: the cold start
        assert fn.invoke(speed_layer_event([(r.device_id, to_wire(r)) for r in plain], first_seq=seq)) == {
            "batchItemFailures": []
        }, fn.log_text()[-3000:]
        docs_after_plain = len(stand.opensearch.docs)
        assert docs_after_plain > 0
        states = stand.client("dynamodb").scan(TableName=stand.env["SLEEPSTACK_STATE_TABLE"])["Items"]
        keys = {s["device_id"]["S"] for s in states}
        # each device's state, and the shard's lease (ADR 7: epoch writes, the default)
        assert keys == {r.device_id for r in plain} | {"lease/shardId-000000000000"}, keys
        # KPL aggregates, as the sender puts them
        seq += len(plain)
        aggregates = [(p.partition_key, p.data) for p in pack_records(packed, shard_of=one_shard)]
        assert len(aggregates) < len(packed)
        assert fn.invoke(speed_layer_event(aggregates, first_seq=seq)) == {"batchItemFailures": []}
        assert len(stand.opensearch.docs) > docs_after_plain
        # a partial failure: the dead-letter bucket cannot be written, so the poison record
        # cannot be quarantined; it fails alone and the records before it are applied
        seq += len(aggregates)
        half = len(tail) // 2
        payloads = [(r.device_id, to_wire(r)) for r in tail[:half]] + [("strap-emu", POISON)]
        payloads += [(r.device_id, to_wire(r)) for r in tail[half:]]
        poison_seq = seq + half
        resp = fn.invoke(speed_layer_event(payloads, first_seq=seq))
        assert resp == {"batchItemFailures": [{"itemIdentifier": str(poison_seq)}]}, fn.log_text()[-3000:]
        # the bucket is back: Lambda redelivers from the poison record, which is quarantined, and the rest flows
        stand.client("s3").create_bucket(Bucket=stand.env["SLEEPSTACK_DEAD_LETTER_BUCKET"])
        assert fn.invoke(speed_layer_event(payloads[half:], first_seq=poison_seq)) == {"batchItemFailures": []}
        assert len(_objects(stand, stand.env["SLEEPSTACK_DEAD_LETTER_BUCKET"])) == 1
        assert len(fn.reports) == 4
        init_ms, peak_mb = fn.init_ms, fn.peak_rss_mb
    assert init_ms is not None and 0 < init_ms < 30_000
    assert 0 < peak_mb < 1024  # within the template's MemorySize
    print(f"speed layer in the emulator: init {init_ms:.0f} ms, peak RSS {peak_mb:.0f} MB")


def test_the_firehose_transform_in_the_lambda_runtime(
    emulated: tuple[Path, Path, Path], night: list[Record], tmp_path: Path
) -> None:
    import base64
    import json

    emulator, task_root, runtime = emulated
    payloads = [to_wire(r) for r in night[:50]] + [POISON]
    with (
        aws_standins() as stand,
        speed_layer_function(
            emulator, task_root, runtime, stand.env, TRANSFORM_HANDLER, log=tmp_path / "rie.log"
        ) as fn,
    ):
        out = fn.invoke(firehose_event(payloads))
    results = out["records"]
    assert [r["recordId"] for r in results] == [f"{i:08d}" for i in range(len(payloads))]
    assert [r["result"] for r in results] == ["Ok"] * 50 + ["ProcessingFailed"]
    rows = [json.loads(base64.b64decode(r["data"])) for r in results[:50]]
    assert [row["record_id"] for row in rows] == [r.record_id for r in night[:50]]
    assert all(r["metadata"]["partitionKeys"]["dt"] for r in results[:50])
    assert fn.init_ms is not None and fn.peak_rss_mb > 0


def test_the_notifier_publishes_an_open_episode_to_the_clinical_topic_in_the_lambda_runtime(
    emulated: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The zip's notifier, as the schedule starts it: it reads the episode the speed layer
    indexed, stores one outbox item and publishes once; a second invocation publishes nothing."""
    import json

    from core.live.alerts import alert_id
    from speed_layer.indices import index_for

    emulator, task_root, runtime = emulated
    start = 1_767_225_600_000  # 2026-01-01 00:00 UTC
    doc = {
        "doc_id": alert_id("AA:77", "hr_high", start),
        "subject_id": "s077",
        "device_id": "AA:77",
        "source": "strap",
        "kind": "hr_high",
        "category": "clinical",
        "status": "open",
        "start_ms": start,
        "end_ms": None,
        "raised_ms": start + 5_000,
        "duration_s": 0.0,
        "value": 151.0,
        "threshold": 150.0,
    }
    with aws_standins() as stand:
        stand.opensearch.docs[(index_for("sleepstack", "alerts", doc), doc["doc_id"])] = doc
        # a 13-s timeout leaves the loop one pass (it stops with less than its margin + a poll left)
        fn = EmulatedFunction(
            emulator, task_root, runtime, NOTIFIER_HANDLER, env=stand.notifier_env, memory_mb=512,
            timeout_s=13, log=tmp_path / "rie.log",
        )  # fmt: skip
        with fn:
            first = fn.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})
            second = fn.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})
        assert first["planned"] == 1 and first["sent"] == 1 and first["errors"] == 0, fn.log_text()[-3000:]
        assert second["planned"] == 0 and second["sent"] == 0
        got = stand.client("sqs").receive_message(QueueUrl=stand.clinical_queue_url, MaxNumberOfMessages=10)
        (msg,) = [json.loads(m["Body"]) for m in got.get("Messages", [])]
        assert msg["MessageAttributes"]["kind"]["Value"] == "hr_high"
        assert msg["MessageAttributes"]["severity"]["Value"] == "high"
        assert "Who: s077" in msg["Message"] and "151" not in msg["Message"]  # no label: the pseudonym, no value
        items = stand.client("dynamodb").scan(TableName=stand.notifier_env["SLEEPSTACK_OUTBOX_TABLE"])["Items"]
        assert sorted(i["status"]["S"] for i in items if "status" in i) == ["sent"]
    print(f"notifier in the emulator: init {fn.init_ms:.0f} ms, peak RSS {fn.peak_rss_mb:.0f} MB")
