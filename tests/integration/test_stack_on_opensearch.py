"""``stack up --live-store opensearch``: the always-on stack with a real node as its live store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.producer import KinesisProducer
from sleepstack import wiring
from sleepstack.settings import Settings
from tests.dashboard_helpers import night_records
from tests.integration.conftest import node_or_skip

pytestmark = [pytest.mark.opensearch, pytest.mark.integration, pytest.mark.slow]


def _cli(home: Path, *args: str) -> str:
    env = {**os.environ, "SLEEPSTACK_HOME": str(home)}  # noqa: TID251 - the child's environment
    done = subprocess.run(
        [sys.executable, "-m", "sleepstack.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_stack_writes_to_and_serves_from_its_own_node(tmp_path: Path) -> None:
    node_or_skip(tmp_path / "probe").stop()  # installed? (skips locally, fails in CI, otherwise)
    home = tmp_path / "home"
    _cli(home, "stack", "up", "--live-store", "opensearch")
    try:
        status: dict[str, Any] = json.loads(_cli(home, "stack", "status", "--json"))
        node = status["services"]["opensearch"]
        assert node["state"] == "running" and node["health"] in ("green", "yellow")
        assert node["url"].startswith("http://127.0.0.1:")
        settings = Settings.from_env({"SLEEPSTACK_HOME": str(home)})
        recs = [r for r in night_records(0.25) if r.subject_id == "s001"]
        KinesisProducer(wiring.kinesis_client(settings), wiring.stream_name(settings)).put(recs)
        _cli(home, "stack", "wait", "--idle", "--timeout", "120")
        client = wiring.opensearch_client(node["url"])
        client.indices.refresh(index="sleepstack-*")
        assert client.count(index="sleepstack-samples-*")["count"] > 800  # the speed layer wrote to the node
        assert not (home / "serving" / "live.sqlite").exists()  # ... and not to the embedded store
        live = json.loads(
            subprocess.run(
                [sys.executable, "-m", "sleepstack.cli", "live", "--subject", "s001", "--json"],
                env={**os.environ, "SLEEPSTACK_HOME": str(home), "OPENSEARCH_URL": node["url"]},  # noqa: TID251
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )
        assert set(live["latest_vitals"]) == {"bed", "strap"}
        url = json.loads(_cli(home, "stack", "status", "--json"))["services"]["dashboard"]["url"]
        from tests.test_stack_services import _dashboard_subjects

        assert [s["subject_id"] for s in _dashboard_subjects(url)] == ["s001"]  # the dashboard reads the node
    finally:
        _cli(home, "stack", "down")
    assert json.loads(_cli(home, "stack", "status", "--json"))["running"] is False
