"""``sleepstack collect``: the collector wired to the spool, the sender and the stream.

Locally the stream is the embedded stack's kinesalite (``sleepstack stack up`` first);
with ``SLEEPSTACK_TARGET=aws`` it is the Kinesis stream of the deployed template. The
spool lives at ``$SLEEPSTACK_HOME/spool/collector.sqlite`` and survives restarts: what a
killed collector had spooled is sent by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from pathlib import Path

from bleak.backends.client import BaseBleakClient

from ingest.collector import Collector, DeviceTarget, scan, wall_clock_ms
from ingest.fake_ble import FakeBleWorld, load_recording
from ingest.producer import KinesisProducer
from ingest.sender import SpoolSender
from ingest.spool import Spool
from sleepstack.clients import kinesis_client
from sleepstack.local_stack import LocalStack, StackError
from sleepstack.settings import Settings
from sleepstack.template import load_template, stream_specs

__all__ = ["parse_devices", "run_collect", "run_scan"]

log = logging.getLogger(__name__)


def run_scan(timeout_s: float) -> int:
    for d in asyncio.run(scan(timeout_s)):
        print(json.dumps(d))
    return 0


def parse_devices(specs: list[str], default_subject: str) -> list[DeviceTarget]:
    """``ADDR`` or ``ADDR=SUBJECT`` arguments as targets."""
    out = []
    for spec in specs:
        addr, _, subject = spec.partition("=")
        if not addr:
            raise ValueError(f"--device {spec!r}: empty address")
        out.append(DeviceTarget(addr, subject or default_subject))
    return out


def _producer(settings: Settings) -> KinesisProducer:
    stream = stream_specs(load_template(settings.template), Environment=settings.environment)[0].name
    if settings.target == "aws":
        return KinesisProducer(kinesis_client(None, settings.region), stream)
    state = LocalStack(settings.home, settings.region).state()
    if state is None:
        raise StackError("the local stack is not running: start it with `sleepstack stack up`")
    return KinesisProducer(kinesis_client(f"http://127.0.0.1:{state['port']}", settings.region), stream)


def run_collect(
    settings: Settings,
    *,
    devices: list[str],
    subject: str,
    replays: list[Path],
    duration_s: float | None,
    max_spool_mib: int,
) -> int:
    targets = parse_devices(devices, subject)
    backend: type[BaseBleakClient] | None = None
    clock = wall_clock_ms
    world: FakeBleWorld | None = None
    if replays:
        world = FakeBleWorld(load_recording(p) for p in replays)
        backend, clock = world.client_backend(), world.clock_ms
        targets += [DeviceTarget(a, subject) for a in world.peripherals if a not in {t.address for t in targets}]
    spool = Spool(settings.home / "spool" / "collector.sqlite", max_bytes=max_spool_mib << 20)
    left = spool.backlog()
    if left["notifications"] or left["outbox"]:
        print(f"spool holds a backlog from an earlier run: {left}; sending it first")
    sender = SpoolSender(spool, _producer(settings))
    collector = Collector(spool, targets, backend=backend, clock=clock)
    done = threading.Event()
    sending = threading.Thread(target=sender.drain, kwargs={"stop": done.is_set, "idle_s": 0.2}, daemon=True)
    sending.start()
    print(f"recording {', '.join(f'{t.address} ({t.subject_id})' for t in targets)}; Ctrl-C stops")
    try:
        asyncio.run(_run(collector, duration_s, world))
        spool.frame(flush_all=True)
    finally:
        done.set()
        sending.join()
    deadline = time.monotonic() + 30
    sender.drain(stop=lambda: time.monotonic() > deadline)
    print(json.dumps({"collector": _stats(collector), "spool": spool.counters(), "backlog": spool.backlog()}))
    return 0


def _stats(c: Collector) -> dict[str, object]:
    s = c.stats
    return {
        "notifications": s.notifications,
        "spooled": s.spooled,
        "rejected_spool_full": s.rejected_spool_full,
        "connects": s.connects,
        "drops": s.drops,
        "failed_connects": s.failed_connects,
    }


async def _run(collector: Collector, duration_s: float | None, world: FakeBleWorld | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)

    async def until() -> None:
        t_end = None if duration_s is None else loop.time() + duration_s
        while not stop.is_set():
            await asyncio.sleep(0.2)
            if (t_end is not None and loop.time() >= t_end) or (world is not None and world.all_finished):
                stop.set()

    await asyncio.gather(collector.run(stop), until())
