"""The notifier on AWS under moto: the DynamoDB outbox (made from the template's own table
definition) and the clinical SNS topic, read back through an SQS queue subscribed to it.

What reaches the topic is what moto delivered to the queue: the real published bodies and
message attributes, not what the channel meant to send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from core.notify import Recipient, Route, Tier, idempotency_key
from core.registry import Assignment, Device, Subject
from local.live_store import LocalLiveStore
from local.outbox import Outbox
from local.template import load_template
from sleepstack.notify.aws import STOP_MARGIN_S, TOPIC_ROUTE, run_invocation, topic_route
from sleepstack.notify.channels import SnsChannel
from sleepstack.notify.dynamo_outbox import QUEUE_INDEX, DynamoOutbox
from sleepstack.notify.engine import Notifier
from tests.test_notify import T0, Clock, Recording, episode

REGION = "eu-west-2"
TABLE = "sleepstack-test-notifier-outbox"


def _table_spec(resource: str) -> dict[str, Any]:
    """The template's definition of a table, as ``create_table`` takes it (KMS/PITR/TTL left to the template)."""
    props = load_template()["Resources"][resource]["Properties"]
    keep = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
    return {k: props[k] for k in keep if k in props}


def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    _fake_credentials(monkeypatch)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName=TABLE, **_table_spec("NotifierOutboxTable"))
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="sleepstack-test-clinical-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="clinical-reader")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield {"ddb": ddb, "sns": sns, "sqs": sqs, "topic": topic, "queue": queue}


def published(aws: dict[str, Any]) -> list[dict[str, Any]]:
    """The SNS envelopes delivered to the subscribed queue so far (and consumed)."""
    out = []
    while True:
        got = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(json.loads(m["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=m["ReceiptHandle"])


def _attrs(envelope: dict[str, Any]) -> dict[str, str]:
    return {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}


def make_notifier(
    aws: dict[str, Any], store: LocalLiveStore, clock: Clock, *, hook: Recording | None = None, topic: str = ""
) -> Notifier:
    routes = [topic_route(topic or aws["topic"])]
    channels: dict[str, Any] = {"sns": SnsChannel(aws["sns"])}
    if hook is not None:
        routes.append(Route("ward-webhook", (Tier((Recipient("webhook", "http://127.0.0.1:9/w"),)),)))
        channels["webhook"] = hook
    return Notifier(
        routes,
        store,
        DynamoOutbox(aws["ddb"], TABLE),
        channels,
        subject_info=lambda d: (("ward-7",), "bed 12", "Europe/London"),
        alerts_store=store,
        clock=clock,
        backoff_s=(1.0, 2.0),
    )


def test_an_episode_is_published_once_per_transition_with_filterable_attributes_and_minimal_data(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    store, clock, hook = LocalLiveStore(tmp_path / "live.sqlite"), Clock(T0 + 30_000), Recording()
    n = make_notifier(aws, store, clock, hook=hook)
    doc = episode()
    store.index([("alerts", doc)])
    assert n.plan() == 2 and n.send() == 2  # the topic, and the webhook from the same engine
    store.index([("alerts", doc)])  # a speed-layer retry rewrites the same document
    assert n.plan() == 0 and n.send() == 0
    (opened,) = published(aws)
    key = idempotency_key(doc["doc_id"], "open", TOPIC_ROUTE, Recipient("sns", aws["topic"]), 0)
    assert _attrs(opened) == {
        "kind": "breathing_pause",
        "severity": "high",
        "category": "clinical",
        "transition": "open",
        "route": TOPIC_ROUTE,
        "tier": "0",
        "idempotency_key": key,
    }
    assert opened["Subject"] == "[sleepstack] breathing_pause opened: bed 12 at 02:00"
    assert opened["Message"] == "breathing_pause opened\nWho: bed 12\nWhen: 2026-03-02 02:00:10 GMT\n"
    # nothing identifying beyond the bed label: no subject id, no device address, no value
    shown = {k: v for k, v in _attrs(opened).items() if k != "idempotency_key"}  # a hash may hold any digits
    for text in (opened["Message"], opened["Subject"], json.dumps(shown)):
        assert "S001" not in text and "AA:01" not in text and "42" not in text
    assert [a for a, _, _ in hook.got] == ["http://127.0.0.1:9/w"]
    # it closes: the topic route notifies closes, once
    store.index([("alerts", episode(end=T0 + 90_000))])
    clock.advance_min(2)
    assert n.plan() == 1 and n.send() == 1
    assert n.plan() == 0 and n.send() == 0
    (closed,) = published(aws)
    assert _attrs(closed)["transition"] == "close" and closed["Message"].startswith("breathing_pause closed\n")
    assert n.outbox.counts(n.now_ms()) == {"queued": 0, "sent": 3, "failed": 0, "oldest_unsent_s": 0}


def test_a_crashed_or_doubled_step_does_not_publish_twice(aws: dict[str, Any], tmp_path: Path) -> None:
    store, clock = LocalLiveStore(tmp_path / "live.sqlite"), Clock(T0 + 30_000)
    docs = [episode(device=f"AA:{i:02d}") for i in range(3)]
    store.index([("alerts", d) for d in docs])
    first = make_notifier(aws, store, clock)
    assert first.plan() == 3
    # the invocation dies before it sends; the next one (a fresh environment) plans again and sends
    second = make_notifier(aws, store, clock)
    assert second.plan() == 0 and second.send() == 3
    assert len(published(aws)) == 3

    # two steps racing past the read that skips known keys: the conditional put alone stores each key once
    class Racing(DynamoOutbox):
        def _existing(self, keys: list[str], attr: str = "key") -> dict[str, dict[str, Any]]:
            return {}

    racing = Racing(aws["ddb"], TABLE)
    late = episode(device="AA:09", start=T0 + 60_000)
    store.index([("alerts", late)])
    n_now = second.now_ms()
    rows = second._rows_for(late, second.routes[0], "bed 12", "UTC", T0, n_now, set())
    assert racing.add(rows, n_now) == 1 and racing.add(rows, n_now) == 0
    assert second.send() == 1 and second.send() == 0
    assert len(published(aws)) == 1

    # killed between SNS's acceptance and the commit (ADR 6's window): resent once, under the same key
    store.index([("alerts", episode(device="AA:10", start=T0 + 70_000))])

    def crash() -> None:
        raise SystemExit("killed")

    dying = make_notifier(aws, store, clock)
    dying.crash_after_send = crash
    assert dying.plan() == 1
    with pytest.raises(SystemExit):
        dying.send()
    clock.advance_min(1)
    again = make_notifier(aws, store, clock)
    assert again.send() == 1 and again.send() == 0
    copies = published(aws)
    assert len(copies) == 2 and len({_attrs(c)["idempotency_key"] for c in copies}) == 1


def test_a_failing_topic_raises_notifier_failing_and_blocks_no_other_channel(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    store, clock, hook = LocalLiveStore(tmp_path / "live.sqlite"), Clock(T0 + 30_000), Recording()
    gone = aws["topic"].replace("clinical-alerts", "deleted-topic")  # moto answers NotFound
    n = make_notifier(aws, store, clock, hook=hook, topic=gone)
    store.index([("alerts", episode(device=f"AA:{i:02d}")) for i in range(3)])
    assert n.plan() == 6
    assert n.send() == 3  # every webhook, though SNS fails
    assert len(hook.got) == 3 and published(aws) == []
    tech = [a for a in store.alerts(status="open") if a["kind"] == "notifier_failing"]
    assert len(tech) == 1 and tech[0]["device_id"] == "notifier-sns" and tech[0]["category"] == "technical"
    assert n.failing_channels == ["sns"]
    errors = {r["error"] for r in n.outbox.rows() if r["channel"] == "sns" and r["attempts"]}
    assert errors == {"sns: NotFound"}
    for _ in range(12):  # one SNS try per pass; each row: 1 s, then 2 s, the last try, then the dead letter
        clock.advance_min(5 / 60)
        n.send()
    counts = n.outbox.counts(n.now_ms())
    assert counts["failed"] == 3 and counts["sent"] == 3 and counts["queued"] == 0


@pytest.fixture(params=["sqlite", "dynamodb"])
def either(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "sqlite":
        yield Outbox(tmp_path / "notify" / "outbox.sqlite")
        return
    _fake_credentials(monkeypatch)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName=TABLE, **_table_spec("NotifierOutboxTable"))
        yield DynamoOutbox(ddb, TABLE)


def _planned(key: str, due_ms: int, channel: str = "sns") -> dict[str, Any]:
    return {
        "key": key,
        "alert_id": f"a-{key}",
        "transition": "open",
        "route": "r",
        "tier": 0,
        "channel": channel,
        "address": "x",
        "due_ms": due_ms,
        "message": {"subject": "s", "text": "t", "payload": {"kind": "hr_high", "v": 1.5}},
    }


def test_both_outboxes_keep_the_same_semantics(either: Any) -> None:
    box = either
    assert box.add([_planned("k2", 2_000), _planned("k1", 1_000), _planned("k3", 9_000)], 500) == 3
    assert box.add([_planned("k1", 1_000), _planned("k4", 3_000)], 600) == 1
    assert box.first_seen(["a", "b"], 100) == {"a": 100, "b": 100}
    assert box.first_seen(["a", "c"], 200) == {"a": 100, "c": 200}  # the first sighting wins
    assert box.get_mark("watermark_ms") == 0
    box.set_mark("watermark_ms", 7)
    assert box.get_mark("watermark_ms") == 7
    due = box.due(3_000)
    assert [r.key for r in due] == ["k1", "k2", "k4"] and due[0].message["payload"]["v"] == 1.5
    box.mark_attempt("k1", 5_000)
    assert [r.key for r in box.due(3_000)] == ["k2", "k4"]
    box.mark_error("k1", "sns: Throttling", failed=False)
    box.mark_attempt("k2", 4_000)
    box.mark_sent("k2", 3_100)
    box.mark_attempt("k4", 4_000)
    box.mark_error("k4", "x" * 900, failed=True)
    assert [(r.key, r.attempts) for r in box.due(10_000)] == [("k1", 1), ("k3", 0)]
    assert box.counts(10_000) == {"queued": 2, "sent": 1, "failed": 1, "oldest_unsent_s": 9}
    rows = {r["key"]: r for r in box.rows()}
    assert rows["k4"]["status"] == "failed" and len(rows["k4"]["error"]) == 500
    assert rows["k2"]["status"] == "sent" and rows["k2"]["sent_ms"] == 3_100 and rows["k2"]["error"] is None
    assert rows["k1"]["error"] == "sns: Throttling" and rows["k1"]["status"] == "queued"
    assert [r["key"] for r in box.rows(limit=1)] == ["k4"]  # newest first (created at 600)


def test_the_invocation_polls_until_its_margin_is_left(aws: dict[str, Any], tmp_path: Path) -> None:
    store, clock = LocalLiveStore(tmp_path / "live.sqlite"), Clock(T0 + 30_000)
    n = make_notifier(aws, store, clock)
    left = [60.0]
    slept: list[float] = []

    def sleep(s: float) -> None:  # an episode opens during the second pause
        slept.append(s)
        left[0] -= s
        clock.t += s
        if len(slept) == 2:
            store.index([("alerts", episode())])

    figures = run_invocation(n, lambda: left[0], 2.0, sleep)
    # passes start with 60, 58, ..., 10 s left: the last one still has the whole margin
    assert figures["passes"] == 26 and sum(slept) == 60 - STOP_MARGIN_S
    assert figures["planned"] == 1 and figures["sent"] == 1 and figures["errors"] == 0
    assert len(published(aws)) == 1


def test_the_lambda_entry_point_wires_the_aws_notifier_from_the_environment(
    aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.dynamodb import DynamoRegistry
    from sleepstack import lambda_entry

    aws["ddb"].create_table(TableName="registry", **_table_spec("RegistryTable"))
    reg = DynamoRegistry(aws["ddb"], "registry")
    reg.add_subject(Subject("S001", enrolled_ms=T0 - 86_400_000, tz="Europe/London", groups=("ward-7",)))
    reg.add_device(Device("AA:01", "bed", label="ward 7 bed 3"), at_ms=T0 - 86_400_000)
    reg.assign(Assignment("AA:01", T0 - 86_400_000, "S001"), at_ms=T0 - 86_400_000)
    home = tmp_path / "home"
    env = {
        "SLEEPSTACK_TARGET": "aws",
        "SLEEPSTACK_HOME": str(home),
        "SLEEPSTACK_REGISTRY_TABLE": "registry",
        "SLEEPSTACK_OUTBOX_TABLE": TABLE,
        "SLEEPSTACK_CLINICAL_TOPIC_ARN": aws["topic"],
        "SLEEPSTACK_NOTIFY_POLL_S": "0.5",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(lambda_entry, "_notifier", None)
    from sleepstack.settings import Settings

    live = LocalLiveStore(Settings.from_env().paths.live_db)
    live.index([("alerts", episode())])

    class Context:
        def __init__(self) -> None:
            self.left_s = STOP_MARGIN_S + 1.2  # room for two passes

        def get_remaining_time_in_millis(self) -> int:
            self.left_s -= 0.3
            return int(self.left_s * 1000)

    figures = lambda_entry.notifier_handler({"source": "aws.events"}, Context())
    assert figures["planned"] == 1 and figures["sent"] == 1 and figures["passes"] >= 1
    (msg,) = published(aws)
    assert "Who: ward 7 bed 3" in msg["Message"] and "S001" not in msg["Message"]
    assert "When: 2026-03-02 02:00:10 GMT" in msg["Message"]  # the subject's zone, from the registry


def test_the_template_deploys_what_the_code_expects() -> None:
    from sleepstack.settings import __doc__ as settings_doc

    res = load_template()["Resources"]
    table = res["NotifierOutboxTable"]["Properties"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [QUEUE_INDEX]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    fn = res["NotifierFunction"]["Properties"]
    assert fn["Handler"] == "sleepstack.lambda_entry.notifier_handler" and fn["ReservedConcurrentExecutions"] == 1
    for name in fn["Environment"]["Variables"]:  # every variable is one the settings read
        assert f"``{name}``" in str(settings_doc) or name == "POWERTOOLS_SERVICE_NAME", name
    assert fn["Timeout"] > STOP_MARGIN_S + 30  # a pass, its poll and the margin fit in an invocation
    assert res["NotifierSchedule"]["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    # only the notifier may publish to the clinical topic, and it may publish nowhere else
    publishers = []
    for name, r in res.items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        for policy in r["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
                if any(a.startswith("sns:") for a in actions):
                    publishers.append((name, actions, st["Resource"]))
    assert publishers == [("NotifierRole", ["sns:Publish"], {"Ref": "ClinicalAlertTopic"})]
    for alarm in ("NotifierErrorsAlarm", "NotifierNotRunningAlarm"):  # its own failures reach operations
        props = res[alarm]["Properties"]
        assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "NotifierFunction"}}]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    sms = res["ClinicalAlertSmsSubscription"]
    assert sms["Condition"] == "HasClinicalAlertSms" and sms["Properties"]["Protocol"] == "sms"
    assert sms["Properties"]["FilterPolicy"] == {"category": ["clinical"]}


def test_a_routes_file_names_sns_recipients_by_topic_arn(tmp_path: Path) -> None:
    from core.notify import RouteError
    from sleepstack.notify.routes_file import load_routes

    good = tmp_path / "routes.yaml"
    good.write_text("routes:\n  - name: a\n    tiers:\n      - recipients: [{sns: 'arn:aws:sns:eu-west-2:1:t'}]\n")
    assert load_routes(good)[0].tiers[0].recipients == (Recipient("sns", "arn:aws:sns:eu-west-2:1:t"),)
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - name: a\n    tiers:\n      - recipients: [{sns: 'clinical-alerts'}]\n")
    with pytest.raises(
        RouteError, match=r"route 'a' \(line 2\), field tiers\[0\]\.recipients\[0\].*not an SNS topic ARN"
    ):
        load_routes(bad)


def test_escalation_tiers_are_refused_on_aws_where_no_acknowledgement_reaches_the_notifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an acknowledgement store on AWS, a later tier would page whether or not
    somebody answered: the wiring refuses it with a typed error naming the route."""
    from core.notify import RouteError
    from sleepstack.settings import Settings
    from sleepstack.wiring import notifier
    from tests.conftest import REPO_ROOT

    _fake_credentials(monkeypatch)
    for k, v in {
        "SLEEPSTACK_TARGET": "aws",
        "SLEEPSTACK_HOME": str(tmp_path / "home"),
        "SLEEPSTACK_ALERT_ROUTES": str(REPO_ROOT / "docs" / "examples" / "alert-routes.yaml"),
    }.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(RouteError, match=r"route 'ward-7-clinical'.*escalates \(3 tiers\).*one tier on AWS"):
        notifier(Settings.from_env())
