"""The S3 part of a subject's erasure (sleepstack.s3_erasure) on versioned buckets (moto)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from sleepstack.s3_erasure import S3Erasure  # noqa: E402

S = "s001"
WINDOWS = [("strap-1", 1_000, 2_000)]


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _raw(subject: str | None, device: str, t: int) -> dict[str, Any]:
    return {"subject_id": subject, "device_id": device, "device_time_ms": t, "hr": 60.0}


@pytest.fixture
def s3() -> Iterator[Any]:
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for b in ("raw", "curated", "dead"):
            client.create_bucket(Bucket=b)
            client.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        yield client


def _rows(client: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return sorted(pq.read_table(io.BytesIO(body)).to_pylist(), key=json.dumps)


def _state(client: Any) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out = {}
    for bucket in ("raw", "curated"):
        for o in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            out[(bucket, o["Key"])] = _rows(client, bucket, o["Key"])
    return out


def _other(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if r.get("subject_id") != S
        and not (r.get("device_id") == "strap-1" and 1_000 <= (r.get("device_time_ms") or 0) < 2_000)
    ]


def test_erases_every_version_and_keeps_the_others_rows(s3: Any) -> None:
    only = "raw/dt=2026-01-01/only.parquet"
    mixed = "raw/dt=2026-01-01/mixed.parquet"
    clean = "raw/dt=2026-01-02/clean.parquet"
    s3.put_object(Bucket="raw", Key=only, Body=_parquet([_raw(S, "strap-1", 1_100), _raw(S, "strap-1", 1_200)]))
    # an older version of the mixed object also holds the subject
    s3.put_object(Bucket="raw", Key=mixed, Body=_parquet([_raw(S, "strap-1", 1_050)]))
    s3.put_object(
        Bucket="raw",
        Key=mixed,
        Body=_parquet(
            [
                _raw(S, "strap-1", 1_300),
                _raw(None, "strap-1", 1_400),  # its device in its window, filed under nobody
                _raw("s002", "strap-1", 2_500),  # the same device after its window
                _raw("s002", "strap-2", 1_500),
            ]
        ),
    )
    s3.put_object(Bucket="raw", Key=clean, Body=_parquet([_raw("s003", "strap-3", 1_500)]))
    s3.delete_object(Bucket="raw", Key="raw/dt=2026-01-03/gone.parquet")  # a stray delete marker
    s3.put_object(
        Bucket="curated",
        Key="nights/night=2026-01-01/part-0.parquet",
        Body=_parquet([{"subject_id": S, "tst_min": 400.0}, {"subject_id": "s002", "tst_min": 380.0}]),
    )
    s3.put_object(Bucket="curated", Key="epochs/night=2026-01-01/part-0.parquet", Body=_parquet([{"subject_id": S}]))
    s3.put_object(Bucket="dead", Key=f"letters/{S}/a.json", Body=b"{}")
    s3.put_object(Bucket="dead", Key="letters/b.json", Body=json.dumps({"subject_id": S}).encode())
    s3.put_object(Bucket="dead", Key="letters/c.json", Body=json.dumps({"subject_id": "s0011"}).encode())

    job = S3Erasure(s3, raw_bucket="raw", curated_bucket="curated", dead_letter_bucket="dead")
    before = _state(s3)
    assert job.scan(S, WINDOWS)["s3_lake_rows"] == 2 + 1 + 2 + 1 + 1
    assert job.scan(S, WINDOWS)["s3_dead_letters"] == 2

    stats = job.erase(S, WINDOWS)
    assert stats.rows_removed == 2 + 2 + 1 + 1
    assert stats.objects_deleted == 2 and stats.objects_rewritten == 2 and stats.dead_letters == 2
    assert job.scan(S, WINDOWS) == {"s3_lake_rows": 0, "s3_dead_letters": 0}

    after = _state(s3)
    assert set(after) == {k for k, rows in before.items() if _other(rows)}
    for k, rows in after.items():
        assert rows == _other(before[k])  # other subjects' rows identical
    # no version (nor marker) of the wholly erased objects remains; one version of the rewritten ones
    versions = s3.list_object_versions(Bucket="raw", Prefix="raw/dt=2026-01-01/")
    assert [v["Key"] for v in versions.get("Versions", [])] == [mixed]
    assert not versions.get("DeleteMarkers")
    assert [v["Key"] for v in s3.list_object_versions(Bucket="dead").get("Versions", [])] == ["letters/c.json"]

    # a rerun changes nothing
    again = job.erase(S, WINDOWS)
    assert (again.rows_removed, again.objects_rewritten, again.objects_deleted, again.versions_deleted) == (0, 0, 0, 0)
    assert again.dead_letters == 0
    assert _state(s3) == after


def _b64(value: Any) -> str:
    import base64

    return base64.b64encode(value if isinstance(value, bytes) else json.dumps(value).encode()).decode()


def test_dead_letters_are_matched_as_locally_and_firehose_errors_rewritten_line_by_line(s3: Any) -> None:
    """The local rule on S3: base64 payloads decoded, a window's device in its window, an
    undecodable payload by its partition key and the version's time; Firehose's error records
    (one per line under the raw bucket's errors/) rewritten without the subject's."""
    now = 1_700_000_000_000
    windows = [("strap-1", 1_000, 2_000), ("bed-1", 0, 2**62)]  # bed-1 is the subject's still
    letter = {"reason": "bad record", "source": {"partitionKey": "strap-1"}}
    s3.put_object(  # a record of its strap in its window, not naming it
        Bucket="dead",
        Key="speed-layer/a.json",
        Body=json.dumps({**letter, "payload_b64": _b64({"device_id": "strap-1", "device_time_ms": 1_500})}).encode(),
    )
    s3.put_object(  # the same strap after the window: someone else's
        Bucket="dead",
        Key="speed-layer/b.json",
        Body=json.dumps({**letter, "payload_b64": _b64({"device_id": "strap-1", "device_time_ms": 2_500})}).encode(),
    )
    s3.put_object(  # undecodable, from its bed while assigned (written now)
        Bucket="dead",
        Key="speed-layer/c.json",
        Body=json.dumps({"source": {"partitionKey": "bed-1"}, "payload_b64": _b64(b"\x00\xff")}).encode(),
    )
    failed = {"errorCode": "Lambda.FunctionError", "arrivalTimestamp": now}
    records = [
        {**failed, "rawData": _b64({"subject_id": S, "hr": 50})},
        {**failed, "rawData": _b64({"subject_id": "s002", "hr": 51})},
        {**failed, "rawData": _b64({"device_id": "strap-1", "device_time_ms": 1_100})},
    ]
    key = "errors/processing-failed/2026/01/01/part-1"
    s3.put_object(Bucket="raw", Key=key, Body=b"".join(json.dumps(r).encode() + b"\n" for r in records))

    job = S3Erasure(s3, raw_bucket="raw", curated_bucket=None, dead_letter_bucket="dead")
    assert job.scan(S, windows)["s3_dead_letters"] == 2 + 2
    assert job.erase(S, windows).dead_letters == 4
    assert job.scan(S, windows) == {"s3_lake_rows": 0, "s3_dead_letters": 0}
    assert [v["Key"] for v in s3.list_object_versions(Bucket="dead").get("Versions", [])] == ["speed-layer/b.json"]
    versions = s3.list_object_versions(Bucket="raw", Prefix="errors/").get("Versions", [])
    assert len(versions) == 1  # the rewrite, and no older version holding the subject
    kept = s3.get_object(Bucket="raw", Key=key)["Body"].read().splitlines()
    assert [json.loads(line) for line in kept] == [records[1]]
    assert job.erase(S, windows).dead_letters == 0
