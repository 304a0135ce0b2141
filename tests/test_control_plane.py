"""The local stack's control plane: typed, versioned messages under one home's paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.control import CONTROL_VERSION, ControlError, ControlPlane, SchedulerState
from local.home import Home


def test_every_path_of_a_home_lies_under_its_root(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    paths = [getattr(home, name) for name, v in vars(Home).items() if isinstance(v, property)]
    paths += [home.heartbeat("delivery"), home.checkpoints("speed-layer"), home.log("dashboard")]
    assert all(p.is_relative_to(home.root) for p in paths)
    assert len(set(paths)) == len(paths)  # no two concepts share a file
    assert not home.root.exists()  # naming a path creates nothing


def test_messages_round_trip_and_carry_kind_and_version(tmp_path: Path) -> None:
    control = ControlPlane(Home(tmp_path))
    assert control.heartbeat("delivery") is None and control.flush_request() is None
    beat = control.beat("delivery", "running", records=12, buffered_records=0)
    assert control.heartbeat("delivery") == beat and beat.figures == {"records": 12, "buffered_records": 0}
    on_disk = json.loads(Home(tmp_path).heartbeat("delivery").read_text())
    assert on_disk["kind"] == "heartbeat" and on_disk["version"] == CONTROL_VERSION
    assert control.request_flush(at_ms=5).requested_ms == 5 and control.flush_request() is not None
    asked = control.request_stage("2026-01-05,2026-01-06", at_ms=7)
    assert control.stage_request() == asked
    state = SchedulerState(last_scheduled_day="2026-01-07", served_request_ms=7, runs=({"nights": "x", "exit": 0},))
    control.save_scheduler_state(state)
    assert control.scheduler_state() == state
    assert not list(tmp_path.rglob(".*.tmp"))  # replaced atomically, nothing left behind


def test_a_message_of_another_release_is_refused_by_name(tmp_path: Path) -> None:
    home = Home(tmp_path)
    control = ControlPlane(home)
    home.run.mkdir()
    home.flush_request.write_text(json.dumps({"requested_ms": 1}))  # the untyped form of before
    with pytest.raises(
        ControlError, match=r"flush-request.json is not a flush-request message of version 1 \(kind None"
    ):
        control.flush_request()
    home.stage_request.write_text(json.dumps({"kind": "stage-request", "version": 1, "nights": "x", "when": 2}))
    with pytest.raises(ControlError, match="unknown field 'when'"):
        control.stage_request()


def test_status_shows_a_service_of_another_release_instead_of_failing(tmp_path: Path) -> None:
    import os

    from sleepstack.settings import Settings
    from sleepstack.stack import stack_status

    home = Home(tmp_path)
    home.run.mkdir()
    running = {"pid": os.getpid(), "state": "running", "restarts": 0}
    home.supervisor_state.write_text(
        json.dumps({"pid": os.getpid(), "state": "running", "services": {"delivery": running}})
    )
    home.heartbeat("delivery").write_text(json.dumps({"pid": os.getpid(), "heartbeat_ms": 1, "records": 3}))  # untyped
    status = stack_status(Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path)}))
    assert status["running"] and status["services"]["delivery"]["state"] == "incompatible"
    assert "delivery.json is not a heartbeat message" in status["services"]["delivery"]["figures"]["error"]
