"""``sleepstack stack up|down|status|wait|stage`` and ``reconcile``: the running local stack.

``up`` starts the supervisor (:mod:`sleepstack.services`) in the background and returns
once every service is running and has reported; ``down`` stops it gracefully. ``status``
reads the supervisor's state and the services' heartbeats; ``wait_idle`` returns once
every consumer has read everything put before it was called and the delivery has flushed.
``reconcile`` counts every hop for what was collected into this ``SLEEPSTACK_HOME``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from core.errors import NoDataError
from local.control import ControlError, ControlPlane
from local.kinesis import StackError, check_tools
from local.supervisor import pid_alive, wait_gone
from sleepstack.services import PYTHON_SERVICES, SERVICES
from sleepstack.settings import Settings

__all__ = ["StackTimeoutError", "reconcile", "request_stage", "stack_down", "stack_status", "stack_up", "wait_idle"]

CONSUMERS: Final = ("speed_layer", "delivery")
STALE_HEARTBEAT_MS: Final = 15_000


class StackTimeoutError(StackError):
    """The stack did not reach the state asked for in time; the message says what is behind."""


def _supervisor(settings: Settings) -> dict[str, Any] | None:
    state = ControlPlane(settings.paths).supervisor_state()
    if state is None or state.get("state") == "stopped" or not pid_alive(state.get("pid")):
        return None
    return state


def stack_status(settings: Settings) -> dict[str, Any]:
    """Per service pid, state, restarts and heartbeat; per consumer its lag; counts in the stores."""
    sup = _supervisor(settings)
    control = ControlPlane(settings.paths)
    now_ms = int(time.time() * 1000)
    services: dict[str, Any] = {}
    extra = [n for n in (sup or {}).get("services", {}) if n not in SERVICES]  # the opensearch node
    for name in (*SERVICES, *extra):
        entry = dict((sup or {}).get("services", {}).get(name, {"state": "stopped", "restarts": 0, "pid": None}))
        try:
            beat = control.heartbeat(name) if name in PYTHON_SERVICES else None
        except ControlError as exc:  # a service of another release: shown, and `stack down` still stops it
            beat = None
            entry.update(state="incompatible", figures={"error": str(exc)})
        if sup is None:
            entry.update(state="stopped", pid=None)
        if beat is not None and sup is not None:
            entry["heartbeat_ms"] = beat.at_ms
            entry["figures"] = dict(beat.figures)
            entry["figures"].update({k: v for k, v in (("error", beat.error), ("url", beat.url)) if v is not None})
            if beat.state == "stalled":
                entry["state"] = "stalled"
            elif now_ms - beat.at_ms > STALE_HEARTBEAT_MS and entry.get("state") == "running":
                entry["state"] = "unresponsive"
        services[name] = entry
    if services["dashboard"].get("state") == "running":
        from sleepstack.dashboard import dashboard_url

        services["dashboard"]["url"] = dashboard_url(settings)
    if "opensearch" in services and services["opensearch"].get("url"):
        from local.opensearch_node import cluster_health

        health = cluster_health(services["opensearch"]["url"])
        services["opensearch"]["health"] = str(health.get("status")) if health else "unreachable"
    lag = {}
    for name in CONSUMERS:
        fig = services[name].get("figures", {})
        caught = fig.get("caught_up_ms")
        lag[name] = {
            "caught_up_ms": caught,
            "iterator_age_ms": fig.get("iterator_age_ms", 0),
            "behind_records": fig.get("behind_records", 0),
            "buffered_records": fig.get("buffered_records", 0),
            "checkpoint_resets": fig.get("checkpoint_resets", 0),
        }
    return {
        "running": sup is not None,
        "supervisor": {"pid": sup["pid"]} if sup else None,
        "services": services,
        "lag": lag,
        "stores": _store_counts(settings),
    }


def _store_counts(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    live = settings.paths.live_db
    if live.exists() and not settings.opensearch_url and settings.live_store == "embedded":
        from local.live_store import LocalLiveStore

        store = LocalLiveStore(live)
        out.update({f"live_{k}": store.count(k) for k in ("vitals", "alerts", "samples")})
        store.close()
    raw = settings.lake / "raw"
    out["lake_raw_objects"] = sum(1 for _ in raw.rglob("*.parquet")) if raw.exists() else 0
    nights = settings.lake / "curated" / "nights"
    out["curated_nights"] = sum(1 for _ in nights.glob("night=*")) if nights.exists() else 0
    return out


def stack_up(settings: Settings, *, timeout_s: float | None = None) -> dict[str, Any]:
    """Start the supervisor and its services (if not running) and wait until all have reported.

    ``settings.live_store`` picks the live store of a stack started now (``opensearch``: a
    local node, started first); a stack already running keeps the store it has.
    """
    check_tools()
    if timeout_s is None:
        timeout_s = 180.0 if settings.live_store == "opensearch" else 90.0
    if _supervisor(settings) is None:
        home = settings.paths
        home.logs.mkdir(parents=True, exist_ok=True)
        home.supervisor_state.unlink(missing_ok=True)
        with home.log("supervisor").open("ab") as out:
            subprocess.Popen(
                [sys.executable, "-m", "sleepstack.services", "supervisor"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=settings.child_env(),
                start_new_session=True,  # outlives this command; `stack down` stops it
            )
    deadline = time.monotonic() + timeout_s
    t0_ms = int(time.time() * 1000)
    while time.monotonic() < deadline:
        status = stack_status(settings)
        svc = status["services"]
        node_ok = svc.get("opensearch", {}).get("state", "running") == "running"
        if (
            svc["stream"].get("state") == "running"
            and node_ok
            and all(
                svc[n].get("state") == "running" and int(svc[n].get("heartbeat_ms") or 0) >= t0_ms - STALE_HEARTBEAT_MS
                for n in PYTHON_SERVICES
            )
        ):
            return status
        time.sleep(0.3)
    tail = _log_tail(settings.paths.log("supervisor"))
    raise StackTimeoutError(f"the local stack did not come up within {timeout_s:.0f} s: {tail}")


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no log"
    return lines[-1] if lines else "empty log"


def stack_down(settings: Settings, *, timeout_s: float = 120.0) -> bool:
    """Stop the supervisor gracefully (delivery flushes, consumers checkpoint); whether one was running."""
    sup = _supervisor(settings)
    if sup is None:
        from local.kinesis import KinesaliteServer

        return KinesaliteServer(settings.paths).down()  # a stream started alone (tests, benchmarks)
    os.kill(int(sup["pid"]), signal.SIGTERM)
    if not wait_gone(int(sup["pid"]), timeout_s):
        raise StackError(f"the supervisor (pid {sup['pid']}) did not stop within {timeout_s:.0f} s")
    return True


def wait_idle(settings: Settings, *, timeout_s: float = 300.0) -> dict[str, Any]:
    """Return once every consumer has read all records put before the call and the delivery has flushed."""
    if _supervisor(settings) is None:
        raise StackError("the local stack is not running: start it with `sleepstack stack up`")
    t0_ms = ControlPlane(settings.paths).request_flush().requested_ms
    deadline = time.monotonic() + timeout_s
    behind: list[str] = []
    while time.monotonic() < deadline:
        status = stack_status(settings)
        behind = []
        for name in CONSUMERS:
            fig = status["services"][name].get("figures", {})
            if status["services"][name].get("state") != "running" or int(fig.get("caught_up_ms") or 0) < t0_ms:
                behind.append(name)
        fig = status["services"]["delivery"].get("figures", {})
        if int(fig.get("flushed_ms") or 0) < t0_ms or fig.get("buffered_records"):
            behind.append("delivery (flush)")
        if not behind:
            return status
        time.sleep(0.3)
    raise StackTimeoutError(f"not idle after {timeout_s:.0f} s: {', '.join(sorted(set(behind)))} still behind")


def request_stage(settings: Settings, nights: str, *, timeout_s: float = 900.0) -> dict[str, Any]:
    """Ask the scheduler to stage ``nights`` now and wait for its run; returns the run's record."""
    if _supervisor(settings) is None:
        raise StackError("the local stack is not running: start it with `sleepstack stack up`")
    control = ControlPlane(settings.paths)
    asked = control.request_stage(nights).requested_ms
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = control.scheduler_state()
        if int(state.served_request_ms or 0) >= asked and state.runs:
            return state.runs[-1]
        time.sleep(0.5)
    raise StackTimeoutError(f"the scheduler did not stage {nights} within {timeout_s:.0f} s")


def reconcile(settings: Settings) -> dict[str, int]:
    """The demo's counts for everything collected into this home: produced .. landed, lost, duplicated."""
    from ingest.spool import Spool
    from local.ledger import Ledger

    spool_path = settings.paths.spool
    if not spool_path.exists():
        raise NoDataError(f"nothing collected into {settings.home} yet ({spool_path} does not exist)")
    spool = Spool(spool_path)
    counters = spool.counters()
    spool.close()
    ledger_path = settings.paths.ledger_db
    speed = Ledger(ledger_path).count() if ledger_path.exists() else 0
    landed = duplicated = 0
    if any((settings.lake / "raw").glob("dt=*/*.parquet")):
        from local.duckdb_sql import LocalSqlEngine

        rows = LocalSqlEngine(settings.lake).query(
            "SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM sleepstack.raw_records"
        )
        landed, duplicated = int(rows["d"][0]), int(rows["n"][0] - rows["d"][0])
    produced, streamed = int(counters.get("records", 0)), int(counters.get("sent", 0))
    return {
        "produced": produced,
        "streamed": streamed,
        "speed_layer": speed,
        "landed": landed,
        "lost": produced - min(streamed, speed, landed),
        "duplicated": duplicated,
    }
