"""The OpenSearch adapter and setup, checked against the exact HTTP requests they send."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from core.live.alerts import ALERT_FIELDS
from core.signals.vitals import EPOCH_VITALS_FIELDS, STRAP_SAMPLE_FIELDS
from serving.live_queries import OpenSearchLiveQueries
from speed_layer.dashboards import DASHBOARD_IDS, saved_objects, saved_objects_ndjson
from speed_layer.indices import index_for, index_template, ism_policy, mapping
from speed_layer.opensearch_setup import SetupError, import_dashboards, install
from speed_layer.store import OpenSearchLiveStore, StoreError
from tests.fake_opensearch import FakeCluster, Sent, bulk_ok

DAY_MS = 1_767_657_000_000  # 2026-01-05T23:50:00Z


def _vitals(i: int, t_ms: int = DAY_MS) -> tuple[str, dict[str, Any]]:
    return "vitals", {"doc_id": f"v{i}", "subject_id": "s1", "epoch_start_ms": t_ms + i * 30_000, "hr_bpm": 60.0}


def test_bulk_request_is_exactly_action_and_source_lines_into_daily_indices() -> None:
    cluster = FakeCluster(bulk_ok)
    store = OpenSearchLiveStore(cluster.client(), clock=lambda: 1_800_000_000.5)
    assert (
        store.index([_vitals(0), _vitals(30), ("alerts", {"doc_id": "a1", "start_ms": DAY_MS, "status": "open"})]) == []
    )
    (req,) = cluster.sent
    assert (req.method, req.url, req.params) == ("POST", "/_bulk", {})
    assert req.body is not None and req.body.endswith(b"\n")
    assert req.ndjson() == [
        {"index": {"_index": "sleepstack-vitals-2026.01.05", "_id": "v0"}},
        {"doc_id": "v0", "epoch_start_ms": DAY_MS, "hr_bpm": 60.0, "subject_id": "s1"},
        {"index": {"_index": "sleepstack-vitals-2026.01.06", "_id": "v30"}},  # past midnight: next day's index
        {"doc_id": "v30", "epoch_start_ms": DAY_MS + 900_000, "hr_bpm": 60.0, "subject_id": "s1"},
        {"index": {"_index": "sleepstack-alerts-2026.01.05", "_id": "a1"}},
        {"doc_id": "a1", "indexed_ms": 1_800_000_000_500, "start_ms": DAY_MS, "status": "open"},  # stamped
    ]


def test_bulk_bodies_are_cut_by_bytes() -> None:
    cluster = FakeCluster(bulk_ok)
    store = OpenSearchLiveStore(cluster.client(), max_bulk_bytes=1000)
    store.index([_vitals(i) for i in range(40)])
    sizes = [len(r.body or b"") for r in cluster.sent]
    assert len(sizes) > 1 and max(sizes) <= 1000
    ids = [line["index"]["_id"] for r in cluster.sent for line in r.ndjson()[::2]]
    assert ids == [f"v{i}" for i in range(40)]


def test_throttled_items_alone_are_resent_with_backoff_and_refused_items_returned() -> None:
    calls: list[list[str]] = []

    def respond(req: Sent) -> tuple[int, Any]:
        lines = req.ndjson()
        ids = [a["index"]["_id"] for a in lines[::2]]
        calls.append(ids)
        items = []
        for i in ids:
            if i == "v1" and len(calls) < 3:
                items.append({"index": {"_id": i, "status": 429, "error": {"type": "es_rejected_execution_exception"}}})
            elif i == "v2":
                items.append({"index": {"_id": i, "status": 400, "error": {"type": "mapper_parsing_exception"}}})
            else:
                items.append({"index": {"_id": i, "status": 200}})
        return 200, {"errors": True, "items": items}

    sleeps: list[float] = []
    store = OpenSearchLiveStore(
        FakeCluster(respond).client(), sleep=sleeps.append, rng=random.Random(1), base_backoff_s=0.1
    )
    rejected = store.index([_vitals(i) for i in range(4)])
    assert calls == [["v0", "v1", "v2", "v3"], ["v1"], ["v1"]]
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2
    (bad,) = rejected
    assert (bad.kind, bad.doc["doc_id"], bad.status) == ("vitals", "v2", 400)
    assert "mapper_parsing_exception" in bad.reason


@pytest.mark.parametrize("status", [429, 503])
def test_whole_request_throttling_is_retried_then_raises(status: int) -> None:
    cluster = FakeCluster(lambda req: (status, {"error": "busy"}))
    store = OpenSearchLiveStore(cluster.client(), sleep=lambda s: None, max_attempts=3)
    with pytest.raises(StoreError, match="after 3 attempts"):
        store.index([_vitals(0)])
    assert len(cluster.sent) == 3


def test_a_refused_request_raises_at_once() -> None:
    cluster = FakeCluster(lambda req: (403, {"error": "security_exception"}))
    with pytest.raises(StoreError, match="403"):
        OpenSearchLiveStore(cluster.client(), sleep=lambda s: None).index([_vitals(0)])
    assert len(cluster.sent) == 1


def test_queries_sent_for_live_views() -> None:
    cluster = FakeCluster(lambda req: (200, {"hits": {"hits": [{"_source": {"doc_id": "x", "start_ms": 1}}]}}))
    queries = OpenSearchLiveQueries(cluster.client())
    assert queries.latest("vitals", "s1", 3) == [{"doc_id": "x", "start_ms": 1}]
    assert queries.open_alerts("s1") == [{"doc_id": "x", "start_ms": 1}]
    assert queries.between("vitals", "s1", DAY_MS, DAY_MS + 3_600_000) == [{"doc_id": "x", "start_ms": 1}]
    latest, alerts, between = cluster.sent
    assert (latest.method, latest.url) == ("POST", "/sleepstack-vitals-*/_search")
    assert latest.params == {"ignore_unavailable": "true"}  # no index yet: an empty answer
    assert latest.json() == {
        "size": 3,
        "query": {"term": {"subject_id": "s1"}},
        "sort": [{"epoch_start_ms": {"order": "desc"}}, {"doc_id": {"order": "asc"}}],
    }
    assert alerts.url == "/sleepstack-alerts-*/_search"
    assert alerts.json()["query"]["bool"]["filter"] == [{"term": {"subject_id": "s1"}}, {"term": {"status": "open"}}]
    # values travel as term and range values in the body, never as query-string syntax
    assert between.json()["query"]["bool"]["filter"] == [
        {"term": {"subject_id": "s1"}},
        {"range": {"epoch_start_ms": {"gte": DAY_MS, "lt": DAY_MS + 3_600_000, "format": "epoch_millis"}}},
    ]
    assert between.json()["sort"] == [{"epoch_start_ms": {"order": "asc"}}, {"doc_id": {"order": "asc"}}]


def test_one_alert_is_read_by_a_term_on_its_doc_id() -> None:
    answers = iter([{"hits": {"hits": [{"_source": {"doc_id": "a1", "subject_id": "s1"}}]}}, {"hits": {"hits": []}}])
    cluster = FakeCluster(lambda req: (200, next(answers)))
    queries = OpenSearchLiveQueries(cluster.client())
    assert queries.alert("a1") == {"doc_id": "a1", "subject_id": "s1"}
    assert queries.alert("nope") is None
    found, missing = cluster.sent
    assert found.url == "/sleepstack-alerts-*/_search"
    assert found.json() == {"size": 1, "query": {"bool": {"filter": [{"term": {"doc_id": "a1"}}]}}}
    assert missing.json()["query"]["bool"]["filter"] == [{"term": {"doc_id": "nope"}}]


def test_alert_counts_are_one_terms_aggregation_by_kind_and_status() -> None:
    answer = {
        "hits": {"hits": []},
        "aggregations": {
            "kind": {
                "buckets": [
                    {"key": "hr_high", "status": {"buckets": [{"key": "open", "doc_count": 1}]}},
                    {"key": "bed_exit", "status": {"buckets": [{"key": "closed", "doc_count": 4}]}},
                ]
            }
        },
    }
    cluster = FakeCluster(lambda req: (200, answer))
    assert OpenSearchLiveQueries(cluster.client()).alert_counts() == [
        {"kind": "bed_exit", "status": "closed", "count": 4},
        {"kind": "hr_high", "status": "open", "count": 1},
    ]
    (req,) = cluster.sent
    assert req.url == "/sleepstack-alerts-*/_search" and req.json()["size"] == 0


def test_subjects_are_read_from_one_aggregation_and_the_open_alert_counts() -> None:
    newest = {"doc_id": "b", "source": "bed", "presence": True, "epoch_start_ms": DAY_MS}
    answers = [
        {
            "hits": {"hits": []},
            "aggregations": {
                "subjects": {
                    "buckets": [
                        {
                            "key": "s1",
                            "last_seen": {"value": float(DAY_MS)},
                            "sources": {
                                "buckets": [{"key": "bed", "newest": {"hits": {"hits": [{"_source": newest}]}}}]
                            },
                        }
                    ]
                }
            },
        },
        {"hits": {"hits": []}, "aggregations": {"s": {"buckets": [{"key": "s1", "doc_count": 2}]}}},
    ]
    cluster = FakeCluster(lambda req: (200, answers.pop(0)))
    assert OpenSearchLiveQueries(cluster.client()).subjects() == [
        {"subject_id": "s1", "last_seen_ms": DAY_MS, "latest": {"bed": newest}, "open_alerts": 2}
    ]
    vitals, alerts = cluster.sent
    assert vitals.json()["aggs"]["subjects"]["terms"]["field"] == "subject_id"
    assert alerts.json()["query"] == {"term": {"status": "open"}}


def test_every_document_field_is_mapped_explicitly() -> None:
    for kind, fields in (("vitals", EPOCH_VITALS_FIELDS), ("alerts", ALERT_FIELDS), ("samples", STRAP_SAMPLE_FIELDS)):
        m = mapping(kind)
        assert m["dynamic"] == "strict"
        assert set(m["properties"]) == {f.name for f in fields}
    props = mapping("vitals")["properties"]
    assert props["epoch_start_ms"] == {"type": "date", "format": "epoch_millis"}
    assert props["pause_start_ms"] == {"type": "long"} and props["subject_id"] == {"type": "keyword"}
    assert index_template("sleepstack", "alerts")["index_patterns"] == ["sleepstack-alerts-*"]
    assert index_for("sleepstack", "samples", {"event_time_ms": DAY_MS}) == "sleepstack-samples-2026.01.05"


def test_real_documents_fit_their_mapping() -> None:
    from core.live.alerts import AlertRules
    from simulator.nights import SimConfig, night_records, simulate_night
    from speed_layer.processing import apply_records
    from tests.conftest import T0_MS

    night = simulate_night(SimConfig("s001", T0_MS, seed=2, apnea_per_hour=10.0))
    from core.ble.device_status import StatusSnapshot, status_record

    recs: list[Any] = [
        r for r in night_records(night, strap_device="st", bed_device="bd") if r.event_time_ms < T0_MS + 3_600_000
    ]
    for k in range(10):  # a strap with a flat battery that falls silent
        snap = StatusSnapshot("strap", connected=k < 3, notifications=60 if k < 3 else 0, battery_pct=15, worn=True)
        recs.append(status_record(snap, device_id="st", subject_id="s001", receive_ms=T0_MS + 60_000 * k))
    docs = apply_records(recs, {}, AlertRules(hr_high_bpm=60)).docs
    kinds = set()
    for kind, doc in docs:
        kinds.add(kind)
        assert set(doc) <= set(mapping(kind)["properties"]), (kind, set(doc) - set(mapping(kind)["properties"]))
    assert kinds == {"vitals", "alerts", "samples", "status"}
    technical = {d["kind"] for k, d in docs if k == "alerts" and d["category"] == "technical"}
    assert {"battery_low", "device_silent"} <= technical


def test_ism_policy_has_hot_warm_delete_and_attaches_by_template() -> None:
    p = ism_policy("sleepstack", "samples")["policy"]
    assert [s["name"] for s in p["states"]] == ["hot", "warm", "delete"]
    assert p["states"][1]["transitions"][0]["conditions"] == {"min_index_age": "14d"}
    assert p["ism_template"] == [{"index_patterns": ["sleepstack-samples-*"], "priority": 100}]
    with pytest.raises(ValueError, match="shorter"):
        ism_policy("sleepstack", "vitals", 1)


MAPPING_PARAMS = {"ignore_unavailable": "true", "allow_no_indices": "true"}


def test_setup_sends_policies_templates_in_order_and_updates_existing_policies() -> None:
    existing = {"/_plugins/_ism/policies/sleepstack-alerts-lifecycle"}

    def respond(req: Sent) -> tuple[int, Any]:
        if req.method == "GET":
            if req.url in existing:
                return 200, {"_id": "x", "_seq_no": 7, "_primary_term": 2, "policy": {}}
            return 404, {"error": {"type": "resource_not_found_exception"}}
        return 200, {"acknowledged": True}

    cluster = FakeCluster(respond)
    report = install(cluster.client(), retention_days={"vitals": 30})
    got = [(r.method, r.url, r.params) for r in cluster.sent]
    assert got == [
        ("GET", "/_plugins/_ism/policies/sleepstack-vitals-lifecycle", {}),
        ("PUT", "/_plugins/_ism/policies/sleepstack-vitals-lifecycle", {}),
        ("PUT", "/_index_template/sleepstack-vitals", {}),
        ("PUT", "/sleepstack-vitals-*/_mapping", MAPPING_PARAMS),  # indices of an older template
        ("GET", "/_plugins/_ism/policies/sleepstack-alerts-lifecycle", {}),
        ("PUT", "/_plugins/_ism/policies/sleepstack-alerts-lifecycle", {"if_seq_no": 7, "if_primary_term": 2}),
        ("PUT", "/_index_template/sleepstack-alerts", {}),
        ("PUT", "/sleepstack-alerts-*/_mapping", MAPPING_PARAMS),  # indices of an older template
        ("GET", "/_plugins/_ism/policies/sleepstack-samples-lifecycle", {}),
        ("PUT", "/_plugins/_ism/policies/sleepstack-samples-lifecycle", {}),
        ("PUT", "/_index_template/sleepstack-samples", {}),
        ("PUT", "/sleepstack-samples-*/_mapping", MAPPING_PARAMS),  # indices of an older template
        ("GET", "/_plugins/_ism/policies/sleepstack-status-lifecycle", {}),
        ("PUT", "/_plugins/_ism/policies/sleepstack-status-lifecycle", {}),
        ("PUT", "/_index_template/sleepstack-status", {}),
        ("PUT", "/sleepstack-status-*/_mapping", MAPPING_PARAMS),  # indices of an older template
    ]
    assert cluster.sent[1].json() == ism_policy("sleepstack", "vitals", 30)
    assert cluster.sent[2].json() == index_template("sleepstack", "vitals")
    assert cluster.sent[7].json() == {"properties": mapping("alerts")["properties"]}
    assert report.templates == ["sleepstack-vitals", "sleepstack-alerts", "sleepstack-samples", "sleepstack-status"]


def test_setup_maps_the_speed_layer_role_to_a_writer_role_first() -> None:
    cluster = FakeCluster(lambda req: (404, {}) if req.method == "GET" else (200, {"acknowledged": True}))
    arn = "arn:aws:iam::123456789012:role/sleepstack-prod-speed-layer"
    report = install(cluster.client(), writer_arns=(arn,))
    assert [(r.method, r.url) for r in cluster.sent[:2]] == [
        ("PUT", "/_plugins/_security/api/roles/sleepstack_writer"),
        ("PUT", "/_plugins/_security/api/rolesmapping/sleepstack_writer"),
    ]
    assert cluster.sent[0].json()["index_permissions"][0]["index_patterns"] == ["sleepstack-*"]
    assert cluster.sent[1].json() == {"backend_roles": [arn]}
    assert report.role_mappings == ["sleepstack_writer"]


def test_saved_objects_reference_only_objects_and_fields_that_exist() -> None:
    objs = saved_objects()
    ids = {(o["type"], o["id"]) for o in objs}
    assert {("dashboard", d) for d in DASHBOARD_IDS} <= ids
    patterns = {o["id"]: o["attributes"]["title"].split("-")[1] for o in objs if o["type"] == "index-pattern"}
    seen: set[tuple[str, str]] = set()
    for o in objs:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in seen, f"{o['id']} references {ref['id']} before it is defined"
        seen.add((o["type"], o["id"]))
        if o["type"] == "visualization":
            kind = patterns[o["references"][0]["id"]]
            fields = set(mapping(kind)["properties"])
            for agg in json.loads(o["attributes"]["visState"])["aggs"]:
                if "field" in agg["params"]:
                    assert agg["params"]["field"] in fields, (o["id"], agg["params"]["field"])
        if o["type"] == "search":
            kind = patterns[o["references"][0]["id"]]
            assert set(o["attributes"]["columns"]) <= set(mapping(kind)["properties"])
    lines = saved_objects_ndjson().splitlines()
    assert len(lines) == len(objs) and all(json.loads(line) for line in lines)


def test_dashboards_import_request() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        seen.append((url, headers, body))
        return 200, json.dumps({"success": True, "successCount": len(saved_objects())}).encode()

    assert import_dashboards("http://osd:5601/", http_post=post) == len(saved_objects())
    ((url, headers, body),) = seen
    assert url == "http://osd:5601/api/saved_objects/_import?overwrite=true"
    assert headers["osd-xsrf"] == "true" and headers["Content-Type"].startswith("multipart/form-data; boundary=")
    boundary = headers["Content-Type"].split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"\r\n--{boundary}--\r\n".encode())
    assert saved_objects_ndjson().encode() in body

    def refuse(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        return 200, json.dumps({"success": False, "errors": [{"id": "x", "error": {"type": "conflict"}}]}).encode()

    with pytest.raises(SetupError, match="conflict"):
        import_dashboards("http://osd:5601", http_post=refuse)


def test_distinct_record_ids_are_counted_exactly_page_by_page() -> None:
    pages = [
        {"aggregations": {"ids": {"buckets": [{"key": {"id": "a"}}, {"key": {"id": "b"}}], "after_key": {"id": "b"}}}},
        {"aggregations": {"ids": {"buckets": [{"key": {"id": "c"}}], "after_key": {"id": "c"}}}},
        {"aggregations": {"ids": {"buckets": []}}},
    ]
    cluster = FakeCluster(lambda req: (200, pages.pop(0)))
    assert OpenSearchLiveStore(cluster.client()).distinct_record_ids() == 3
    first, second, _ = (r.json()["aggs"]["ids"]["composite"] for r in cluster.sent)
    assert first["sources"] == [{"id": {"terms": {"field": "record_id"}}}] and "after" not in first
    assert second["after"] == {"id": "b"}


def test_alerts_changed_since_asks_for_writes_after_the_mark_or_open() -> None:
    """The cursor is the store's write stamp; documents written before stamping count by their times."""
    cluster = FakeCluster(lambda req: (200, {"hits": {"hits": [{"_source": {"doc_id": "x", "start_ms": 1}}]}}))
    assert OpenSearchLiveQueries(cluster.client()).alerts_changed_since(DAY_MS) == [{"doc_id": "x", "start_ms": 1}]
    (req,) = cluster.sent
    assert req.url == "/sleepstack-alerts-*/_search"
    body = req.json()
    unstamped = {"must_not": {"exists": {"field": "indexed_ms"}}}
    assert body["query"]["bool"] == {
        "should": [
            {"range": {"indexed_ms": {"gte": DAY_MS, "format": "epoch_millis"}}},
            *(
                {"bool": {**unstamped, "filter": {"range": {f: {"gte": DAY_MS, "format": "epoch_millis"}}}}}
                for f in ("start_ms", "raised_ms", "end_ms")
            ),
            {"term": {"status": "open"}},
        ],
        "minimum_should_match": 1,
    }
    assert body["sort"] == [
        {"indexed_ms": {"order": "asc", "missing": "_first"}},
        {"start_ms": {"order": "asc"}},
        {"doc_id": {"order": "asc"}},
    ]
