from __future__ import annotations

import socket
from pathlib import Path

import pytest

from local import kinesis as local_stack
from local.home import Home
from local.kinesis import KinesaliteServer, StackError
from local.template import event_source_settings, load_template, stream_specs
from sleepstack.settings import Settings
from tests.conftest import REPO_ROOT


def test_template_drives_local_stream_and_mapping() -> None:
    doc = load_template(REPO_ROOT / "infra" / "template.yaml")
    (spec,) = stream_specs(doc, Environment="prod")
    assert spec.name == "sleepstack-prod-ingest" and spec.shard_count == 2
    esm = event_source_settings(doc)
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and esm["BisectBatchOnFunctionError"]


def test_missing_node_names_the_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_stack.shutil, "which", lambda name: None)
    with pytest.raises(StackError, match=r"Node\.js"):
        local_stack.check_tools()


def test_missing_java_names_the_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_stack.shutil, "which", lambda name: None if name == "java" else "/usr/bin/" + name)
    monkeypatch.setattr(local_stack, "_NODE_DIR", REPO_ROOT)  # pretend kinesalite is installed
    (REPO_ROOT / "node_modules" / "kinesalite").mkdir(parents=True, exist_ok=True)
    try:
        with pytest.raises(StackError, match="Java 17"):
            local_stack.check_tools(java=True)
    finally:
        (REPO_ROOT / "node_modules" / "kinesalite").rmdir()
        (REPO_ROOT / "node_modules").rmdir()


def test_settings_reject_unknown_target() -> None:
    with pytest.raises(ValueError, match="SLEEPSTACK_TARGET"):
        Settings.from_env({"SLEEPSTACK_TARGET": "gcp"})
    assert Settings.from_env({}).target == "local"


@pytest.mark.integration
def test_port_in_use_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(StackError, match=f"127.0.0.1:{port}"):
            KinesaliteServer(Home(tmp_path)).up(port=port, timeout_s=10)


@pytest.mark.integration
def test_stack_up_creates_template_streams_and_down_stops_it(tmp_path: Path) -> None:
    from local.kinesis import local_kinesis_client as kinesis_client

    stack = KinesaliteServer(Home(tmp_path))
    endpoint = stack.up()
    try:
        names = kinesis_client(endpoint, "us-east-1").list_streams()["StreamNames"]
        assert names == ["sleepstack-dev-ingest"]
        assert stack.up() == endpoint  # idempotent
    finally:
        assert stack.down()
    assert stack.state() is None
