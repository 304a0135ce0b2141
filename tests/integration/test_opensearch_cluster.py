"""Against a real OpenSearch cluster: runs only when OPENSEARCH_URL is set.

    docker compose -f infra/opensearch/docker-compose.yml up -d
    OPENSEARCH_URL=http://localhost:9200 pytest -m opensearch tests/integration

Uses its own index prefix (``sleepstack-it-<random>``) and deletes what it created.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.alerts import AlertRules
from core.simulate import SimConfig, night_records, simulate_night
from sleepstack.settings import Settings
from sleepstack.wiring import opensearch_client
from speed_layer.opensearch_setup import install
from speed_layer.processing import apply_records
from speed_layer.store import OpenSearchLiveStore
from tests.conftest import T0_MS

URL = Settings.from_env().opensearch_url

pytestmark = [
    pytest.mark.opensearch,
    pytest.mark.skipif(not URL, reason="OPENSEARCH_URL not set"),
]


@pytest.fixture
def cluster() -> Iterator[tuple[Any, str]]:
    assert URL is not None
    client = opensearch_client(URL)
    prefix = f"sleepstack-it-{uuid.uuid4().hex[:8]}"
    install(client, prefix=prefix, replicas=0)
    yield client, prefix
    client.indices.delete(index=f"{prefix}-*", ignore=[404])
    for kind in ("vitals", "alerts", "samples"):
        client.indices.delete_index_template(name=f"{prefix}-{kind}", ignore=[404])
        client.transport.perform_request("DELETE", f"/_plugins/_ism/policies/{prefix}-{kind}-lifecycle")


def test_documents_index_query_and_replay_overwrites(cluster: tuple[Any, str]) -> None:
    client, prefix = cluster
    night = simulate_night(SimConfig("it1", T0_MS, seed=4, apnea_per_hour=8.0))
    recs = [r for r in night_records(night, strap_device="st", bed_device="bd") if r.event_time_ms < T0_MS + 3_600_000]
    docs = apply_records(recs, {}, AlertRules(hr_high_bpm=60)).docs
    store = OpenSearchLiveStore(client, prefix=prefix)
    assert store.index(docs) == []
    client.indices.refresh(index=f"{prefix}-*")
    counts = {k: store.count(k) for k in ("vitals", "alerts", "samples")}
    assert counts["vitals"] > 100 and counts["samples"] > 3000 and counts["alerts"] > 0
    assert store.index(docs) == []  # a replay overwrites
    client.indices.refresh(index=f"{prefix}-*")
    assert {k: store.count(k) for k in counts} == counts
    (latest,) = store.latest("vitals", "it1")
    assert latest["epoch_start_ms"] == max(d["epoch_start_ms"] for k, d in docs if k == "vitals")
    mapping = client.indices.get_mapping(index=f"{prefix}-vitals-*")
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["epoch_start_ms"]["type"] == "date" and props["subject_id"]["type"] == "keyword"


def test_a_document_breaking_the_mapping_is_refused_alone(cluster: tuple[Any, str]) -> None:
    client, prefix = cluster
    store = OpenSearchLiveStore(client, prefix=prefix)
    good = (
        "alerts",
        {
            "doc_id": "a1",
            "subject_id": "s",
            "device_id": "d",
            "source": "bed",
            "kind": "bed_exit",
            "status": "open",
            "start_ms": T0_MS,
            "end_ms": None,
            "raised_ms": T0_MS,
            "duration_s": 60.0,
            "value": None,
            "threshold": None,
        },
    )
    bad = ("alerts", {**good[1], "doc_id": "a2", "surprise": 1})
    rejected = store.index([good, bad])
    assert [r.doc["doc_id"] for r in rejected] == ["a2"] and rejected[0].status == 400
