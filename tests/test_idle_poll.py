"""The stack's pollers back off on an idle stream and return to fast polling when records flow."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.contract.kpl import DEFAULT_LINGER_MS
from core.errors import ConfigError
from sleepstack.services.loop import BUSY_GRACE_S, IDLE_POLL_S, POLL_S, IdlePoll
from sleepstack.settings import Settings


def test_fast_while_records_flow_backing_off_to_a_second_when_idle_and_fast_again_at_once() -> None:
    now = [0.0]
    seen = [0]
    poll = IdlePoll(lambda: seen[0], clock=lambda: now[0])

    def step(records: int) -> float:
        seen[0] += records
        pause = poll.next_pause()
        now[0] += pause
        return pause

    assert {step(5) for _ in range(20)} == {POLL_S}  # records flowing
    quiet = [step(0) for _ in range(90)]
    fast = [p for p in quiet if p == POLL_S]
    assert len(fast) * POLL_S == pytest.approx(BUSY_GRACE_S, abs=POLL_S)  # a grace period after the last records
    assert quiet[len(fast) : len(fast) + 3] == [0.4, 0.8, IDLE_POLL_S]  # then doubling
    assert quiet[-1] == IDLE_POLL_S  # idle: about one poll a second, as Lambda polls an idle shard
    assert step(1) == POLL_S  # the first record found: fast again


def test_a_home_sender_putting_every_linger_keeps_the_poll_fast() -> None:
    """A collector puts at least every DEFAULT_LINGER_MS: between its puts the poller does not back off,
    so the record that completes an epoch is read within POLL_S (epoch-end -> queryable as with fixed polls)."""
    now = [0.0]
    seen = [0]
    poll = IdlePoll(lambda: seen[0], clock=lambda: now[0])
    pauses = []
    next_put = 0.0
    while now[0] < 600.0:  # ten minutes of a night
        if now[0] >= next_put:
            seen[0] += 1
            next_put += DEFAULT_LINGER_MS / 1000
        pauses.append(poll.next_pause())
        now[0] += pauses[-1]
    assert set(pauses) == {POLL_S}


def test_without_a_progress_measure_it_settles_at_the_idle_pause() -> None:
    now = [0.0]
    poll = IdlePoll(idle_s=2.0, clock=lambda: now[0])
    pauses = []
    for _ in range(90):
        pauses.append(poll.next_pause())
        now[0] += pauses[-1]
    assert pauses[0] == POLL_S and pauses[-1] == 2.0


def test_the_idle_pause_is_a_setting() -> None:
    assert Settings.from_env({}).idle_poll_s == IDLE_POLL_S
    assert Settings.from_env({"SLEEPSTACK_IDLE_POLL_S": "0.2"}).idle_poll_s == 0.2
    for bad in ("0.1", "9", "soon"):
        with pytest.raises(ConfigError, match="SLEEPSTACK_IDLE_POLL_S"):
            Settings.from_env({"SLEEPSTACK_IDLE_POLL_S": bad})


def test_the_idle_bench_names_each_process_of_the_stack() -> None:
    from sleepstack.bench.idle import process_role

    assert process_role(["/x/.venv/bin/python", "-m", "sleepstack.services", "speed_layer"]) == "speed_layer"
    assert process_role(["/x/.venv/bin/python", "-m", "sleepstack.services", "supervisor"]) == "supervisor"
    assert process_role(["node", "/x/infra/local/kinesalite-server.js", "0", "/h/stream"]) == "stream"
    assert process_role(["/usr/lib/jvm/java-17/bin/java", "-Xms512m", "org.opensearch.bootstrap.OpenSearch"]) == (
        "opensearch"
    )
    assert process_role(["/bin/sh", "-c", "true"]) == "other"


def test_the_idle_bench_counts_the_cpu_of_the_homes_processes_only(tmp_path: Path) -> None:
    from sleepstack.bench.idle import stack_cpu_by_role

    burn = "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\nsys.stdin.read()"
    env = {"SLEEPSTACK_HOME": str(tmp_path)}  # a bare interpreter needs nothing else
    argv = [sys.executable, "-c", burn, "sleepstack.services", "delivery"]
    ours = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE)
    other = subprocess.Popen(argv, env={**env, "SLEEPSTACK_HOME": str(tmp_path / "elsewhere")}, stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while stack_cpu_by_role(tmp_path).get("delivery", 0.0) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = stack_cpu_by_role(tmp_path)
        assert set(cpu) == {"delivery"}  # the other home's process is not counted
        assert 0.5 <= cpu["delivery"] < 1.5  # the half second it burnt, and a start-up
    finally:
        for p in (ours, other):
            p.communicate(b"")
