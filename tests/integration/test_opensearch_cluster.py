"""Against a real OpenSearch node (``make opensearch``; see conftest.py): what the fake socket cannot show.

A replayed night goes through the real speed-layer handler into OpenSearch and, for the
same records, into the embedded store; the two must hold the same documents and answer
every live query (the dashboard's, ``sleepstack live``'s) alike. Each module run uses its
own index prefix and deletes what it created.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.contract.epochs import night_bounds_ms, night_of
from core.live.alerts import INDEXED_FIELD
from local.live_store import LocalLiveStore
from serving.live_queries import OpenSearchLiveQueries
from sleepstack.bench.fixtures import bench_settings, index_records
from sleepstack.wiring import opensearch_client
from speed_layer.indices import index_for, policy_id
from speed_layer.opensearch_setup import install
from speed_layer.processing import DOC_KINDS
from speed_layer.store import OpenSearchLiveStore
from tests.dashboard_helpers import SUBJECTS, night_records
from tests.integration.conftest import node_or_skip

pytestmark = [pytest.mark.opensearch, pytest.mark.integration, pytest.mark.slow]

HOURS = 2.5  # from 22:00 past midnight: two daily indices


class Replayed:
    """The same records indexed into OpenSearch (under ``prefix``) and into the embedded store."""

    def __init__(self, client: Any, prefix: str, local_home: Path, report: Any, recs: list[Any]) -> None:
        self.client, self.prefix, self.report, self.recs = client, prefix, report, recs
        self.local_home = local_home
        self.local = LocalLiveStore(local_home / "serving" / "live.sqlite")
        self.store = OpenSearchLiveStore(client, prefix=prefix)
        self.queries = OpenSearchLiveQueries(client, prefix=prefix)

    def refresh(self) -> None:
        self.client.indices.refresh(index=f"{self.prefix}-*")

    def documents(self) -> dict[tuple[str, str], dict[str, Any]]:
        from opensearchpy.helpers import scan

        out = {}
        for hit in scan(self.client, index=f"{self.prefix}-*", query={"query": {"match_all": {}}}):
            kind = hit["_index"][len(self.prefix) + 1 :].split("-")[0]
            out[(kind, hit["_id"])] = hit["_source"]
        return out


@pytest.fixture(scope="module")
def replayed(opensearch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    client = opensearch_client(opensearch_url)
    prefix = f"sleepstack-it{uuid.uuid4().hex[:6]}"
    report = install(client, prefix=prefix, replicas=0)
    recs = list(night_records(HOURS))
    home = tmp_path_factory.mktemp("replayed")
    index_records(bench_settings(home / "os"), recs, store=OpenSearchLiveStore(client, prefix=prefix))
    index_records(bench_settings(home / "local"), recs)
    r = Replayed(client, prefix, home / "local", report, recs)
    r.refresh()
    yield r
    r.local.close()
    names = [i["index"] for i in client.cat.indices(index=f"{prefix}-*", format="json")]
    client.indices.delete(index=",".join(names))  # by name: the node refuses wildcard deletes
    for kind in DOC_KINDS:
        client.indices.delete_index_template(name=f"{prefix}-{kind}", ignore=[404])
        if not report.ism_missing:
            client.transport.perform_request("DELETE", f"/_plugins/_ism/policies/{policy_id(prefix, kind)}")


def test_templates_are_installed_and_a_missing_ism_plugin_is_reported(replayed: Replayed) -> None:
    r = replayed
    assert r.report.templates == [f"{r.prefix}-{k}" for k in DOC_KINDS]
    got = r.client.indices.get_index_template(name=f"{r.prefix}-vitals")["index_templates"][0]["index_template"]
    assert got["index_patterns"] == [f"{r.prefix}-vitals-*"]
    assert got["template"]["mappings"]["dynamic"] == "strict"
    plugins = {p["component"] for p in r.client.cat.plugins(format="json")}
    assert r.report.ism_missing == ("opensearch-index-management" not in plugins)
    if r.report.ism_missing:
        assert "no ISM plugin" in r.report.summary()


def test_the_real_handler_indexes_the_embedded_stores_documents_exactly(replayed: Replayed) -> None:
    r = replayed
    local = {(kind, doc_id): json.loads(body) for kind, doc_id, body in r.local.dump()}
    remote = r.documents()
    assert len(remote) > 10_000
    assert remote.keys() == local.keys()  # the same ids
    stamps = [d.pop(INDEXED_FIELD) for (kind, _), d in remote.items() if kind == "alerts"]
    assert stamps and all(isinstance(t, int) for t in stamps)  # when the store wrote each alert
    assert remote == local  # the same fields and values


def test_documents_land_in_daily_indices_named_by_their_own_time(replayed: Replayed) -> None:
    r = replayed
    expected = {index_for(r.prefix, kind, doc) for (kind, _), doc in r.documents().items()}
    indices = {i["index"] for i in r.client.cat.indices(index=f"{r.prefix}-*", format="json")}
    assert indices == expected
    assert any(i.endswith("2026.01.05") for i in indices) and any(i.endswith("2026.01.06") for i in indices)


def test_a_replay_overwrites_and_counts_stay(replayed: Replayed) -> None:
    r = replayed
    before = {k: r.store.count(k) for k in DOC_KINDS}
    docs = [(kind, doc) for (kind, _), doc in r.documents().items()]
    assert r.store.index(docs) == []
    r.refresh()
    assert {k: r.store.count(k) for k in DOC_KINDS} == before
    assert r.store.distinct_record_ids() == r.local.distinct_record_ids()


def test_a_strict_mapping_refuses_an_unknown_field_and_only_that_document(replayed: Replayed) -> None:
    r = replayed
    (_, good) = next((k, d) for k, d in r.documents().items() if k[0] == "alerts")
    bad = {**good, "doc_id": "it-bad", "surprise": 1}
    rejected = r.store.index([("alerts", good), ("alerts", bad)])
    assert [x.doc["doc_id"] for x in rejected] == ["it-bad"]
    assert rejected[0].status == 400 and "strict_dynamic_mapping_exception" in rejected[0].reason


def test_every_live_query_answers_as_the_embedded_store(replayed: Replayed) -> None:
    r = replayed
    os_q, local_q = r.queries, r.local
    assert os_q.subjects() == local_q.subjects()
    assert [s["subject_id"] for s in os_q.subjects()] == list(SUBJECTS)
    night = night_of(r.recs[0].event_time_ms)
    start, end = night_bounds_ms(night)
    for subject in SUBJECTS:
        assert os_q.has_subject(subject) and local_q.has_subject(subject)
        for kind in ("vitals", "samples", "status"):
            got = os_q.between(kind, subject, start, end)
            assert got == local_q.between(kind, subject, start, end) and got
            assert os_q.latest(kind, subject, 3) == local_q.latest(kind, subject, 3)
        assert os_q.open_alerts(subject) == local_q.open_alerts(subject)
        assert os_q.alerts(subject, "closed") == local_q.alerts(subject, "closed")
    assert not os_q.has_subject("nobody") and os_q.between("vitals", "nobody", start, end) == []
    assert os_q.alerts() == local_q.alerts() and os_q.alerts()
    assert os_q.alert_counts() == local_q.alert_counts()
    statuses = os_q.device_statuses()
    assert statuses == local_q.device_statuses() and len(statuses) == 2 * len(SUBJECTS)
    assert os_q.device_statuses(statuses[0]["event_time_ms"] + 1) == []  # the newest are all older


def test_the_dashboard_and_live_read_opensearch_as_they_read_the_embedded_store(
    replayed: Replayed, opensearch_url: str, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from sleepstack.dashboard import build_app, token
    from sleepstack.settings import Settings

    r = replayed
    embedded = Settings.from_env({"SLEEPSTACK_HOME": str(r.local_home)})
    remote = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path), "OPENSEARCH_URL": opensearch_url})
    answers = []
    for settings, queries in ((embedded, None), (remote, r.queries)):
        app = build_app(settings, live=queries)
        with TestClient(app, base_url="http://127.0.0.1") as c:
            c.headers["authorization"] = f"Bearer {token(settings)}"
            subject = c.get("/api/subjects/s002").json()
            vitals = c.get(
                "/api/subjects/s002/vitals",
                params={"start_ms": subject["night_start_ms"], "end_ms": subject["night_end_ms"]},
            ).json()
            answers.append((c.get("/api/subjects").json(), subject, vitals, c.get("/api/alerts/counts").json()))
    assert answers[0] == answers[1]


def test_throttling_429_is_retried_until_every_document_is_indexed(
    replayed: Replayed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A node whose write queue holds one request: concurrent bulks get 429s, the store retries them."""
    node = node_or_skip(
        tmp_path_factory.mktemp("throttled-node"), **{"thread_pool.write.size": 1, "thread_pool.write.queue_size": 1}
    )
    try:
        client = opensearch_client(node.url)
        install(client, prefix="tq", replicas=0)
        docs = [(kind, doc) for (kind, _), doc in replayed.documents().items() if kind == "samples"][:4000]
        waits: list[float] = []
        lock = threading.Lock()

        def sleep(s: float) -> None:  # the store's backoff, counted
            with lock:
                waits.append(s)
            time.sleep(s)

        stores = [
            OpenSearchLiveStore(client, prefix="tq", max_bulk_bytes=16_384, max_attempts=12, sleep=sleep)
            for _ in range(4)
        ]
        threads = [
            threading.Thread(target=lambda st=st, part=docs[k::4]: st.index(part)) for k, st in enumerate(stores)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        client.indices.refresh(index="tq-*")
        assert waits, "the small write queue never pushed back: no 429 was exercised"
        assert OpenSearchLiveStore(client, prefix="tq").count("samples") == len(docs)
    finally:
        node.stop()
