"""The Glue job's entry point: its arguments reach the nightly job (awsglue faked; no Spark started)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from glue_jobs import nightly_staging


def _fake_glue(monkeypatch: pytest.MonkeyPatch, calls: list[dict[str, Any]]) -> None:
    def resolved(argv: list[str], names: list[str]) -> dict[str, str]:
        pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
        return {n: pairs[f"--{n}"] for n in names}  # KeyError for a missing one, as Glue fails

    class Spark:
        conf = types.SimpleNamespace(set=lambda *a: None)

    context = types.ModuleType("awsglue.context")
    context.GlueContext = lambda sc: types.SimpleNamespace(spark_session=Spark())  # type: ignore[attr-defined]
    utils = types.ModuleType("awsglue.utils")
    utils.getResolvedOptions = resolved  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "awsglue", types.ModuleType("awsglue"))
    monkeypatch.setitem(sys.modules, "awsglue.context", context)
    monkeypatch.setitem(sys.modules, "awsglue.utils", utils)
    import pyspark.context

    monkeypatch.setattr(pyspark.context.SparkContext, "getOrCreate", staticmethod(lambda: None))
    import batch_layer.nightly_job as job

    def run(spark: Any, raw: str, curated: str, nights: list[str], tz: str, **kw: Any) -> Any:
        calls.append({"raw": raw, "nights": nights, "tz": tz, **kw})
        return job.NightlyResult(nights, 0, 0)

    monkeypatch.setattr(job, "run_nightly", run)


@pytest.mark.parametrize("flag", ["on", "off"])
def test_job_arguments_reach_the_nightly_job(monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    calls: list[dict[str, Any]] = []
    _fake_glue(monkeypatch, calls)
    argv = ["job", "--RAW_PATH", "s3://r/raw", "--CURATED_PATH", "s3://c", "--NIGHTS", "2026-01-05"]
    nightly_staging.main([*argv, "--TZ", "Europe/Berlin", "--STAGING_RR", flag])
    assert calls == [{"raw": "s3://r/raw", "nights": ["2026-01-05"], "tz": "Europe/Berlin", "rr_staging": flag == "on"}]


def test_a_bad_staging_flag_stops_the_job_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_glue(monkeypatch, [])
    argv = ["job", "--RAW_PATH", "r", "--CURATED_PATH", "c", "--NIGHTS", "2026-01-05", "--TZ", "UTC"]
    with pytest.raises(SystemExit, match="--STAGING_RR must be 'on' or 'off'"):
        nightly_staging.main([*argv, "--STAGING_RR", "yes"])


def test_the_registrys_time_zones_reach_the_nightly_job(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from core.registry import Subject
    from registry.dynamodb import DynamoRegistry

    calls: list[dict[str, Any]] = []
    _fake_glue(monkeypatch, calls)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("dynamodb")
        keys = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
        attrs = [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")]
        client.create_table(TableName="reg", KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")
        DynamoRegistry(client, "reg").add_subject(Subject("s001", enrolled_ms=0, tz="Asia/Tokyo"))
        argv = ["job", "--RAW_PATH", "r", "--CURATED_PATH", "c", "--NIGHTS", "2026-01-05", "--TZ", "UTC"]
        nightly_staging.main([*argv, "--STAGING_RR", "off", "--REGISTRY_TABLE", "reg"])
    assert calls[0]["subject_tz"] == {"s001": "Asia/Tokyo"}
