"""A real OpenSearch node for the integration suite (marker ``opensearch``).

The node is the pinned distribution ``make opensearch`` installs, started once per test
worker on free loopback ports with its data in a temporary folder. ``OPENSEARCH_URL``
points the suite at another cluster instead. Where neither is there, the suite is
skipped locally with the command to run, and fails in CI (``CI=true``), so nothing is
skipped there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.opensearch_node import NodeError, OpenSearchNode
from sleepstack import wiring
from sleepstack.settings import Settings


def node_or_skip(tmp: Path, **settings: object) -> OpenSearchNode:
    """Start a node of the installed distribution under ``tmp``; skip (fail in CI) when not installed."""
    env = Settings.from_env().child_env()
    dist = wiring.opensearch_dist(Settings.from_env())
    if not (dist / ".installed").exists():
        message = f"OpenSearch is not installed at {dist}: run `make opensearch`"
        if os.environ.get("CI"):  # noqa: TID251 - CI must not skip
            pytest.fail(message)
        pytest.skip(message)
    try:
        return OpenSearchNode(dist, tmp, settings=dict(settings) or None).start(env, timeout_s=90)
    except NodeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def opensearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = Settings.from_env().opensearch_url
    if external:
        yield external
        return
    node = node_or_skip(tmp_path_factory.mktemp("opensearch-node"))
    try:
        yield node.url
    finally:
        node.stop()
