"""``sleepstack bench opensearch``: the speed layer's store writing into a real node, against bare bulk.

The documents are what the real handler makes of a simulated night (strap + bed, 3
subjects, ``hours`` each): epoch vitals, per-second strap samples and alerts. Each round
indexes all of them twice into a fresh prefix on the same node, in the same run:

* **store** — :class:`speed_layer.store.OpenSearchLiveStore.index` (daily index names,
  byte-cut bulk bodies, per-item retry), as the Lambda does;
* **bare** — ``opensearchpy.helpers.bulk`` of the same documents with the same index
  names and ids (its default 500-action chunks), nothing else.

Each is followed by a refresh, inside the timing, so both have made their documents
searchable. Reported: documents/s and MiB/s (of the bulk bodies' JSON), median over
``rounds``, and ``ratio`` = store ÷ bare (goal ≥ 0.8). The node is the local one
(``make opensearch``) on free ports unless ``OPENSEARCH_URL`` names another.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sleepstack.bench.fixtures import bench_settings, simulated_night_records
from sleepstack.settings import Settings

__all__ = ["bench_opensearch"]

MIB = 1 << 20


def _documents(subjects: int, hours: float) -> list[tuple[str, dict[str, Any]]]:
    from core.live.alerts import AlertRules
    from speed_layer.processing import apply_records

    recs = []
    for k in range(subjects):
        night = simulated_night_records(f"o{k:03d}", seed=k, apnea_per_hour=6.0)
        recs += [r for r in night if r.event_time_ms < night[0].event_time_ms + hours * 3_600_000]
    recs.sort(key=lambda r: r.event_time_ms)
    return list(apply_records(recs, {}, AlertRules()).docs)


def _drop(client: Any, prefix: str) -> None:
    names = [i["index"] for i in client.cat.indices(index=f"{prefix}-*", format="json")]
    if names:
        client.indices.delete(index=",".join(names))


def _timed(client: Any, prefix: str, write: Callable[[], None]) -> float:
    t = time.perf_counter()
    write()
    client.indices.refresh(index=f"{prefix}-*")
    return time.perf_counter() - t


def bench_opensearch(settings: Settings, *, subjects: int = 3, hours: float = 2.0, rounds: int = 3) -> dict[str, Any]:
    from opensearchpy.helpers import bulk

    from local.opensearch_node import OpenSearchNode
    from sleepstack import wiring
    from speed_layer.indices import index_for
    from speed_layer.opensearch_setup import install
    from speed_layer.store import OpenSearchLiveStore

    docs = _documents(subjects, hours)
    nbytes = sum(len(json.dumps(d, sort_keys=True)) for _, d in docs)
    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-opensearch-") as tmp:
        node = None
        url = settings.opensearch_url
        if not url:
            node = OpenSearchNode(wiring.opensearch_dist(settings), Path(tmp) / "node", heap_mb=1024)
            url = node.start(bench_settings(Path(tmp)).child_env(), timeout_s=90).url
        client = wiring.opensearch_client(url)
        secs: dict[str, list[float]] = {"store": [], "bare": []}
        try:
            for r in range(rounds + 1):  # round 0 warms the node (JIT, segment files, templates)
                for way in ("store", "bare"):
                    prefix = f"bench{way}{uuid.uuid4().hex[:6]}"
                    install(client, prefix=prefix, replicas=0)
                    store = OpenSearchLiveStore(client, prefix=prefix)
                    actions = [{"_index": index_for(prefix, k, d), "_id": d["doc_id"], "_source": d} for k, d in docs]

                    def write(way: str = way, store: OpenSearchLiveStore = store, actions: list[Any] = actions) -> None:
                        if way == "store":
                            _expect_clean(store.index(docs))
                        else:
                            _expect_ok(bulk(client, actions))

                    elapsed = _timed(client, prefix, write)
                    if r:
                        secs[way].append(elapsed)
                    _drop(client, prefix)
                    for kind in ("vitals", "alerts", "samples"):
                        client.indices.delete_index_template(name=f"{prefix}-{kind}", ignore=[404])
        finally:
            if node is not None:
                node.stop()
    med = {w: statistics.median(v) for w, v in secs.items()}
    figures = {
        w: {
            "seconds": [round(x, 2) for x in secs[w]],
            "docs_per_s": round(len(docs) / med[w]),
            "mib_per_s": round(nbytes / MIB / med[w], 2),
        }
        for w in secs
    }
    return {
        "documents": len(docs),
        "mib": round(nbytes / MIB, 2),
        "rounds": rounds,
        "node": "local 2.19.6" if not settings.opensearch_url else "OPENSEARCH_URL",
        **figures,
        "ratio": round(med["bare"] / med["store"], 3),
        "goal_ratio": 0.8,
    }


def _expect_clean(rejected: list[Any]) -> None:
    if rejected:
        raise RuntimeError(f"{len(rejected)} documents refused: {rejected[0].reason}")


def _expect_ok(result: tuple[int, Any]) -> None:
    if result[1]:
        raise RuntimeError(f"bare bulk failed: {result[1][:1]}")
