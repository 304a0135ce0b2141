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
import dataclasses
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.contract.epochs import night_of
from core.errors import DatasetError, DecodeError
from sleepstack import wiring
from sleepstack.cli.errors import UsageError
from sleepstack.hints import command
from sleepstack.settings import Settings

if TYPE_CHECKING:  # bleak and the collector load only when a device command runs
    from ingest.assignments import AssignmentCache
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


def parse_devices(specs: list[str], home: Path | None = None) -> list[DeviceTarget]:
    """``--device ADDR`` arguments as targets (their subjects come from the registry)."""
    from ingest.collector import DeviceTarget

    out = []
    for spec in specs:
        addr, eq, subject = spec.partition("=")
        if eq:
            raise UsageError(
                "--device",
                f"{spec!r}: the registry says who wears a device, not the command line: "
                f"{command('assign', addr or 'ADDR', subject or 'SUBJECT', home=home)}, then --device {addr or 'ADDR'}",
            )
        if not addr:
            raise UsageError("--device", "an empty address")
        out.append(DeviceTarget(addr))
    return out


def _check_assigned(targets: list[DeviceTarget], cache: AssignmentCache, now_ms: int, home: Path) -> None:
    """Refuse to start with a device that records for nobody: one line naming it and the fix."""
    for t in targets:
        if t.subject_id is None and cache.subject_at(t.address, now_ms) is None:
            raise UsageError(
                "--device",
                f"{t.address} is not assigned to any subject now, so it would record for nobody: "
                f"{command('assign', t.address, 'SUBJECT', home=home)} (register it first: "
                f"{command('devices', 'add', t.address, '--kind', 'strap', home=home)})",
            )


def _registered(targets: list[DeviceTarget], settings: Settings) -> tuple[list[DeviceTarget], AssignmentCache]:
    """The targets with their kinds from the registry (a device that never connects reports as
    silent), and the registry's assignment cache; refuses a device assigned to nobody now."""
    from ingest.assignments import AssignmentCache
    from ingest.collector import wall_clock_ms

    registry = wiring.registry(settings, create=False)
    cache = AssignmentCache(registry.assignments)
    _check_assigned(targets, cache, wall_clock_ms(), settings.home)
    kinds = {d.address: d.kind for d in registry.devices()}
    return [dataclasses.replace(t, kind=kinds.get(t.address)) for t in targets], cache


def _check_replayed(played: list[DeviceTarget], cache: AssignmentCache, home: Path) -> None:
    """A recording that names no subject plays only devices the registry has assigned."""
    for t in played:
        if t.subject_id is None and not cache.ever_assigned(t.address):
            raise UsageError(
                "--replay",
                f"the recording of {t.address} names no subject and the registry never assigned it: "
                f"{command('assign', t.address, 'SUBJECT', '--from', 'START', home=home)}",
            )


def _producer(settings: Settings) -> KinesisProducer:
    from ingest.producer import KinesisProducer

    return KinesisProducer(wiring.kinesis_client(settings), wiring.stream_name(settings))


def run_collect(
    settings: Settings,
    *,
    devices: list[str],
    replays: list[Path],
    duration_s: float | None,
    max_spool_mib: int,
    speed: float | None = None,
    replay_clock: ReplayClock = "as-recorded",
    as_json: bool = False,
    progress: bool = True,
) -> int:
    from bleak.backends.client import BaseBleakClient

    from ingest.collector import Collector, DeviceTarget, wall_clock_ms
    from ingest.fake_ble import FakeBleWorld
    from ingest.sender import SpoolSender
    from ingest.spool import Spool

    targets = parse_devices(devices, settings.home)
    recordings = _load_recordings(replays)  # a bad recording is refused before anything is created
    targets, cache = _registered(targets, settings)
    backend: type[BaseBleakClient] | None = None
    clock = wall_clock_ms
    world: FakeBleWorld | None = None
    spool = Spool(settings.paths.spool, max_bytes=max_spool_mib << 20)
    if recordings:
        world = FakeBleWorld(_replayed(recordings, spool, speed, replay_clock, settings.tz))
        backend, clock = world.client_backend(), world.clock_ms
        named = {t.address for t in targets}
        # a recording names its devices' subject; one that does not goes by the registry
        played = [DeviceTarget(a, p.subject_id, p.kind) for a, p in world.peripherals.items() if a not in named]
        _check_replayed(played, cache, settings.home)
        targets += played
    left = spool.backlog()
    if left["notifications"] or left["outbox"]:
        print(f"spool holds a backlog from an earlier run: {left}; sending it first")
    # idle bed frames are closed by the wall clock; a replay's clock jumps between devices, so it ends them instead
    sender = SpoolSender(spool, _producer(settings), clock=None if world else clock, linger_ms=settings.send_linger_ms)
    collector = Collector(spool, targets, resolve=cache.subject_at, backend=backend, clock=clock)
    done = threading.Event()
    sending = threading.Thread(target=sender.drain, kwargs={"stop": done.is_set, "idle_s": 0.2}, daemon=True)
    sending.start()
    whose = [f"{t.address} ({t.subject_id or 'by the registry'})" for t in targets]
    print(f"recording {', '.join(whose)}; Ctrl-C stops")
    try:
        asyncio.run(_run(collector, duration_s, world, progress=progress))
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
    if as_json:
        figures = {
            "collector": _stats(collector),
            "spool": spool.counters(),
            "sender": sent,
            "backlog": spool.backlog(),
        }
        print(json.dumps(figures))
    else:
        from ingest.simulated_devices import IngestResult

        print(IngestResult.of(collector, spool, list(world.peripherals.values()) if world else ()).summary_line())
    return 0


#: How a replay's clock is set: moved by whole days to the latest day it ends before now,
#: kept as recorded, or moved to start at a given instant (ms UTC).
ReplayClock = str | int


def _load_recordings(replays: list[Path]) -> list[Any]:
    """The ``--replay`` files as peripherals; a file that is not a recording is a usage error naming it."""
    from ingest.fake_ble import load_recording

    try:
        peripherals = [load_recording(p) for p in replays]
    except DatasetError as exc:
        raise UsageError("--replay", str(exc)) from None
    if replays and not any(isinstance(item, tuple) for p in peripherals for item in p.script):
        raise UsageError("--replay", "the recordings hold no notification")
    return peripherals


def _replayed(peripherals: list[Any], spool: Any, speed: float | None, clock: ReplayClock, tz: str) -> list[Any]:
    """The loaded recordings (:func:`_load_recordings`), resumed after what the spool already holds of them.

    ``clock``: ``"latest"`` shifts every time by whole days so the recording ends at the
    latest before now (the time of day, hence each night in the subjects' zone and the
    bed sensor's phase against the 30-s grid, stay as recorded, and nothing lands in the
    future); ``"as-recorded"`` keeps the times; an int (ms UTC) moves the first
    notification there. Bed frames' device times move with receive times, so the
    contract's clock-skew rules hold. The shift is kept in the spool, so an interrupted
    replay resumes on the same clock. With ``speed`` they play ``speed`` times faster than
    real time. Prints the nights the replay fills, to stage.
    """
    from ingest.collector import wall_clock_ms
    from ingest.fake_ble import rebased

    times = [item[0] for p in peripherals for item in p.script if isinstance(item, tuple)]
    first, last = min(times), max(times)
    key = replay_shift_key(first, clock)
    shift = spool.meta(key)
    if shift is None:
        if clock == "latest":
            shift = (wall_clock_ms() - last) // _DAY_MS * _DAY_MS
        elif clock == "as-recorded":
            shift = 0
        else:
            shift = int(clock) - first
        spool.set_meta(key, shift)
    out = []
    for p in peripherals:
        q = rebased(p, shift, after_ms=spool.last_receive_ms(p.address))
        q.speed = speed
        out.append(q)
    nights = sorted({night_of(t, tz) for t in [*range(first + shift, last + shift, 3_600_000), last + shift]})
    print(
        f"replaying {len(out)} recordings from {_iso(first + shift, tz)} to {_iso(last + shift, tz)} ({tz});"
        f" nights to stage: {', '.join(nights)}"
    )
    return out


_DAY_MS = 86_400_000


def replay_shift_key(first_ms: int, clock: ReplayClock) -> str:
    """The spool's meta key holding the time shift of a replay whose first notification is at ``first_ms``."""
    return f"replay_shift_ms:{first_ms}:{clock}"


def _iso(t_ms: int, tz: str) -> str:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _start(text: str) -> int:
    """``--start``: an ISO 8601 instant with its offset (2026-01-05T22:00+01:00), as ms UTC."""
    from datetime import datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date and time") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset: write e.g. {text}+00:00")
    return int(when.timestamp() * 1000)


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


async def _run(
    collector: Collector, duration_s: float | None, world: FakeBleWorld | None, *, progress: bool = True
) -> None:
    from tqdm import tqdm

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    total = sum(sum(1 for it in p.script if isinstance(it, tuple)) for p in world.peripherals.values()) if world else 0
    # a replay shows its progress (stderr): notifications played of the recordings' total
    bar = tqdm(total=total, desc="replay", unit="notif", disable=not (world and progress), leave=False)

    async def until() -> None:
        t_end = None if duration_s is None else loop.time() + duration_s
        while not stop.is_set():
            await asyncio.sleep(0.2)
            if world is not None:
                bar.update(sum(p.delivered + p.lost for p in world.peripherals.values()) - bar.n)
            if (t_end is not None and loop.time() >= t_end) or (world is not None and world.all_finished):
                stop.set()

    try:
        await asyncio.gather(collector.run(stop), until())
    finally:
        bar.close()


def _cmd_collect(args: argparse.Namespace, settings: Settings) -> int:
    if args.scan:
        return _run_scan(args.timeout)
    if not args.device and not args.replay:
        raise UsageError("--device", "name at least one --device ADDR (or --replay FILE); --scan lists nearby devices")
    return run_collect(
        settings,
        devices=args.device,
        replays=[Path(p) for p in args.replay],
        duration_s=args.duration,
        max_spool_mib=args.max_spool_mib,
        speed=args.speed,
        replay_clock=_replay_clock(args),
        as_json=args.json,
        progress=not args.no_progress,
    )


def _replay_clock(args: argparse.Namespace) -> ReplayClock:
    if args.start is not None and args.as_recorded:
        raise UsageError("--start", "give --start or --as-recorded, not both")
    if (args.start is not None or args.as_recorded) and not args.replay:
        raise UsageError(
            "--start" if args.start is not None else "--as-recorded", "sets a replay's clock: add --replay FILE"
        )
    if args.start is not None:
        return int(args.start)
    if args.as_recorded or not args.speed:
        return "as-recorded"
    return "latest"


def _cmd_ble(args: argparse.Namespace, settings: Settings) -> int:
    from core.ble.bed_profile import decode_bed_frame
    from core.ble.hrm import decode_hrm

    try:
        payload = bytes.fromhex(args.hex.replace(" ", "").replace(":", ""))
    except ValueError as exc:
        raise UsageError("HEX", f"{args.hex!r} is not a hex string ({exc})") from None
    if args.action == "decode-hrm":
        from core.ble.device_records import check_measurement

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
    acts = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = acts.add_parser("decode-hrm", help="a Heart Rate Measurement (0x2A37) as JSON")
    a.add_argument("hex", help="payload as hex, e.g. 1648e803")
    a = acts.add_parser("decode-bed", help="a sleepstack bed-sensor frame as JSON")
    a.add_argument("hex", help="payload as hex")
    s.set_defaults(func=_cmd_ble)

    s = sub.add_parser("collect", help="record BLE straps and bed sensors all night into the spool and Kinesis")
    s.add_argument("--scan", action="store_true", help="list nearby devices and exit")
    s.add_argument("--timeout", type=float, default=5.0, help="scan time, s")
    s.add_argument(
        "--device",
        action="append",
        default=[],
        help="ADDR of a registered device assigned to a subject (repeatable; see sleepstack assign)",
    )
    s.add_argument(
        "--replay",
        action="append",
        default=[],
        help="JSON-lines recording to play (fake BLE backend); its devices go to the subject the recording "
        "names, or else to the one the registry assigns them to",
    )
    s.add_argument(
        "--speed",
        type=_speed,
        help="replay X times faster than real time; its clock moves by whole days to the latest day the "
        "recording ends before now, so each night stays one night (unless --start or --as-recorded)",
    )
    s.add_argument("--start", type=_start, help="replay: move the recording to start at this ISO 8601 instant")
    s.add_argument("--as-recorded", action="store_true", help="replay: keep the recording's own times")
    s.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    s.add_argument("--max-spool-mib", type=int, default=2048, help="spool size bound, MiB")
    s.add_argument("--json", action="store_true", help="end with the figures as one JSON object, not the summary line")
    s.add_argument("--no-progress", action="store_true", help="no progress bar while replaying")
    s.set_defaults(func=_cmd_collect)
