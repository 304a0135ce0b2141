"""``sleepstack erase`` on AWS: DynamoDB (registry, device state) and S3 (versioned raw,
curated and dead-letter buckets) under moto, the live store on a real OpenSearch node.

Three subjects' first quarter hour goes through the real speed-layer handler into
OpenSearch, DynamoDB state and S3 dead letters; their rows into raw Parquet (one object
written twice, so an old version holds the subject too), curated rows, and Firehose error
records. The erasure is stopped at each step and run again; then every store is scanned
clean of s001 and every other subject's item is there as before, and nothing else.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.contract import to_row
from core.registry import Assignment, Device, Subject
from dead_letters import S3DeadLetters
from local.event_source_mapping import LambdaContext, kinesis_event
from registry.store import erasure_key
from sleepstack import erase
from sleepstack.bench.fixtures import ONE_SHARD, bench_settings, index_records
from sleepstack.erase import EraseIncomplete, Eraser
from sleepstack.erase_aws import AWS_DATA_STEPS, AwsStores
from sleepstack.s3_erasure import S3Erasure
from sleepstack.wiring import opensearch_client, speed_layer_handler
from speed_layer.opensearch_setup import install
from speed_layer.state_store import DynamoStateStore
from speed_layer.store import OpenSearchLiveStore
from tests.dashboard_helpers import SUBJECTS, night_records
from tests.erase_helpers import outbox_messages

pytestmark = [pytest.mark.opensearch, pytest.mark.integration, pytest.mark.slow]

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

ERASED = "s001"
HOURS = 0.25


class Stopped(Exception):
    """Stands for a process killed at a checkpoint."""


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def _mine(item: Any) -> bool:
    """Whether a stored item is s001's (named, or of its devices: none were lent here)."""
    text = json.dumps(item, sort_keys=True, default=str)
    named = re.search(rf"(?<![\w-]){ERASED}(?![\w-])", text) is not None  # e.g. a message's "bed of s001"
    return named or "-s001" in text or ERASED in base64.b64decode(_payload(item) or "").decode("latin1")


def _payload(item: Any) -> str | None:
    if isinstance(item, dict):
        return item.get("payload_b64") or item.get("rawData")
    return None


class Aws:
    """The deployed stores of one test: moto's S3 and DynamoDB, an OpenSearch index prefix."""

    def __init__(self, opensearch_url: str, home: Path) -> None:
        self.s3 = boto3.client("s3", region_name="eu-west-1")
        self.ddb = boto3.client("dynamodb", region_name="eu-west-1")
        for b in ("raw", "curated", "dead"):
            self.s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
            self.s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        keys = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
        attrs = [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")]
        self.ddb.create_table(
            TableName="registry", KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST"
        )
        self.ddb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "device_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        from registry.dynamodb import DynamoRegistry

        self.client = opensearch_client(opensearch_url)
        self.prefix = f"erase-aws-{uuid.uuid4().hex[:6]}"
        install(self.client, prefix=self.prefix, replicas=0)
        self.registry = DynamoRegistry(self.ddb, "registry")
        self.live = OpenSearchLiveStore(self.client, prefix=self.prefix)
        self.states = DynamoStateStore(self.ddb, "state")
        self.settings = bench_settings(home)
        from sleepstack.notify.dynamo_outbox import DynamoOutbox
        from tests.test_notify_aws import _table_spec

        self.ddb.create_table(TableName="outbox", **_table_spec("NotifierOutboxTable"))
        self.outbox = DynamoOutbox(self.ddb, "outbox")
        self.stores = AwsStores(
            self.registry, self.live, self.states, S3Erasure(self.s3, "raw", "curated", "dead"), self.outbox
        )

    # ------------------------------------------------------------------ what every store holds
    def holdings(self) -> dict[str, list[Any]]:
        from opensearchpy.helpers import scan

        out: dict[str, list[Any]] = {}
        hits = scan(self.client, index=f"{self.prefix}-*", query={"query": {"match_all": {}}})
        out["live"] = sorted((h["_id"], json.dumps(h["_source"], sort_keys=True)) for h in hits)
        devices = [f"{kind}-{s}" for s in SUBJECTS for kind in ("strap", "bed")]
        out["state"] = sorted(json.dumps([d, s], sort_keys=True) for d, s in self.states.get_many(devices).items())
        subjects = [self.registry.get_subject(x) for x in SUBJECTS]
        out["registry"] = sorted(
            json.dumps(dataclasses.asdict(x), sort_keys=True, default=str)
            for x in [*self.registry.assignments(), *(s for s in subjects if s is not None)]
        )
        items = self.ddb.scan(TableName="outbox")["Items"]
        out["outbox"] = sorted(json.dumps(i, sort_keys=True) for i in items)
        for bucket in ("raw", "curated", "dead"):
            for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                body = self.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                if o["Key"].endswith(".parquet"):
                    rows = pq.read_table(io.BytesIO(body)).to_pylist()
                else:
                    rows = [json.loads(line) for line in body.splitlines() if line.strip()]
                out[f"{bucket}:{o['Key']}"] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
        return out


@pytest.fixture
def aws(opensearch_url: str, tmp_path: Path) -> Iterator[Aws]:
    with moto.mock_aws():
        stack = Aws(opensearch_url, tmp_path / "home")
        recs = list(night_records(HOURS))
        t0 = min(r.device_time_ms for r in recs)
        for sid in SUBJECTS:
            stack.registry.add_subject(Subject(sid, enrolled_ms=0, tz="UTC"), why=f"{sid} consented")
            for kind in ("strap", "bed"):
                stack.registry.add_device(Device(f"{kind}-{sid}", kind), at_ms=0)
                stack.registry.assign(Assignment(f"{kind}-{sid}", 0, sid), at_ms=1)
        letters = S3DeadLetters(stack.s3, "dead")
        index_records(stack.settings, recs, store=stack.live, states=stack.states, letters=letters)
        # a poison record of each subject's strap: undecodable, a dead letter by its partition key
        handler = speed_layer_handler(stack.settings, store=stack.live, states=stack.states, letters=letters)
        from datetime import UTC, datetime

        poison = [
            {"PartitionKey": f"strap-{s}", "SequenceNumber": str(10**21 + i), "Data": b"\x00garbage"}
            | {"ApproximateArrivalTimestamp": datetime.now(tz=UTC)}
            for i, s in enumerate(SUBJECTS)
        ]
        handler(
            kinesis_event(poison, shard_id=ONE_SHARD, arn="arn:aws:kinesis:x:0:stream/x", region="x"), LambdaContext()
        )
        # the notifier's messages of each subject's episodes: one filed under it, one told by label only
        stack.outbox.add(outbox_messages(SUBJECTS, t0), t0)
        rows = [to_row(r) for r in recs if hasattr(r, "subject_id")]
        third = len(rows) // 3
        for i, part in enumerate((rows[:third], rows[third : 2 * third], rows[2 * third :])):
            key = f"raw/dt=2026-01-01/part-{i}.parquet"
            if i == 1:  # written twice: the older version holds the subject too
                stack.s3.put_object(Bucket="raw", Key=key, Body=_parquet(part[: len(part) // 2]))
            stack.s3.put_object(Bucket="raw", Key=key, Body=_parquet(part))
        nights = [{"subject_id": s, "night": "2026-01-01", "tst_min": 400.0 + k} for k, s in enumerate(SUBJECTS)]
        stack.s3.put_object(Bucket="curated", Key="nights/night=2026-01-01/part-0.parquet", Body=_parquet(nights))
        firehose = [
            {"errorCode": "Lambda.FunctionError", "rawData": _b64({"subject_id": s, "device_time_ms": t0})}
            for s in SUBJECTS
        ]
        stack.s3.put_object(
            Bucket="raw",
            Key="errors/processing-failed/2026/01/01/part-0",
            Body=b"".join(json.dumps(f).encode() + b"\n" for f in firehose),
        )
        yield stack


def _erase(stack: Aws) -> erase.Outcome:
    return Eraser(stack.settings.paths, stack.stores).run(ERASED, why="asked", by="dpo", now_ms=1_800_000_000_000)


@pytest.mark.parametrize(
    "stops",
    [
        (),
        ("journal",),
        ("registry",),
        ("live",),
        ("lake",),
        ("dead_letters",),
        ("notifier_outbox",),
        ("verify",),
        ("live", "lake"),
    ],
)
def test_erasure_on_aws_stopped_anywhere_finishes_and_touches_no_one_else(
    aws: Aws, stops: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = Eraser(aws.settings.paths, aws.stores).plan(ERASED)
    assert plan.registered and plan.hits["live_store"] > 0 and plan.hits["device_state"] == 2
    assert plan.hits["s3_lake_rows"] > 0 and plan.hits["s3_dead_letters"] == 2  # the poison letter, Firehose's
    assert plan.hits["notifier_outbox"] == 2  # the message filed under it, and the one naming it
    before = aws.holdings()

    for point in stops:  # each run stopped at a checkpoint, as a killed process would be

        def hook(name: str, point: str = point) -> None:
            if name == point:
                raise Stopped(name)

        monkeypatch.setattr(erase, "checkpoint_hook", hook)
        with pytest.raises(Stopped):
            _erase(aws)
    monkeypatch.setattr(erase, "checkpoint_hook", None)
    out = _erase(aws)
    assert out.resumed == bool(stops)
    assert set(out.journal.done) == {"registry", *AWS_DATA_STEPS, "verify", "tombstone"}
    assert out.journal.figures["scan"] and not any(out.journal.figures["scan"].values())

    after = aws.holdings()
    scan = aws.stores.scan(ERASED, plan.windows)
    assert scan.clean, scan.hits
    # every item not s001's is there as it was, and nothing else
    assert after["live"] == [x for x in before["live"] if not _mine(json.loads(x[1]))]
    for place in set(before) | set(after):
        if place == "live":
            continue
        kept = [x for x in before.get(place, []) if not _mine(json.loads(x))]
        assert after.get(place, []) == kept, place
    # no identifiers left in the finished journal; a rerun says it is done
    journal = json.loads(aws.settings.paths.erase_journal(erasure_key(ERASED)).read_text())
    assert ERASED not in json.dumps(journal)
    assert _erase(aws).already
    assert aws.registry.erased(ERASED) is not None


def test_a_record_landing_during_the_erasure_fails_the_verification_and_a_rerun_erases_it(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    def land(name: str) -> None:
        if name == "dead_letters":  # after the lake step: a late object of s001's
            aws.s3.put_object(
                Bucket="raw", Key="raw/dt=2026-01-02/late.parquet", Body=_parquet([{"subject_id": ERASED, "hr": 1.0}])
            )

    monkeypatch.setattr(erase, "checkpoint_hook", land)
    with pytest.raises(EraseIncomplete, match="s3_lake_rows 1"):
        _erase(aws)
    monkeypatch.setattr(erase, "checkpoint_hook", None)
    assert _erase(aws).resumed
    assert aws.stores.scan(ERASED, []).hits["s3_lake_rows"] == 0


def test_reassign_on_a_real_node_moves_only_the_window(aws: Aws) -> None:
    """``_update_by_query`` with its Painless script (the node's lang-painless module) files a
    device's documents of a window under another subject, and only those."""
    from opensearchpy.helpers import scan

    def docs() -> list[dict[str, Any]]:
        return [
            h["_source"] for h in scan(aws.client, index=f"{aws.prefix}-samples-*", query={"query": {"match_all": {}}})
        ]

    aws.live.count_subject(ERASED, [])  # refreshes
    strap = sorted((d for d in docs() if d["device_id"] == "strap-s002"), key=lambda d: d["event_time_ms"])
    start, end = strap[10]["event_time_ms"], strap[20]["event_time_ms"]
    moved = aws.live.reassign("strap-s002", start, end, "s003")
    assert moved == 10
    after = {d["doc_id"]: d["subject_id"] for d in docs()}
    for d in strap:
        assert after[d["doc_id"]] == ("s003" if start <= d["event_time_ms"] < end else "s002")
    assert aws.live.reassign("strap-s002", start, end, "s003") == 0  # a rerun changes nothing
