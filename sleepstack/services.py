"""The local stack's services, each a process the supervisor runs (``python -m sleepstack.services NAME``).

* ``supervisor`` — starts the others and keeps them running (:mod:`local.supervisor`);
* ``stream`` — kinesalite on disk, its port kept across restarts (:mod:`local.kinesis`);
* ``opensearch`` — with ``SLEEPSTACK_LIVE_STORE=opensearch`` (``stack up --live-store
  opensearch``): a local OpenSearch node (:mod:`local.opensearch_node`), the live store the
  speed layer writes and the dashboard reads instead of the embedded one;
* ``speed_layer`` — the event-source mapping invoking the real Lambda handler on every
  shard, continuously, with the template's mapping settings, checkpointed; a ledger of the
  record ids it applied serves ``reconcile``;
* ``delivery`` — the Firehose delivery, buffering by size and interval (the template's
  hints), writing and compacting the raw lake; flushes at once when asked (``stack wait``)
  and on SIGTERM;
* ``scheduler`` — stages each night once it has closed, at ``SLEEPSTACK_BATCH_AT`` local
  time (late data re-staged by the job itself), and whatever ``stack stage`` asks for, by
  running ``sleepstack batch run`` in a child process (Spark's JVM is freed after);
* ``dashboard`` — the web dashboard and its JSON API on 127.0.0.1 (:mod:`sleepstack.dashboard`),
  its address (token included) in ``stack status``.

Every service writes a heartbeat with its figures to ``$SLEEPSTACK_HOME/run/<name>.json``
and exits when its supervisor is gone. SIGTERM stops it after the batch in hand.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from local.supervisor import ServiceSpec, Supervisor, orphaned, read_json, wait_gone, write_heartbeat, write_json
from sleepstack import wiring
from sleepstack.settings import Settings

__all__ = ["PYTHON_SERVICES", "SERVICES", "Ledger", "main", "run_dir"]

log = logging.getLogger(__name__)

PYTHON_SERVICES: Final = ("speed_layer", "delivery", "scheduler", "dashboard")
SERVICES: Final = ("stream", *PYTHON_SERVICES)
POLL_S: Final = 0.2


def run_dir(settings: Settings) -> Path:
    return settings.home / "run"


class Ledger:
    """The record ids the speed layer has applied (SQLite, one row per id): what it reconciles to."""

    def __init__(self, path: Path) -> None:
        from local.sqlite import open_db

        self._db = open_db(path, synchronous="NORMAL")  # WAL + NORMAL: survives a killed process
        self._db.execute("CREATE TABLE IF NOT EXISTS applied (record_id TEXT PRIMARY KEY)")

    def add(self, ids: Iterable[str]) -> None:
        """Record a batch's ids in one transaction (not one per id)."""
        from local.sqlite import write_transaction
        from speed_layer.store import StoreError

        with write_transaction(self._db, StoreError, "the speed layer's ledger"):
            self._db.executemany("INSERT OR IGNORE INTO applied VALUES (?)", [(i,) for i in ids])

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM applied").fetchone()[0])


class _Stop:
    """SIGTERM/SIGINT, or the supervisor gone: time to stop after the work in hand."""

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid
        self.event = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: self.event.set())
        signal.signal(signal.SIGINT, lambda *_: self.event.set())

    def __call__(self) -> bool:
        if orphaned(self.parent_pid):
            self.event.set()
        return self.event.is_set()

    def wait(self, seconds: float) -> None:
        self.event.wait(seconds)


def _loop(step: Callable[[], dict[str, Any]], name: str, settings: Settings, stop: _Stop) -> None:
    """Run ``step`` until stopped; a failing step is logged and retried with backoff, never fatal."""
    failures = 0
    while not stop():
        try:
            figures = step()
            failures = 0
            write_heartbeat(run_dir(settings), name, state="running", **figures)
        except Exception as exc:  # noqa: BLE001 - stall (checkpoint not moved) and retry; never drop records
            failures += 1
            log.warning("%s: step failed (%s); retrying", name, type(exc).__name__)
            write_heartbeat(run_dir(settings), name, state="stalled", error=f"{type(exc).__name__}: {exc}")
            stop.wait(min(30.0, 0.5 * 2**failures))
            continue
        stop.wait(POLL_S)


def _speed_layer(settings: Settings, stop: _Stop) -> None:
    from local.event_source_mapping import EventSourceMapping
    from local.shard_reader import Checkpoints
    from local.template import event_source_settings, load_template
    from speed_layer.state_store import StateStoreError
    from speed_layer.store import StoreError

    esm = event_source_settings(load_template(settings.template), Environment=settings.environment)
    client = wiring.kinesis_client(settings)
    letters = wiring.dead_letters(settings, settings.home / "dead-letters" / "speed-layer")
    handler = wiring.speed_layer_handler(settings, letters=letters)
    ledger = Ledger(settings.home / "serving" / "speed-ledger.sqlite")

    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
        resp = handler(event, context)
        ledger.add(handler.stats.last_applied)  # before the mapping moves the checkpoint past them
        return resp

    mapping = EventSourceMapping(
        client,
        wiring.stream_name(settings),
        invoke,
        Checkpoints(settings.home / "checkpoints" / "speed-layer.json"),
        letters,
        batch_size=int(esm["BatchSize"]),
        batching_window_s=float(esm.get("MaximumBatchingWindowInSeconds") or 0),
        bisect_on_error=bool(esm["BisectBatchOnFunctionError"]),
        max_retries=int(esm["MaximumRetryAttempts"]),
        max_record_age_s=float(esm.get("MaximumRecordAgeInSeconds", -1)),
        stall_on=(StoreError, StateStoreError, OSError, sqlite3.Error),
    )

    caught_up = {"ms": 0}
    last_beat = {"s": 0.0}

    def figures() -> dict[str, Any]:
        now_ms = int(time.time() * 1000)
        arrival = mapping.stats.last_arrival_ms
        return {
            "caught_up_ms": caught_up["ms"],
            # Lambda's IteratorAge: the age of the newest record delivered, while there is more
            "iterator_age_ms": max(0, now_ms - arrival) if arrival and mapping.stats.in_hand else 0,
            "behind_records": mapping.stats.in_hand,
            "records": handler.stats.records,
            "kinesis_records": handler.stats.kinesis_records,
            "documents": handler.stats.documents,
            "quarantined": handler.stats.quarantined,
            "rejected": handler.stats.rejected,
            "alerts": handler.stats.alerts,
            "sent_to_on_failure": mapping.stats.sent_to_on_failure,
            "checkpoint_resets": mapping.stats.checkpoint_resets,
        }

    def stop_or_beat() -> bool:  # asked between pages: a long catch-up still reports its progress
        if time.time() - last_beat["s"] >= 1.0:
            last_beat["s"] = time.time()
            write_heartbeat(run_dir(settings), "speed_layer", state="running", **figures())
        return stop()

    def step() -> dict[str, Any]:
        t0 = time.time()
        mapping.drain(stop=stop_or_beat)
        if not stop():
            caught_up["ms"] = int(t0 * 1000)  # every record put before t0 has been read and applied
        return figures()

    _loop(step, "speed_layer", settings, stop)


def _delivery(settings: Settings, stop: _Stop) -> None:
    from local.firehose import FirehoseDelivery
    from local.shard_reader import Checkpoints
    from local.template import delivery_buffering, load_template

    hints = delivery_buffering(load_template(settings.template))
    delivery = FirehoseDelivery(
        wiring.kinesis_client(settings),
        wiring.stream_name(settings),
        settings.lake,
        Checkpoints(settings.home / "checkpoints" / "delivery.json"),
        wiring.dead_letters(settings, settings.lake),
        buffer_bytes=hints[0],
        buffer_interval_s=hints[1],
    )
    flush_request = run_dir(settings) / "flush-request.json"

    def step() -> dict[str, Any]:
        t0 = time.time()
        asked = (read_json(flush_request) or {}).get("requested_ms", 0)
        flush = asked > 0 and asked <= t0 * 1000
        delivery.poll(flush=flush, stop=stop)
        s = delivery.stats
        return {
            "caught_up_ms": int(t0 * 1000),
            "flushed_ms": int(t0 * 1000) if flush or not delivery.buffered_records else 0,
            "buffered_records": delivery.buffered_records,
            "records": s.records,
            "errors": s.errors,
            "objects": s.objects,
            "bytes": s.bytes,
            "compacted": s.compacted,
            "conflicts": s.conflicts,
            "checkpoint_resets": s.checkpoint_resets,
        }

    try:
        _loop(step, "delivery", settings, stop)
    finally:
        delivery.poll(flush=True)  # graceful stop: nothing stays buffered
        write_heartbeat(run_dir(settings), "delivery", state="stopped", buffered_records=0)


def _scheduler(settings: Settings, stop: _Stop) -> None:
    state_path = run_dir(settings) / "scheduler-state.json"
    state = read_json(state_path) or {"last_scheduled_day": None, "runs": []}
    at_h, at_m = (int(x) for x in settings.batch_at.split(":"))

    def run_batch(nights: str) -> dict[str, Any]:
        t0 = time.time()
        child = subprocess.Popen(
            [sys.executable, "-m", "sleepstack.cli", "batch", "run", "--night", nights],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while child.poll() is None:
            if stop():  # stopping: the job is rerun at the next start (staging is idempotent)
                child.terminate()
                child.wait()
                return {"nights": nights, "exit": None, "seconds": round(time.time() - t0, 1), "said": ["stopped"]}
            stop.wait(0.5)
        out_text, err_text = child.communicate()
        out = (out_text.strip() or err_text.strip()).splitlines()
        return {"nights": nights, "exit": child.returncode, "seconds": round(time.time() - t0, 1), "said": out[-1:]}

    def step() -> dict[str, Any]:
        request = read_json(run_dir(settings) / "stage-request.json")
        if request and request.get("requested_ms", 0) > (state.get("served_request_ms") or 0):
            state["runs"] = [*state["runs"][-19:], run_batch(str(request["nights"]))]
            state["served_request_ms"] = request["requested_ms"]
        local = datetime.now(tz=ZoneInfo(settings.tz))
        today = local.date().isoformat()
        if (local.hour, local.minute) >= (at_h, at_m) and state.get("last_scheduled_day") != today:
            state["runs"] = [*state["runs"][-19:], run_batch("yesterday")]
            state["last_scheduled_day"] = today
        write_json(state_path, state)
        nxt = datetime.combine(local.date(), datetime.min.time(), tzinfo=local.tzinfo) + timedelta(
            hours=at_h, minutes=at_m
        )
        if state.get("last_scheduled_day") == today:
            nxt += timedelta(days=1)
        return {
            "next_run": nxt.astimezone(UTC).isoformat(),
            "served_request_ms": state.get("served_request_ms"),
            "last_run": (state["runs"] or [None])[-1],
        }

    _loop(step, "scheduler", settings, stop)


def _dashboard(settings: Settings, stop: _Stop) -> None:
    from sleepstack.dashboard import Listen, serve

    def beat(address: str) -> None:
        write_heartbeat(run_dir(settings), "dashboard", state="running", url=address)

    serve(settings, Listen(port=settings.dashboard_port), on_ready=beat, stop=stop)
    write_heartbeat(run_dir(settings), "dashboard", state="stopped")


def _supervisor(settings: Settings) -> None:
    from local.kinesis import LocalStack
    from local.template import load_template, stream_specs

    stack = LocalStack(settings.home)
    specs_of_streams = stream_specs(load_template(settings.template), Environment=settings.environment)

    def start_stream() -> subprocess.Popen[bytes]:
        if (old := stack.state()) is not None:  # a stream left running by a supervisor that was killed
            stack.down()
            wait_gone(int(old["pid"]), timeout_s=10.0)
        proc, _ = stack.launch()
        return proc

    def streams_ready(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        port = int((read_json(settings.home / "stack.json") or {})["port"])
        stack.create_streams(specs_of_streams, f"http://127.0.0.1:{port}")
        return {"url": f"http://127.0.0.1:{port}", "streams": [s.name for s in specs_of_streams]}

    env = settings.child_env()
    specs = [ServiceSpec("stream", start_stream, streams_ready, backing=True)]
    if settings.live_store == "opensearch":
        node_spec, url = _opensearch_service(settings)
        specs.append(node_spec)
        env["OPENSEARCH_URL"] = url  # the speed layer writes there, the dashboard reads there

    def python_service(name: str) -> Callable[[], subprocess.Popen[bytes]]:
        def start() -> subprocess.Popen[bytes]:
            logs = settings.home / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            with (logs / f"{name}.log").open("ab") as out:
                return subprocess.Popen(
                    [sys.executable, "-m", "sleepstack.services", name], stdout=out, stderr=subprocess.STDOUT, env=env
                )

        return start

    specs += [ServiceSpec(name, python_service(name)) for name in PYTHON_SERVICES]
    try:
        Supervisor(specs, run_dir(settings)).run()
    finally:
        (settings.home / "stack.json").unlink(missing_ok=True)


def _opensearch_service(settings: Settings) -> tuple[ServiceSpec, str]:
    """The live store's OpenSearch node (``stack up --live-store opensearch``) and its address.

    Its data and ports are kept under ``$SLEEPSTACK_HOME/opensearch``; once it answers, the
    speed layer's index templates (and ISM policies, where the plugin exists) are installed.
    """
    from local.opensearch_node import OpenSearchNode
    from speed_layer.opensearch_setup import install

    node = OpenSearchNode(wiring.opensearch_dist(settings), settings.home / "opensearch").keep_ports()

    def ready(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        node.proc = proc
        node.wait_healthy(timeout_s=60.0)
        report = install(wiring.opensearch_client(node.url), replicas=0)
        return {"url": node.url, "ism": not report.ism_missing}

    return ServiceSpec("opensearch", lambda: node.spawn(settings.child_env()), ready, backing=True), node.url


def _structured_logs(name: str) -> None:
    """JSON log lines (aws-lambda-powertools' formatter) for this service and every module it runs."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(LambdaPowertoolsFormatter(service=f"sleepstack-{name.replace('_', '-')}"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("supervisor", *PYTHON_SERVICES):
        print(f"usage: python -m sleepstack.services {{supervisor|{'|'.join(PYTHON_SERVICES)}}}", file=sys.stderr)
        return 2
    os.umask(0o077)
    _structured_logs(args[0])
    settings = Settings.from_env()
    if args[0] == "supervisor":
        _supervisor(settings)
        return 0
    stop = _Stop(os.getppid())
    services = {"speed_layer": _speed_layer, "delivery": _delivery, "scheduler": _scheduler, "dashboard": _dashboard}
    services[args[0]](settings, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
