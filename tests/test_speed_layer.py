"""Speed layer: per-device state across invocations, alerts, poison records, stores."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.contract import StrapSample, to_row, to_wire
from core.contract.epochs import EPOCH_MS
from core.live.alerts import AlertRules, AlertTracker, alert_id
from core.live.epochs import advance
from core.nights.nightly import _strap_vitals
from dead_letters import LocalDeadLetters
from local.event_source_mapping import LambdaContext, kinesis_event
from local.live_store import LocalLiveStore
from local.state_store import LocalStateStore
from simulator.nights import SimConfig, night_records, simulate_night
from speed_layer.handler import SpeedLayerHandler
from speed_layer.processing import apply_records
from tests.conftest import T0_MS, aggregate_one

RULES = AlertRules(hr_high_bpm=66, hr_low_bpm=52, hr_sustained_s=90)  # low thresholds: alerts on a normal night


def _night(hours: float = 2.5, seed: int = 3) -> tuple[Any, list[Any]]:
    night = simulate_night(SimConfig("s001", T0_MS, seed=seed, apnea_per_hour=8.0))
    recs = night_records(night, strap_device="strap-1", bed_device="bed-1")
    return night, [r for r in recs if r.event_time_ms < night.t0_ms + hours * 3_600_000]


def _run(recs: Sequence[Any], batch: int, *, twice: bool = False, rules: AlertRules = RULES) -> dict[Any, str]:
    """Final store contents after feeding ``recs`` in batches (each optionally delivered twice)."""
    store: dict[Any, str] = {}
    states: dict[str, dict[str, Any]] = {}
    for i in range(0, len(recs), batch):
        for _ in range(2 if twice else 1):
            applied = apply_records(recs[i : i + batch], states, rules)
            for kind, doc in applied.docs:
                store[kind, doc["doc_id"]] = json.dumps(doc, sort_keys=True)
            states = {**states, **json.loads(json.dumps(applied.states))}  # persisted as JSON
    return store


def test_vitals_and_alerts_do_not_depend_on_batching_or_redelivery() -> None:
    _, recs = _night(hours=1.5)
    reference = _run(recs, 10_000)
    kinds = {k for k, _ in reference}
    assert kinds == {"vitals", "alerts", "samples"}
    for batch, twice in ((1, False), (7, True), (100, False), (100, True)):
        assert _run(recs, batch, twice=twice) == reference, (batch, twice)


def test_full_replay_with_state_kept_changes_nothing_and_from_scratch_rebuilds_the_same() -> None:
    _, recs = _night(hours=1.0)
    states: dict[str, dict[str, Any]] = {}
    first = apply_records(recs, states, RULES)
    again = apply_records(recs, first.states, RULES)
    assert again.docs == [] and len(again.behind) == len(recs)
    assert apply_records(recs, {}, RULES).docs == first.docs


def test_strap_epochs_agree_with_the_batch_layer() -> None:
    _, recs = _night(hours=1.0)
    strap = [r for r in recs if isinstance(r, StrapSample)]
    speed = {json.loads(v)["epoch_start_ms"]: json.loads(v) for (k, _), v in _run(strap, 50).items() if k == "vitals"}
    batch = _strap_vitals(pd.DataFrame([to_row(r) for r in strap]))
    complete = [d for d in speed.values() if d["complete"]]
    assert len(complete) == len(batch) - 1  # the last epoch is still open in the speed layer
    for d in complete:
        row = batch.loc[d["epoch_start_ms"]]
        for f_speed, f_batch in (("hr_bpm", "strap_hr_bpm"), ("rmssd_ms", "rmssd_ms"), ("sdnn_ms", "sdnn_ms")):
            assert np.isclose(d[f_speed], row[f_batch], atol=1e-3), f_speed
    last = max(speed)
    assert speed[last]["complete"] is False and speed[last]["n_records"] >= 1


def test_breathing_pause_and_bed_exit_alerts_match_the_simulated_events() -> None:
    night = simulate_night(SimConfig("s001", T0_MS, seed=5, apnea_per_hour=6.0))
    recs = [r for r in night_records(night, strap_device=None, bed_device="bed-1")]
    docs = [json.loads(v) for (k, _), v in _run(recs, 500, rules=AlertRules()).items() if k == "alerts"]
    pauses = sorted((d["start_ms"], d["end_ms"]) for d in docs if d["kind"] == "breathing_pause")
    truth = [
        (night.t0_ms + float(e["start_s"]) * 1000, night.t0_ms + float(e["end_s"]) * 1000)
        for e in night.events
        if e["kind"] == "apnea"
    ]
    assert len(truth) >= 10
    matched = [any(s < te and e > ts for s, e in pauses) for ts, te in truth]
    assert sum(matched) / len(truth) >= 0.95  # recall
    assert len(pauses) <= len(truth)  # no false pause, none raised twice
    for s, e in pauses:
        ts, te = min(truth, key=lambda t: abs(t[0] - s))
        assert abs(s - ts) <= 1500 and abs(e - te) <= 1500
    (exit_truth,) = [e for e in night.events if e["kind"] == "bed_exit"]
    (exit_alert,) = [d for d in docs if d["kind"] == "bed_exit"]
    assert exit_alert["status"] == "closed"
    assert abs(exit_alert["start_ms"] - (night.t0_ms + float(exit_truth["start_s"]) * 1000)) <= EPOCH_MS
    assert abs(exit_alert["end_ms"] - (night.t0_ms + float(exit_truth["end_s"]) * 1000)) <= EPOCH_MS
    assert not [d for d in docs if d["kind"] in ("hr_high", "hr_low", "contact_lost")]


def _epoch(i: int, **fields: Any) -> dict[str, Any]:
    return {"epoch_start_ms": T0_MS + i * EPOCH_MS, "device_id": "d", "subject_id": "s", "source": "strap", **fields}


def test_sustained_heart_rate_alert_is_raised_once_with_start_and_end() -> None:
    tracker = AlertTracker(AlertRules(hr_high_bpm=100, hr_sustained_s=120))
    hr = [80, 105, 110, None, 120, 115, 90, 80]
    out = [(i, a) for i, v in enumerate(hr) for a in tracker.observe(_epoch(i, hr_bpm=v))]
    assert [(i, a["status"]) for i, a in out] == [(4, "open"), (6, "closed")]
    opened, closed = out[0][1], out[1][1]
    assert opened["doc_id"] == closed["doc_id"] == alert_id("d", "hr_high", T0_MS + EPOCH_MS)
    assert closed["start_ms"] == T0_MS + EPOCH_MS and closed["end_ms"] == T0_MS + 6 * EPOCH_MS
    assert closed["value"] == 120 and closed["threshold"] == 100 and opened["end_ms"] is None
    # a brief excursion never alerts; a data gap ends an open run at its last epoch
    t2 = AlertTracker(AlertRules(hr_low_bpm=40, hr_sustained_s=60, max_gap_s=120))
    assert t2.observe(_epoch(0, hr_bpm=35)) == []
    assert [a["status"] for a in t2.observe(_epoch(1, hr_bpm=36))] == ["open"]
    (gap_close,) = t2.observe(_epoch(20, hr_bpm=60))
    assert gap_close["status"] == "closed" and gap_close["end_ms"] == T0_MS + 2 * EPOCH_MS
    assert AlertTracker.from_state(t2.rules, json.loads(json.dumps(t2.to_state()))) == t2


def test_contact_lost_alert_from_strap_notifications() -> None:
    _, recs = _night(hours=0.5)
    strap = [r for r in recs if isinstance(r, StrapSample)]
    lost_from, lost_to = T0_MS + 600_000, T0_MS + 720_000  # two minutes without skin contact
    recs2 = [
        dataclasses.replace(r, sensor_contact=False, hr_bpm=0, rr_ms=())
        if lost_from <= r.event_time_ms < lost_to
        else r
        for r in strap
    ]
    docs = [json.loads(v) for (k, _), v in _run(recs2, 100, rules=AlertRules()).items() if k == "alerts"]
    (alert,) = docs
    assert alert["kind"] == "contact_lost" and alert["status"] == "closed"
    assert (alert["start_ms"], alert["end_ms"]) == (lost_from, lost_to)


def test_device_handed_to_another_subject_starts_fresh_state() -> None:
    _, recs = _night(hours=0.2)
    strap = [r for r in recs if isinstance(r, StrapSample)]
    half = len(strap) // 2
    moved = strap[:half] + [dataclasses.replace(r, subject_id="s002") for r in strap[half:]]
    adv = advance(None, moved, RULES)
    assert adv.state["subject_id"] == "s002"
    vitals = [d for k, d in adv.docs if k == "vitals"]
    assert {d["subject_id"] for d in vitals} == {"s001", "s002"}


# --------------------------------------------------------------------------- handler


def _event(recs: Sequence[bytes], first_seq: int = 1000) -> dict[str, Any]:
    rows = [
        {
            "PartitionKey": "k",
            "SequenceNumber": str(first_seq + i),
            "Data": data,
            "ApproximateArrivalTimestamp": datetime.now(tz=UTC),
        }
        for i, data in enumerate(recs)
    ]
    return kinesis_event(rows, shard_id="shardId-000000000000", arn="arn:aws:kinesis:local:0:stream/s", region="local")


def _handler(tmp: Path, name: str = "h") -> tuple[SpeedLayerHandler, LocalLiveStore, LocalDeadLetters]:
    store = LocalLiveStore(tmp / name / "live.sqlite")
    dlq = LocalDeadLetters(tmp / name / "dlq")
    return SpeedLayerHandler(store, LocalStateStore(tmp / name / "state.sqlite"), dlq, rules=RULES), store, dlq


def _bad_inputs(good: StrapSample) -> dict[str, bytes]:
    base = json.loads(to_wire(good))
    base.pop("record_id")

    def variant(**kw: Any) -> bytes:
        return json.dumps({**base, **kw}).encode()

    return {
        "nan": variant(hr_bpm=float("nan")),
        "infinite rr": variant(rr_ms=[float("inf")]),
        "hr 0 with contact": variant(hr_bpm=0, sensor_contact=True),
        "hr 300": variant(hr_bpm=300),
        "hours in the future": variant(event_time_ms=base["ingest_time_ms"] + 3 * 3_600_000),
        "hours in the past": variant(event_time_ms=base["ingest_time_ms"] - 3 * 3_600_000),
        "unknown schema version": variant(schema_version=3),
        "over 1 MiB": b'{"pad":"' + b"x" * (1 << 20) + b'"}',
        "not json": b"\xff\xfe garbage",
    }


def test_bad_inputs_are_quarantined_with_reasons_and_the_rest_flows(tmp_path: Path) -> None:
    _, recs = _night(hours=0.1)
    strap = [r for r in recs if isinstance(r, StrapSample)]
    bad = _bad_inputs(strap[0])
    payloads = [to_wire(r) for r in strap[:40]]
    mixed = payloads[:20] + list(bad.values()) + payloads[20:]
    handler, store, dlq = _handler(tmp_path)
    resp = handler(_event(mixed), LambdaContext())
    assert resp == {"batchItemFailures": []}
    assert handler.stats.quarantined == len(bad)
    letters = dlq.read_all()
    assert len(letters) == len(bad)
    reasons = " | ".join(letter["reason"] for letter in letters)
    for needle in (
        "non-finite number NaN",
        "Infinity",
        "250",
        "implausible",
        "after its ingest",
        "before its ingest",
        "version 3",
        "1 MiB",
    ):
        assert needle in reasons, needle
    assert base64.b64decode(letters[0]["payload_b64"]) in bad.values()
    assert store.count("samples") == 40


def _by_device(recs: Sequence[Any], per: int, version: int = 2) -> list[bytes]:
    """Each device's records packed ``per`` to a KPL aggregate, in stream order."""
    out: list[bytes] = []
    open_: dict[str, list[bytes]] = {}
    for r in recs:
        group = open_.setdefault(r.device_id, [])
        group.append(to_wire(r, version=version))
        if len(group) == per:
            out.append(aggregate_one(r.device_id, group))
            open_[r.device_id] = []
    out += [aggregate_one(k, g) for k, g in open_.items() if g]
    return out


def test_aggregated_v1_and_v2_records_interleaved_give_the_same_documents(tmp_path: Path) -> None:
    _, recs = _night(hours=0.5)
    reference, ref_store, _ = _handler(tmp_path, "plain-v2")
    assert reference(_event([to_wire(r) for r in recs]), LambdaContext()) == {"batchItemFailures": []}
    half = len(recs) // 2
    mixed = (
        [to_wire(r, version=1) for r in recs[: half // 2]]
        + _by_device(recs[half // 2 : half], 7, version=1)
        + _by_device(recs[half:], 40)
    )
    handler, store, _ = _handler(tmp_path, "mixed")
    assert handler(_event(mixed), LambdaContext()) == {"batchItemFailures": []}
    assert handler.stats.records == len(recs) and handler.stats.kinesis_records == len(mixed)
    assert handler.stats.quarantined == 0
    assert store.dump() == ref_store.dump()


def test_a_bad_user_record_in_an_aggregate_is_quarantined_alone(tmp_path: Path) -> None:
    _, recs = _night(hours=0.1)
    strap = [r for r in recs if isinstance(r, StrapSample)][:30]
    bad = _bad_inputs(strap[0])["hr 300"]
    agg = aggregate_one(strap[0].device_id, [to_wire(r) for r in strap[:10]] + [bad] + [to_wire(r) for r in strap[10:]])
    handler, store, dlq = _handler(tmp_path)
    assert handler(_event([agg]), LambdaContext()) == {"batchItemFailures": []}
    (letter,) = dlq.read_all()
    assert base64.b64decode(letter["payload_b64"]) == bad
    assert letter["field"] == "hr_bpm" and letter["source"]["subSequenceNumber"] == 10
    assert store.count("samples") == 30


def _resealed(body: bytes) -> bytes:
    return b"\xf3\x89\x9a\xc2" + body + hashlib.md5(body, usedforsecurity=False).digest()


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda a: a[:-40], "MD5"),  # truncated
        (lambda a: a[:100] + bytes([a[100] ^ 0xFF]) + a[101:], "MD5"),  # a flipped byte
        (lambda a: _resealed(b"\x0b" + a[5:-16]), "wire type"),  # a sound checksum over a bad message
    ],
)
def test_a_corrupt_aggregate_is_quarantined_whole_and_the_shard_flows(
    tmp_path: Path, corrupt: Any, reason: str
) -> None:
    _, recs = _night(hours=0.1)
    strap = [r for r in recs if isinstance(r, StrapSample)][:30]
    broken = corrupt(aggregate_one(strap[0].device_id, [to_wire(r) for r in strap[:10]]))
    handler, store, dlq = _handler(tmp_path)
    resp = handler(_event([broken, *_by_device(strap[10:], 5)]), LambdaContext())
    assert resp == {"batchItemFailures": []}
    (letter,) = dlq.read_all()
    assert letter["field"] == "<aggregate>" and reason in letter["reason"]
    assert base64.b64decode(letter["payload_b64"]) == broken
    assert store.count("samples") == 20


def test_a_failing_aggregate_is_retried_from_its_sequence_number(tmp_path: Path) -> None:
    _, recs = _night(hours=0.25)
    payloads = _by_device(recs, 25)
    reference, ref_store, _ = _handler(tmp_path, "ref")
    reference(_event(payloads), LambdaContext())
    handler, store, _ = _handler(tmp_path, "flaky")
    import speed_layer.handler as mod

    real, calls = mod.decode, [0]

    def flaky(data: bytes) -> Any:
        calls[0] += 1
        if calls[0] == 60:  # a user record of the third aggregate
            raise RuntimeError("transient")
        return real(data)

    mod.decode = flaky
    try:
        (failure,) = handler(_event(payloads), LambdaContext())["batchItemFailures"]
        assert failure["itemIdentifier"] == "1002"
        assert handler(_event(payloads[2:], first_seq=1002), LambdaContext()) == {"batchItemFailures": []}
    finally:
        mod.decode = real
    assert store.dump() == ref_store.dump()


def test_a_failing_record_stops_its_batch_there_and_the_retry_loses_nothing(tmp_path: Path) -> None:
    _, recs = _night(hours=0.25)
    payloads = [to_wire(r) for r in recs]
    reference, ref_store, _ = _handler(tmp_path, "ref")
    reference(_event(payloads), LambdaContext())

    handler, store, _ = _handler(tmp_path, "flaky")
    boom = {5}  # the 6th record fails once with an unexpected error

    import speed_layer.handler as mod

    real = mod.decode

    def flaky(data: bytes) -> Any:
        if payloads.index(data) in boom:
            boom.clear()
            raise RuntimeError("transient")
        return real(data)

    mod.decode = flaky
    try:
        resp = handler(_event(payloads), LambdaContext())
        (failure,) = resp["batchItemFailures"]
        assert failure["itemIdentifier"] == "1005"
        # Lambda re-delivers from the lowest failed sequence number
        assert handler(_event(payloads[5:], first_seq=1005), LambdaContext()) == {"batchItemFailures": []}
    finally:
        mod.decode = real
    assert store.dump() == ref_store.dump()


class _RefusingStore(LocalLiveStore):
    def index(self, docs: Any) -> Any:
        from speed_layer.store import Rejected

        keep = [(k, d) for k, d in docs if k != "alerts"]
        super().index(keep)
        return [Rejected(k, d, 400, "mapper_parsing_exception") for k, d in docs if k == "alerts"]


def test_documents_the_store_refuses_for_good_are_dead_lettered(tmp_path: Path) -> None:
    _, recs = _night(hours=1.0)
    store = _RefusingStore(tmp_path / "live.sqlite")
    dlq = LocalDeadLetters(tmp_path / "dlq")
    handler = SpeedLayerHandler(store, LocalStateStore(tmp_path / "state.sqlite"), dlq, rules=RULES)
    handler(_event([to_wire(r) for r in recs]), LambdaContext())
    assert handler.stats.rejected > 0 and handler.stats.rejected == len(dlq.read_all())
    assert "mapper_parsing_exception" in dlq.read_all()[0]["reason"]


def test_live_store_answers_latest_vitals_and_open_alerts(tmp_path: Path) -> None:
    _, recs = _night(hours=2.0)
    handler, store, _ = _handler(tmp_path)
    for i in range(0, len(recs), 500):
        handler(_event([to_wire(r) for r in recs[i : i + 500]], first_seq=1000 + i), LambdaContext())
    (latest,) = store.latest("vitals", "s001")
    assert latest["epoch_start_ms"] == max(r.event_time_ms for r in recs) // EPOCH_MS * EPOCH_MS
    opened = store.open_alerts("s001")
    assert all(a["status"] == "open" and a["end_ms"] is None for a in opened)
    assert store.open_alerts("nobody") == []


@pytest.mark.parametrize("n", [0, 1, 130])
def test_dynamo_state_store_round_trip(n: int) -> None:
    import boto3
    from moto import mock_aws

    from speed_layer.state_store import DynamoStateStore

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "device_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        st = DynamoStateStore(ddb, "state", clock=lambda: 1_000.0)
        states = {f"dev-{i}": {"v": 1, "open": [[i, "r", 60, [1000.0], True]]} for i in range(n)}
        st.put_many(states)
        assert st.get_many([*states, "unknown"]) == states
        if n:
            item = ddb.get_item(TableName="state", Key={"device_id": {"S": "dev-0"}})["Item"]
            assert int(item["expires_at"]["N"]) == 1_000 + 7 * 24 * 3600


def test_live_and_opensearch_export_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from sleepstack.cli import main

    monkeypatch.setenv("SLEEPSTACK_HOME", str(tmp_path))
    _, recs = _night(hours=1.0)
    store = LocalLiveStore(tmp_path / "serving" / "live.sqlite")
    store.index(apply_records(recs, {}, AlertRules(hr_high_bpm=30, hr_sustained_s=60)).docs)
    assert main(["live", "--subject", "s001", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown["latest_vitals"]) == {"bed", "strap"}
    assert [a["kind"] for a in shown["open_alerts"]] == ["hr_high", "hr_high"]  # HR never falls to 30: open
    assert main(["live", "--subject", "s001"]) == 0
    text = capsys.readouterr().out
    assert "bed epoch" in text and "open alerts: 2" in text and "hr_high" in text
    assert main(["live", "--subject", "nobody"]) == 1
    out = tmp_path / "objects.ndjson"
    assert main(["opensearch", "export", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) > 10
    assert main(["opensearch", "setup"]) == 2  # no endpoint: a clear error, not a traceback
    assert "OPENSEARCH_URL" in capsys.readouterr().err


def test_lambda_entry_emits_one_emf_document_per_invocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json as _json
    from datetime import UTC, datetime

    from dead_letters import LocalDeadLetters
    from local.event_source_mapping import LambdaContext, kinesis_event
    from sleepstack import lambda_entry

    handler = SpeedLayerHandler(
        LocalLiveStore(tmp_path / "live.sqlite"),
        LocalStateStore(tmp_path / "state.sqlite"),
        LocalDeadLetters(tmp_path / "dlq"),
    )
    monkeypatch.setattr(lambda_entry, "_handler", handler)
    # the structured logger's handler keeps the stdout of the test that first imported the
    # module (another test in this worker, under xdist): point it at this test's
    for h in logging.getLogger(lambda_entry.SERVICE).handlers:
        if isinstance(h, logging.StreamHandler):
            monkeypatch.setattr(h, "stream", sys.stdout)
    now = datetime.now(UTC)
    rows = [{"PartitionKey": "k", "SequenceNumber": "1", "Data": b"not json", "ApproximateArrivalTimestamp": now}]
    event = kinesis_event(rows, shard_id="shardId-000000000000", arn="arn:aws:kinesis:local:0:stream/s", region="l")
    assert lambda_entry.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    docs = [_json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = next(d for d in docs if "_aws" in d)
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Records", "Documents", "Quarantined", "Rejected", "Behind", "DurationMs"} <= names
    value = {k: (v[0] if isinstance(v, list) else v) for k, v in emf.items() if k in names}
    assert value["Records"] == 1 and value["Quarantined"] == 1 and value["Documents"] == 0
    assert any(d.get("message") == "batch processed" and d.get("service") for d in docs)  # a structured log line
