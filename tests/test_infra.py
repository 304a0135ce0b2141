"""The production template: cfn-lint, checkov, least privilege, parameters, a moto deploy.

Also checks that the template and the code agree (Firehose prefixes, Glue columns,
artefact names), so one cannot drift from the other.
"""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from core.contract import hive_columns
from core.nights.nightly import EPOCH_COLUMNS, NIGHT_COLUMNS
from local.firehose import DEFAULT_ERROR_PREFIX, DEFAULT_PREFIX
from local.template import load_template
from serving.catalog import CATALOG, STORED, render_template, view_sql
from tests.conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _resources(doc: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == rtype}


# ---------------------------------------------------------------------------- linters


def test_cfn_lint_reports_nothing() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    done = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_reports_no_failed_check_and_every_skip_is_justified(doc: dict[str, Any]) -> None:
    assert CHECKOV.exists(), f"{CHECKOV} missing: run `make setup` (it installs checkov in its own venv)"
    done = subprocess.run(
        [str(CHECKOV), "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] >= 80
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in report["results"]["skipped_checks"]}
    declared = {
        (skip["id"], name)
        for name, res in doc["Resources"].items()
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }
    assert declared == skipped  # no stale suppression either
    for name, res in doc["Resources"].items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 30, f"{name}: suppression {skip['id']} needs a justification"


# ---------------------------------------------------------------------------- least privilege


def _statements(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name, res in doc["Resources"].items():
        props = res.get("Properties", {})
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        for key in ("PolicyDocument", "KeyPolicy", "AccessPolicies", "AssumeRolePolicyDocument"):
            if isinstance(props.get(key), dict) and "Statement" in props[key]:
                docs.append(props[key])
        out += [(name, st) for d in docs for st in d["Statement"]]
    return out


#: Allowed exceptions, each for a stated reason.
_WILDCARD_ACTION_OK = {
    # The key's administration stays with the account (IAM decides who); AWS's default key
    # policy, without which the key could become unmanageable.
    ("DataKey", "AccountAdministersKeyThroughIam"),
}
_WILDCARD_RESOURCE_OK = {
    "xray:PutTraceSegments",  # X-Ray has no resource-level permissions
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",  # likewise; scoped by a namespace condition instead
}


def test_no_policy_allows_a_wildcard_action(doc: dict[str, Any]) -> None:
    allows = [(n, st) for n, st in _statements(doc) if st["Effect"] == "Allow"]
    assert len(allows) > 20
    for name, st in allows:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if (name, st.get("Sid")) in _WILDCARD_ACTION_OK:
            continue
        for action in actions:
            assert "*" not in action, f"{name}/{st.get('Sid')}: wildcard action {action}"


def test_iam_role_statements_name_their_resources(doc: dict[str, Any]) -> None:
    for name, role in _resources(doc, "AWS::IAM::Role").items():
        for policy in role["Properties"]["Policies"]:
            for st in policy["PolicyDocument"]["Statement"]:
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if "*" in resources:
                    assert set(actions) <= _WILDCARD_RESOURCE_OK, f"{name}/{st['Sid']}: Resource * for {actions}"


def test_every_bucket_is_private_encrypted_versioned_and_tls_only(doc: dict[str, Any]) -> None:
    buckets = _resources(doc, "AWS::S3::Bucket")
    policies = {p["Properties"]["Bucket"]["Ref"]: p for p in _resources(doc, "AWS::S3::BucketPolicy").values()}
    assert {"RawBucket", "CuratedBucket", "AthenaResultsBucket", "DeadLetterBucket"} <= set(buckets)
    for name, b in buckets.items():
        props = b["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values()), name
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        if name != "AccessLogsBucket":  # S3 access logs can only be delivered to SSE-S3 buckets
            assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]}}, name
        assert props["VersioningConfiguration"]["Status"] == "Enabled", name
        assert props["LifecycleConfiguration"]["Rules"], name
        deny = policies[name]["Properties"]["PolicyDocument"]["Statement"][0]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, name


def test_opensearch_domain_is_encrypted_https_only_and_not_open(doc: dict[str, Any]) -> None:
    (domain,) = _resources(doc, "AWS::OpenSearchService::Domain").values()
    p = domain["Properties"]
    assert p["EncryptionAtRestOptions"]["Enabled"] and p["NodeToNodeEncryptionOptions"]["Enabled"]
    assert p["DomainEndpointOptions"]["EnforceHTTPS"]
    assert p["AdvancedSecurityOptions"]["Enabled"] and not p["AdvancedSecurityOptions"]["InternalUserDatabaseEnabled"]
    for st in p["AccessPolicies"]["Statement"]:
        assert st["Principal"] != "*" and st["Principal"].get("AWS") != "*"


# ---------------------------------------------------------------------------- parameters


def _check_parameter(spec: dict[str, Any], name: str, value: str) -> str | None:
    """CloudFormation's own parameter validation; returns its error or None."""
    msg = spec.get("ConstraintDescription") or f"Parameter '{name}' failed to satisfy constraint"
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return f"Parameter '{name}' must be one of AllowedValues"
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        return msg
    if spec["Type"] == "Number":
        try:
            number = float(value)
        except ValueError:
            return f"Parameter '{name}' must be a number"
        if ("MinValue" in spec and number < spec["MinValue"]) or ("MaxValue" in spec and number > spec["MaxValue"]):
            return msg
    return None


_BAD = {
    "Environment": "production",
    "ArtifactsBucket": "Bad_Bucket",
    "PackageVersion": "latest",
    "StreamMode": "SHARDED",
    "IngestShardCount": "0",
    "SpeedLayerBatchSize": "20000",
    "SpeedLayerBatchingWindowSeconds": "-1",
    "SpeedLayerMaxRetries": "-5",
    "SpeedLayerMaxRecordAgeSeconds": "10",
    "SpeedLayerReservedConcurrency": "0",
    "OpenSearchInstanceType": "t2.micro",
    "OpenSearchInstanceCount": "50",
    "OpenSearchDedicatedMasters": "yes",
    "OpenSearchVolumeGiB": "5",
    "OpenSearchMasterUserArn": "admin",
    "NightlyScheduleCron": "every night",
    "NightTimeZone": "Berlin time",
    "StagingRr": "yes",
    "AthenaBytesScannedCutoff": "100",
    "AlarmEmail": "ops-at-example",
    "ClinicalAlertEmail": "nurse at ward",
    "ClinicalAlertSms": "07700 900123",
    "NotifierPollSeconds": "0",
}


def test_every_parameter_is_constrained_and_a_bad_value_names_it(doc: dict[str, Any]) -> None:
    params = doc["Parameters"]
    assert set(params) == set(_BAD), "add a bad example for each new parameter"
    for name, spec in params.items():
        if "Default" in spec:
            assert _check_parameter(spec, name, str(spec["Default"])) is None, name
        error = _check_parameter(spec, name, _BAD[name])
        assert error is not None, f"{name} accepts {_BAD[name]!r}"
        assert name in error, f"{name}: the error {error!r} does not name the parameter"


# ---------------------------------------------------------------------------- template == code


def test_firehose_prefixes_and_catalog_columns_match_the_code(doc: dict[str, Any]) -> None:
    s3 = doc["Resources"]["RawDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    assert s3["Prefix"] == DEFAULT_PREFIX
    assert s3["ErrorOutputPrefix"] == DEFAULT_ERROR_PREFIX
    tables = {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]["TableInput"]
        for t in _resources(doc, "AWS::Glue::Table").values()
    }

    def cols(name: str) -> list[tuple[str, str]]:
        return [(c["Name"], c["Type"]) for c in tables[name]["StorageDescriptor"]["Columns"]]

    assert render_template(TEMPLATE.read_text()) == TEMPLATE.read_text(), "run: sleepstack catalog --write-template"
    assert sorted(tables) == sorted(t.name for t in STORED)  # the names the SQL files use
    views = {t.name: t for t in CATALOG if t.view_of is not None}
    for name, view in views.items():  # a view is a named query that creates it, over a stored table
        (query,) = [
            q["Properties"]
            for q in _resources(doc, "AWS::Athena::NamedQuery").values()
            if q["Properties"]["Name"]["Fn::Sub"].endswith(f"create-{name.replace('_', '-')}-view")
        ]
        assert query["QueryString"]["Fn::Sub"] == view_sql(view, "sleepstack_${Environment}")
        assert view.view_of in tables
    assert cols("raw_records") == [(c["Name"], c["Type"]) for c in hive_columns()]
    assert cols("epoch_stages") == [c for c in EPOCH_COLUMNS if c[0] != "night"]
    assert cols("night_summary") == [c for c in NIGHT_COLUMNS if c[0] != "night"]
    for t in tables.values():
        (key,) = t["PartitionKeys"]
        assert t["Parameters"]["projection.enabled"] == "true"
        assert t["Parameters"][f"projection.{key['Name']}.type"] == "date"


def test_glue_job_and_lambda_point_at_the_packaged_artefacts(doc: dict[str, Any]) -> None:
    job = doc["Resources"]["NightlyJob"]["Properties"]
    assert job["Command"]["ScriptLocation"]["Fn::Sub"].endswith("/nightly_staging.py")
    assert (
        "sleepstack_batch-${PackageVersion}-py3-none-any.whl"
        in job["DefaultArguments"]["--additional-python-modules"]["Fn::Sub"]
    )
    assert job["DefaultArguments"]["--NIGHTS"] == "yesterday"
    fn = doc["Resources"]["SpeedLayerFunction"]["Properties"]
    assert fn["Code"]["S3Key"]["Fn::Sub"] == "sleepstack/${PackageVersion}/lambda.zip"
    assert fn["Handler"] == "sleepstack.lambda_entry.lambda_handler"
    transform = doc["Resources"]["RawTransformFunction"]["Properties"]
    assert transform["Code"] == fn["Code"]
    module, name = transform["Handler"].rsplit(".", 1)
    assert module == "sleepstack.lambda_entry" and name == "firehose_transform_handler"
    (processor,) = doc["Resources"]["RawDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"][
        "ProcessingConfiguration"
    ]["Processors"]
    assert processor["Type"] == "Lambda"


@pytest.mark.parametrize(
    ("now_utc", "tz", "night"),
    [
        ("2026-01-06T13:30:00", "UTC", "2026-01-05"),  # the scheduled run: last night ended at noon
        ("2026-01-06T11:00:00", "UTC", "2026-01-04"),  # before noon last night is still running
        ("2026-01-06T13:30:00", "America/New_York", "2026-01-04"),  # 08:30 there: not yet noon
        ("2026-01-07T04:00:00", "Asia/Tokyo", "2026-01-06"),  # 13:00 on the 7th there
    ],
)
def test_nightly_job_resolves_yesterday_in_the_subjects_zone(now_utc: str, tz: str, night: str) -> None:
    from datetime import UTC, datetime

    from core.contract.epochs import resolve_nights

    now = datetime.fromisoformat(now_utc).replace(tzinfo=UTC)
    assert resolve_nights("yesterday", tz, now) == [night]


def test_nightly_job_rejects_a_bad_nights_argument_by_name() -> None:
    from datetime import UTC, datetime

    from core.contract.epochs import resolve_nights

    now = datetime(2026, 1, 6, tzinfo=UTC)
    assert resolve_nights("2026-01-04, 2026-01-05", "UTC", now) == ["2026-01-04", "2026-01-05"]
    with pytest.raises(ValueError, match="--NIGHTS"):
        resolve_nights("last week", "UTC", now)
    with pytest.raises(ValueError, match="not a calendar date"):
        resolve_nights("2026-02-30", "UTC", now)


# ---------------------------------------------------------------------------- moto deploy

_MOTO_TYPES = {
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::Kinesis::Stream",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::Logs::LogGroup",
    "AWS::IAM::Role",
    "AWS::Lambda::Function",
    "AWS::Lambda::EventSourceMapping",
    "AWS::SNS::Topic",
}


def _moto_subset(doc: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The resources moto's CloudFormation can create; references to the rest become placeholders."""
    keep = {k for k, v in doc["Resources"].items() if v["Type"] in _MOTO_TYPES}
    gone = set(doc["Resources"]) - keep

    def scrub(v: Any) -> Any:
        if isinstance(v, dict):
            if v.get("Ref") in gone:
                return f"placeholder-{v['Ref'].lower()}"
            if "Fn::GetAtt" in v and v["Fn::GetAtt"][0] in gone:
                return f"placeholder-{v['Fn::GetAtt'][0].lower()}"
            if isinstance(v.get("Fn::Sub"), str):
                return {
                    "Fn::Sub": re.sub(
                        r"\$\{(\w+)(\.[\w.]+)?\}",
                        lambda m: f"placeholder-{m.group(1).lower()}" if m.group(1) in gone else m.group(0),
                        v["Fn::Sub"],
                    )
                }
            return {k: scrub(x) for k, x in v.items()}
        if isinstance(v, list):
            return [scrub(x) for x in v]
        return v

    sub = {
        "AWSTemplateFormatVersion": doc["AWSTemplateFormatVersion"],
        "Parameters": doc["Parameters"],
        "Conditions": doc["Conditions"],
        "Resources": {k: scrub(doc["Resources"][k]) for k in keep},
    }
    return sub, gone


def _bucket_arn(value: Any, physical: dict[str, str]) -> Any:
    """Resolve the bucket-policy intrinsics (GetAtt X.Arn, Sub ${X.Arn}/*) to ARNs."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"arn:aws:s3:::{physical[value['Fn::GetAtt'][0]]}"
    if isinstance(value, dict) and "Fn::Sub" in value:
        return re.sub(r"\$\{(\w+)\.Arn\}", lambda m: f"arn:aws:s3:::{physical[m.group(1)]}", value["Fn::Sub"])
    if isinstance(value, dict) and "Ref" in value:
        return "123456789012"
    if isinstance(value, list):
        return [_bucket_arn(v, physical) for v in value]
    if isinstance(value, dict):
        return {k: _bucket_arn(v, physical) for k, v in value.items()}
    return value


@mock_aws
def test_template_deploys_into_moto_and_the_resources_are_as_declared(doc: dict[str, Any]) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="sleepstack-artefacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("sleepstack/lambda_entry.py", "def lambda_handler(event, context):\n    return {}\n")
    s3.put_object(Bucket="sleepstack-artefacts", Key="sleepstack/0.1.0/lambda.zip", Body=code.getvalue())
    sub, gone = _moto_subset(doc)
    assert {"OpenSearchDomain", "RawDeliveryStream", "NightlyJob", "AthenaWorkGroup"} <= gone
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName="sleepstack-dev",
        TemplateBody=json.dumps(sub),
        Parameters=[
            {"ParameterKey": "ArtifactsBucket", "ParameterValue": "sleepstack-artefacts"},
            {"ParameterKey": "OpenSearchMasterUserArn", "ParameterValue": "arn:aws:iam::123456789012:role/admin"},
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    assert cfn.describe_stacks(StackName="sleepstack-dev")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    created = {
        r["LogicalResourceId"]: r
        for r in cfn.list_stack_resources(StackName="sleepstack-dev")["StackResourceSummaries"]
        if r["LogicalResourceId"]
    }
    assert set(sub["Resources"]) - {"AlarmEmailSubscription"} <= set(created)
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in created.values())
    physical = {k: r["PhysicalResourceId"] for k, r in created.items()}

    # the bucket policies (moto's CloudFormation skips them): applied from the template
    for res in _resources(doc, "AWS::S3::BucketPolicy").values():
        bucket = physical[res["Properties"]["Bucket"]["Ref"]]
        policy = _bucket_arn(res["Properties"]["PolicyDocument"], physical)
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    for name in ("RawBucket", "CuratedBucket", "AthenaResultsBucket", "DeadLetterBucket"):
        bucket = physical[name]
        enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert enc["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"].endswith(physical["DataKey"])
        deny = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]
        assert deny["Effect"] == "Deny" and deny["Resource"][1] == f"arn:aws:s3:::{bucket}/*"

    stream = boto3.client("kinesis", region_name=REGION).describe_stream_summary(StreamName="sleepstack-dev-ingest")
    assert stream["StreamDescriptionSummary"]["OpenShardCount"] == 2
    assert stream["StreamDescriptionSummary"]["RetentionPeriodHours"] == 168

    lam = boto3.client("lambda", region_name=REGION)
    fn = lam.get_function(FunctionName="sleepstack-dev-speed-layer")["Configuration"]
    assert fn["Runtime"] == "python3.11" and fn["Handler"] == "sleepstack.lambda_entry.lambda_handler"
    assert fn["Role"].endswith(":role/sleepstack-dev-speed-layer")
    env = fn["Environment"]["Variables"]
    assert env["SLEEPSTACK_TARGET"] == "aws"
    assert env["SLEEPSTACK_STATE_TABLE"] == physical["SpeedLayerStateTable"]
    assert env["SLEEPSTACK_REGISTRY_TABLE"] == physical["RegistryTable"]  # subjects' alert thresholds
    assert env["SLEEPSTACK_DEAD_LETTER_BUCKET"] == physical["DeadLetterBucket"]
    (esm,) = lam.list_event_source_mappings(FunctionName="sleepstack-dev-speed-layer")["EventSourceMappings"]
    assert esm["EventSourceArn"].endswith(":stream/sleepstack-dev-ingest")
    assert (esm["BatchSize"], esm["MaximumBatchingWindowInSeconds"]) == (500, 1)
    assert esm["BisectBatchOnFunctionError"] and esm["MaximumRetryAttempts"] == 3
    assert esm["MaximumRecordAgeInSeconds"] == 21600
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["DestinationConfig"]["OnFailure"]["Destination"].endswith(":sleepstack-dev-speed-layer-failures")

    iam = boto3.client("iam", region_name=REGION)
    (policy_name,) = iam.list_role_policies(RoleName="sleepstack-dev-speed-layer")["PolicyNames"]
    statements = iam.get_role_policy(RoleName="sleepstack-dev-speed-layer", PolicyName=policy_name)["PolicyDocument"]
    if isinstance(statements, str):  # moto keeps a CloudFormation-made policy as the dict's repr
        statements = ast.literal_eval(statements)
    kinesis = next(s for s in statements["Statement"] if s["Sid"] == "ReadIngestStream")
    assert kinesis["Resource"].endswith(":stream/sleepstack-dev-ingest")
    table = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=physical["SpeedLayerStateTable"])
    assert table["Table"]["KeySchema"] == [{"AttributeName": "device_id", "KeyType": "HASH"}]

    # the registry: one table, read by collectors and edited by coordinators through its two policies
    registry = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=physical["RegistryTable"])["Table"]
    assert registry["TableName"] == "sleepstack-dev-registry"
    assert [k["AttributeName"] for k in registry["KeySchema"]] == ["pk", "sk"]
    reader = next(r for r in _resources(doc, "AWS::IAM::ManagedPolicy").items() if r[0] == "RegistryReaderPolicy")[1]
    actions = {a for s in reader["Properties"]["PolicyDocument"]["Statement"] for a in s["Action"]}
    assert actions == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "kms:Decrypt"}  # read only


def test_clinical_alerts_have_their_own_encrypted_topic_apart_from_the_ops_alarms(doc: dict[str, Any]) -> None:
    res = doc["Resources"]
    topic = res["ClinicalAlertTopic"]
    assert topic["Type"] == "AWS::SNS::Topic" and "clinical-alerts" in str(topic["Properties"]["TopicName"])
    assert topic["Properties"]["KmsMasterKeyId"] == res["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    sub = res["ClinicalAlertEmailSubscription"]
    assert sub["Condition"] == "HasClinicalAlertEmail" and sub["Properties"]["TopicArn"] == {
        "Ref": "ClinicalAlertTopic"
    }
    assert doc["Parameters"]["ClinicalAlertEmail"]["Default"] == ""
    # no operations alarm publishes to the clinical topic
    for name, r in res.items():
        if r["Type"] == "AWS::CloudWatch::Alarm":
            assert {"Ref": "ClinicalAlertTopic"} not in r["Properties"].get("AlarmActions", []), name
