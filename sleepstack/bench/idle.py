"""``sleepstack bench idle``: the idle stack's CPU and the latency under load, fixed 0.2-s polls vs backing off.

Two figures for each polling policy, in one run, side by side:

* **idle CPU**: a whole stack (``stack up`` in a private home: kinesalite, the speed layer,
  the delivery, the scheduler, the dashboard, the supervisor) with nothing to do; the CPU
  time of every one of its processes (``/proc/<pid>/stat``, those whose environment names
  the home) over ``rounds`` windows of ``window_s`` after a settling pause, as % of one
  core; median of the windows.
* **epoch-end -> queryable**: :func:`sleepstack.bench.speed.bench_speed_latency` (a
  real-time replay through the spool, sender, kinesalite, the event-source poller and the
  handler), its poller pausing as the policy says; p50/p95 over the epochs.

Policies: ``fixed`` (every 0.2 s, as before) and ``backoff`` (0.2 s while records flow,
doubling to ``SLEEPSTACK_IDLE_POLL_S`` = 1 s on an empty stream; :class:`sleepstack.services.loop.IdlePoll`).
Goal: idle <= 3 % of a core with backoff, p95 no worse than fixed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sleepstack.bench.fixtures import bench_settings

__all__ = ["bench_idle", "stack_cpu_seconds"]

_POLICIES = {"fixed": 0.2, "backoff": 1.0}


def stack_cpu_seconds(home: Path) -> float:
    """CPU seconds (user + system) used so far by the live processes of the stack of ``home``."""
    marker = f"SLEEPSTACK_HOME={home}".encode()
    ticks = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def _idle_cpu_pct(home: Path, idle_poll_s: float, rounds: int, window_s: float, settle_s: float) -> list[float]:
    env = bench_settings(home).child_env() | {"SLEEPSTACK_IDLE_POLL_S": str(idle_poll_s)}
    cli = [sys.executable, "-m", "sleepstack.cli", "stack"]
    subprocess.run([*cli, "up", "--port", "0"], env=env, check=True, capture_output=True)
    try:
        time.sleep(settle_s)  # start-up work done, pollers backed off
        out = []
        for _ in range(rounds):
            cpu0, t0 = stack_cpu_seconds(home), time.monotonic()
            time.sleep(window_s)
            out.append(100 * (stack_cpu_seconds(home) - cpu0) / (time.monotonic() - t0))
        return out
    finally:
        subprocess.run([*cli, "down"], env=env, check=False, capture_output=True)


def bench_idle(
    rounds: int = 3, window_s: float = 10.0, settle_s: float = 10.0, latency_seconds: float = 60.0
) -> dict[str, Any]:
    from sleepstack.bench.speed import bench_speed_latency

    idle: dict[str, list[float]] = {}
    latency: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-idle-") as tmp:
        for name, idle_poll_s in _POLICIES.items():
            idle[name] = _idle_cpu_pct(Path(tmp) / name, idle_poll_s, rounds, window_s, settle_s)
    for name, idle_poll_s in _POLICIES.items():
        latency[name] = bench_speed_latency(seconds=latency_seconds, idle_poll_s=idle_poll_s)
    figures: dict[str, Any] = {"rounds": rounds, "window_s": window_s, "latency_seconds": latency_seconds}
    for name in _POLICIES:
        figures[f"idle_cpu_pct_{name}"] = round(statistics.median(idle[name]), 2)
    for name in _POLICIES:
        figures[f"latency_p50_s_{name}"] = latency[name]["latency_p50_s"]
    for name in _POLICIES:
        figures[f"latency_p95_s_{name}"] = latency[name]["latency_p95_s"]
    figures["epochs_measured"] = {name: latency[name]["epochs_measured"] for name in _POLICIES}
    figures["idle_cpu_pct_windows"] = {name: [round(x, 2) for x in idle[name]] for name in _POLICIES}
    figures["goal_idle_cpu_pct"] = 3.0
    return figures
