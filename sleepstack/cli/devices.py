"""Commands for devices: ``collect`` (record BLE devices or replays) and ``ble`` (decode payloads).

``collect`` wires the collector to the spool, the sender and the stream.

Locally the stream is the embedded stack's kinesalite (``sleepstack stack up`` first);
with ``SLEEPSTACK_TARGET=aws`` it is the Kinesis stream of the deployed template. The
spool lives at ``$SLEEPSTACK_HOME/spool/collector.sqlite`` and survives restarts: what a
killed collector had spooled is sent by the next one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import DatasetError, DecodeError, UsageError
from sleepstack import wiring
from sleepstack.settings import Settings

if TYPE_CHECKING:  # bleak and the collector load only when a device command runs
    from ingest.collector import Collector, DeviceTarget
    from ingest.fake_ble import FakeBleWorld
    from ingest.producer import KinesisProducer

__all__ = ["parse_devices", "register", "run_collect"]

log = logging.getLogger(__name__)


def _run_scan(timeout_s: float) -> int:
    from ingest.collector import scan

    for d in asyncio.run(scan(timeout_s)):
        print(json.dumps(d))
    return 0


def parse_devices(specs: list[str], default_subject: str) -> list[DeviceTarget]:
    """``ADDR`` or ``ADDR=SUBJECT`` arguments as targets."""
    from ingest.collector import DeviceTarget

    out = []
    for spec in specs:
        addr, _, subject = spec.partition("=")
        if not addr:
            raise UsageError("--device", f"{spec!r} has an empty address; give ADDR or ADDR=SUBJECT")
        out.append(DeviceTarget(addr, subject or default_subject))
    return out


def _producer(settings: Settings) -> KinesisProducer:
    from ingest.producer import KinesisProducer

    return KinesisProducer(wiring.kinesis_client(settings), wiring.stream_name(settings))


def run_collect(
    settings: Settings,
    *,
    devices: list[str],
    subject: str,
    replays: list[Path],
    duration_s: float | None,
    max_spool_mib: int,
    speed: float | None = None,
) -> int:
    from bleak.backends.client import BaseBleakClient

    from ingest.collector import Collector, DeviceTarget, wall_clock_ms
    from ingest.fake_ble import FakeBleWorld
    from ingest.sender import SpoolSender
    from ingest.spool import Spool

    targets = parse_devices(devices, subject)
    backend: type[BaseBleakClient] | None = None
    clock = wall_clock_ms
    world: FakeBleWorld | None = None
    spool = Spool(settings.home / "spool" / "collector.sqlite", max_bytes=max_spool_mib << 20)
    if replays:
        world = FakeBleWorld(_replayed(replays, spool, speed))
        backend, clock = world.client_backend(), world.clock_ms
        targets += [DeviceTarget(a, subject) for a in world.peripherals if a not in {t.address for t in targets}]
    left = spool.backlog()
    if left["notifications"] or left["outbox"]:
        print(f"spool holds a backlog from an earlier run: {left}; sending it first")
    # idle bed frames are closed by the wall clock; a replay's clock jumps between devices, so it ends them instead
    sender = SpoolSender(spool, _producer(settings), clock=None if world else clock, linger_ms=settings.send_linger_ms)
    collector = Collector(spool, targets, backend=backend, clock=clock)
    done = threading.Event()
    sending = threading.Thread(target=sender.drain, kwargs={"stop": done.is_set, "idle_s": 0.2}, daemon=True)
    sending.start()
    print(f"recording {', '.join(f'{t.address} ({t.subject_id})' for t in targets)}; Ctrl-C stops")
    try:
        asyncio.run(_run(collector, duration_s, world))
        if world is None:
            spool.frame_all(now_ms=clock())
        else:
            spool.frame_all(end_of_stream=world.all_finished)
    finally:
        done.set()
        sending.join()
    deadline = time.monotonic() + 30
    sender.drain(stop=lambda: time.monotonic() > deadline)
    sent = {"kinesis_records": sender.stats.kinesis_records, "put_units": sender.stats.put_units}
    print(
        json.dumps(
            {"collector": _stats(collector), "spool": spool.counters(), "sender": sent, "backlog": spool.backlog()}
        )
    )
    return 0


def _replayed(replays: list[Path], spool: Any, speed: float | None) -> list[Any]:
    """The recordings as peripherals, resumed after what the spool already holds of them.

    With ``speed`` they play ``speed`` times faster than real time, their times shifted so
    the recording starts now (bed frames' device times too; the shift is kept in the spool,
    so an interrupted replay resumes on the same clock); the contract's clock-skew rules
    hold because receive and device times move together.
    """
    from ingest.collector import wall_clock_ms
    from ingest.fake_ble import load_recording, rebased

    try:
        peripherals = [load_recording(p) for p in replays]
    except DatasetError as exc:
        raise UsageError("--replay", str(exc)) from None
    first = min((item[0] for p in peripherals for item in p.script if isinstance(item, tuple)), default=0)
    shift = 0
    if speed:
        key = f"replay_shift_ms:{first}"
        shift = spool.meta(key) or 0
        if not shift:
            shift = wall_clock_ms() - first
            spool.set_meta(key, shift)
    out = []
    for p in peripherals:
        q = rebased(p, shift, after_ms=spool.last_receive_ms(p.address))
        q.speed = speed
        out.append(q)
    return out


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


def _cmd_collect(args: argparse.Namespace, settings: Settings) -> int:
    if args.scan:
        return _run_scan(args.timeout)
    if not args.device and not args.replay:
        raise UsageError("--device", "name at least one --device ADDR (or --replay FILE); --scan lists nearby devices")
    return run_collect(
        settings,
        devices=args.device,
        subject=args.subject,
        replays=[Path(p) for p in args.replay],
        duration_s=args.duration,
        max_spool_mib=args.max_spool_mib,
        speed=args.speed,
    )


def _cmd_ble(args: argparse.Namespace, settings: Settings) -> int:
    from core.bed_profile import decode_bed_frame
    from core.hrm import decode_hrm

    try:
        payload = bytes.fromhex(args.hex.replace(" ", "").replace(":", ""))
    except ValueError as exc:
        raise UsageError("HEX", f"{args.hex!r} is not a hex string ({exc})") from None
    if args.action == "decode-hrm":
        from core.device_records import check_measurement

        try:
            measurement = decode_hrm(payload)
            check_measurement(measurement)  # the collector's rule: it quarantines what this refuses
        except DecodeError as exc:
            raise UsageError("HEX", f"{args.hex} is not a valid Heart Rate Measurement: {exc.reason}") from None
        print(json.dumps(measurement.as_json()))
    else:
        try:
            n = decode_bed_frame(payload)
        except DecodeError as exc:
            raise UsageError("HEX", f"{args.hex} is not a valid bed frame: {exc.reason}") from None
        print(
            json.dumps(
                {
                    "seq": n.seq,
                    "device_time_ms": n.device_time_ms,
                    "fs_hz": n.fs_hz,
                    "clock_set": n.clock_set,
                    "samples": n.samples.tolist(),
                }
            )
        )
    return 0


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError(f"{value} is not a replay speed (0 < X <= 10000)")
    return value


def register(sub: Any) -> None:
    s = sub.add_parser("ble", help="decode Bluetooth payloads (hex)")
    s.add_argument("action", choices=["decode-hrm", "decode-bed"], help="0x2A37 Heart Rate Measurement or bed frame")
    s.add_argument("hex", help="payload as hex, e.g. 1648e803")
    s.set_defaults(func=_cmd_ble)

    s = sub.add_parser("collect", help="record BLE straps and bed sensors all night into the spool and Kinesis")
    s.add_argument("--scan", action="store_true", help="list nearby devices and exit")
    s.add_argument("--timeout", type=float, default=5.0, help="scan time, s")
    s.add_argument("--device", action="append", default=[], help="ADDR or ADDR=SUBJECT (repeatable)")
    s.add_argument("--subject", default="s001", help="subject of devices given without =SUBJECT")
    s.add_argument("--replay", action="append", default=[], help="JSON-lines recording to play (fake BLE backend)")
    s.add_argument("--speed", type=_speed, help="replay X times faster than real time, rebased to start now")
    s.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    s.add_argument("--max-spool-mib", type=int, default=2048, help="spool size bound, MiB")
    s.set_defaults(func=_cmd_collect)
