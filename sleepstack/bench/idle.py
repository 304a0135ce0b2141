"""``sleepstack bench idle``: the idle stack's CPU and the latency under load, fixed 0.2-s polls vs backing off.

Two figures for each polling policy, in one run, side by side:

* **idle CPU**: a whole stack (``stack up`` in a private home: kinesalite, the speed layer,
  the delivery, the scheduler, the dashboard, the notifier, the supervisor) with nothing to
  do; the CPU time (``/proc/<pid>/stat`` utime + stime) of every process whose environment
  names the home, over ``rounds`` windows of ``window_s`` after a settling pause, as % of
  one core; median of the windows, in total and per process
  (``idle_cpu_pct_by_process_*``: each Python service by name, ``stream`` for kinesalite's
  node). The total is what the goal (<= 3 % of a core) is about: our pollers and the stream
  server they poll, which an idle stack keeps busy only through them. The bench runs the
  embedded live store; with OpenSearch as the live store its JVM would be counted as
  ``opensearch``, its own idle cost, apart (docs/operator.md gives a measured figure).
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

__all__ = ["bench_idle", "process_role", "stack_cpu_by_role"]

_POLICIES = {"fixed": 0.2, "backoff": 1.0}


def process_role(cmdline: list[str]) -> str:
    """Which part of the stack a process is, from its command line: a Python service by its
    name (``python -m sleepstack.services NAME``), ``stream`` (kinesalite's node),
    ``opensearch`` (the live store's JVM), else ``other``."""
    if "sleepstack.services" in cmdline:
        i = cmdline.index("sleepstack.services")
        return cmdline[i + 1] if i + 1 < len(cmdline) else "other"
    if any(arg.endswith("kinesalite-server.js") for arg in cmdline):
        return "stream"
    if cmdline and Path(cmdline[0]).name == "java":
        return "opensearch"
    return "other"


def stack_cpu_by_role(home: Path) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the live processes of the stack of ``home``
    (those whose environment names it), per :func:`process_role`."""
    marker = f"SLEEPSTACK_HOME={home}".encode()
    ticks: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        role = process_role(cmdline)
        ticks[role] = ticks.get(role, 0) + int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return {role: t / os.sysconf("SC_CLK_TCK") for role, t in ticks.items()}


def _idle_cpu_pct(
    home: Path, idle_poll_s: float, rounds: int, window_s: float, settle_s: float
) -> list[dict[str, float]]:
    """Per window, each role's CPU as % of one core."""
    env = bench_settings(home).child_env() | {"SLEEPSTACK_IDLE_POLL_S": str(idle_poll_s)}
    cli = [sys.executable, "-m", "sleepstack.cli", "stack"]
    subprocess.run([*cli, "up", "--port", "0"], env=env, check=True, capture_output=True)
    try:
        time.sleep(settle_s)  # start-up work done, the pollers past their busy grace (12 s) and backed off
        out = []
        for _ in range(rounds):
            cpu0, t0 = stack_cpu_by_role(home), time.monotonic()
            time.sleep(window_s)
            cpu1, elapsed = stack_cpu_by_role(home), time.monotonic() - t0
            out.append({role: 100 * (cpu1[role] - cpu0.get(role, 0.0)) / elapsed for role in cpu1})
        return out
    finally:
        subprocess.run([*cli, "down"], env=env, check=False, capture_output=True)


def _median_by_role(windows: list[dict[str, float]]) -> dict[str, float]:
    roles = sorted({role for w in windows for role in w})
    return {role: round(statistics.median(w.get(role, 0.0) for w in windows), 2) for role in roles}


def bench_idle(
    rounds: int = 3, window_s: float = 10.0, settle_s: float = 20.0, latency_seconds: float = 60.0
) -> dict[str, Any]:
    from sleepstack.bench.speed import bench_speed_latency

    idle: dict[str, list[dict[str, float]]] = {}
    latency: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-idle-") as tmp:
        for name, idle_poll_s in _POLICIES.items():
            idle[name] = _idle_cpu_pct(Path(tmp) / name, idle_poll_s, rounds, window_s, settle_s)
    for name, idle_poll_s in _POLICIES.items():
        latency[name] = bench_speed_latency(seconds=latency_seconds, idle_poll_s=idle_poll_s)
    figures: dict[str, Any] = {"rounds": rounds, "window_s": window_s, "latency_seconds": latency_seconds}
    for name in _POLICIES:
        figures[f"idle_cpu_pct_{name}"] = round(statistics.median(sum(w.values()) for w in idle[name]), 2)
    for name in _POLICIES:
        figures[f"idle_cpu_pct_by_process_{name}"] = _median_by_role(idle[name])
    for name in _POLICIES:
        figures[f"latency_p50_s_{name}"] = latency[name]["latency_p50_s"]
    for name in _POLICIES:
        figures[f"latency_p95_s_{name}"] = latency[name]["latency_p95_s"]
    figures["epochs_measured"] = {name: latency[name]["epochs_measured"] for name in _POLICIES}
    figures["idle_cpu_pct_windows"] = {name: [round(sum(w.values()), 2) for w in idle[name]] for name in _POLICIES}
    figures["goal_idle_cpu_pct"] = 3.0
    return figures
