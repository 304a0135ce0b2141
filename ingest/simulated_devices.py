"""Simulated nights as BLE peripherals, and collecting them through the real collector.

:func:`simulated_peripherals` turns simulated nights into what a strap and a bed sensor
would have notified; :func:`collect_simulated` plays them through the fake bleak backend
(:mod:`ingest.fake_ble`) into the real collector, exactly as it would record real devices
(reconnecting after each link drop), while a sender thread drains the spool to Kinesis
concurrently. At the end the open bed frames are closed and the spool drained. Used by the
demo, the benchmarks and the tests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from tqdm import tqdm

from core.ble.bed_profile import encode_bed_frame
from core.ble.hrm import HeartRateMeasurement, encode_hrm
from ingest.collector import Collector, DeviceTarget
from ingest.fake_ble import Drop, FakeBleWorld, FakePeripheral, ScriptItem
from ingest.producer import KinesisProducer
from ingest.sender import SpoolSender
from ingest.spool import Spool
from simulator.nights import SimulatedNight, bed_notifications, strap_measurements

__all__ = [
    "MALFORMED_HRM",
    "DeviceFaults",
    "IngestResult",
    "bed_address",
    "collect_simulated",
    "simulated_peripherals",
    "strap_address",
]

#: Broken Heart Rate Measurements a faulty strap might send (each must be quarantined).
MALFORMED_HRM: tuple[bytes, ...] = (
    b"",  # zero-length
    bytes([0x10, 60]),  # RR flag set, no RR bytes
    bytes([0x01, 60]),  # 16-bit heart rate promised, 8 bits sent
    bytes([0x16, 0, 0x00, 0x04]),  # heart rate 0 with contact detected
)


@dataclass(frozen=True)
class DeviceFaults:
    """Batteries, and what goes wrong with the first subject's devices in its first night.

    Every device gets a Battery Service starting at ``battery_pct`` and losing
    ``drain_pct_h`` an hour; the first subject's strap starts at ``low_battery_pct`` and
    loses ``low_drain_pct_h``, so it reads 20 % or less from ``(low_battery_pct - 20) /
    low_drain_pct_h`` hours on. That strap slips off ``slip_after_min`` into the night for
    ``slip_min`` (it keeps notifying: heart rate 0, no skin contact), and that subject's
    bed sensor goes out of range ``silence_after_min`` into the night for ``silence_min``
    (its notifications then are lost). Times count from the night's start (``t0_ms``);
    the battery drains from the device's first notification.
    """

    battery_pct: float = 100.0
    drain_pct_h: float = 1.0
    low_battery_pct: float = 26.0
    low_drain_pct_h: float = 2.0
    slip_after_min: float = 120.0
    slip_min: float = 15.0
    silence_after_min: float = 240.0
    silence_min: float = 8.0

    def slip_window(self, t0_ms: int) -> tuple[int, int]:
        start = t0_ms + round(self.slip_after_min * 60_000)
        return start, start + round(self.slip_min * 60_000)

    def silence_window(self, t0_ms: int) -> tuple[int, int]:
        start = t0_ms + round(self.silence_after_min * 60_000)
        return start, start + round(self.silence_min * 60_000)

    def battery_low_from(self, t0_ms: int, threshold_pct: float = 20.0) -> int:
        """When the first subject's strap first reads ``threshold_pct`` or less (whole percent)."""
        # the level is int(start - drain * hours): at most the threshold once below threshold + 1
        hours = (self.low_battery_pct - (math.floor(threshold_pct) + 1)) / self.low_drain_pct_h
        return t0_ms + math.floor(hours * 3_600_000) + 1


_SLIPPED: Final = encode_hrm(HeartRateMeasurement(0, (), sensor_contact=False))


def _apply_faults(strap: list[ScriptItem], bed: list[ScriptItem], faults: DeviceFaults, t0: int) -> list[ScriptItem]:
    """The first night's strap slips off (in place) and its bed falls silent (the bed script returned)."""
    a, b = faults.slip_window(t0)
    for i, item in enumerate(strap):
        if not isinstance(item, Drop) and a <= item[0] < b:
            strap[i] = (item[0], _SLIPPED)
    quiet_from, quiet_to = faults.silence_window(t0)
    at = next(i for i, item in enumerate(bed) if not isinstance(item, Drop) and item[0] >= quiet_from)
    return [*bed[:at], Drop(quiet_to - quiet_from, refuse=1), *bed[at:]]


def strap_address(subject_id: str) -> str:
    return f"strap-{subject_id}"


def bed_address(subject_id: str) -> str:
    return f"bed-{subject_id}"


def simulated_peripherals(
    nights: Sequence[SimulatedNight],
    *,
    seed: int = 0,
    drop_ms: int = 20_000,
    samples_per_frame: int = 50,
    malformed: bool = False,
    faults: DeviceFaults | None = None,
) -> list[FakePeripheral]:
    """One strap and one bed peripheral per subject, playing the subject's nights in order.

    With ``drop_ms`` > 0 each device loses its link once per night, at a random point, for
    that long (the sensor's notifications in that time are lost and the collector must
    reconnect). With ``malformed`` the first subject's strap also sends
    :data:`MALFORMED_HRM` ten minutes into its first night. With ``faults`` the devices have
    batteries, and the first subject's devices fail as :class:`DeviceFaults` says.
    """
    rng = np.random.default_rng(seed)
    scripts: dict[tuple[str, str, str], list[ScriptItem]] = {}  # (address, kind, subject) -> script
    for k, night in enumerate(sorted(nights, key=lambda n: (n.config.subject_id, n.t0_ms))):
        subject = night.config.subject_id
        strap: list[ScriptItem] = [(t, encode_hrm(m)) for t, m in strap_measurements(night)]
        bed: list[ScriptItem] = [(t, encode_bed_frame(n)) for t, n in bed_notifications(night, samples_per_frame)]
        if malformed and k == 0:
            at = min(len(strap) // 3, 600)
            t_bad = strap[at][0]  # type: ignore[index]
            strap[at:at] = [(t_bad + 1 + j, p) for j, p in enumerate(MALFORMED_HRM)]
        if faults is not None and k == 0:
            bed = _apply_faults(strap, bed, faults, night.t0_ms)
        for script in (strap, bed) if drop_ms > 0 else ():
            at = int(rng.integers(len(script) // 10, 9 * len(script) // 10))
            script.insert(at, Drop(drop_ms, refuse=int(rng.integers(1, 4))))
        scripts.setdefault((strap_address(subject), "strap", subject), []).extend(strap)
        scripts.setdefault((bed_address(subject), "bed", subject), []).extend(bed)
    first = min((n.config.subject_id for n in nights), default=None)
    peripherals = []
    for (addr, kind, subject), script in scripts.items():
        p = FakePeripheral(
            address=addr, kind=kind, script=script, name=addr, samples_per_frame=samples_per_frame, subject_id=subject
        )
        if faults is not None:
            low = kind == "strap" and subject == first
            p.battery_pct = faults.low_battery_pct if low else faults.battery_pct
            p.battery_drain_pct_h = faults.low_drain_pct_h if low else faults.drain_pct_h
        peripherals.append(p)
    return peripherals


@dataclass
class IngestResult:
    notified: int  # notifications the sensors sent to a listening collector
    lost_on_air: int  # sent while the link was down
    received: int  # committed to the spool
    quarantined: int
    records: int  # contract records built from them
    sent: int  # accepted by Kinesis
    drops: int
    reconnects: int
    bed_gaps: int
    bed_gap_samples: int

    @classmethod
    def of(cls, collector: Collector, spool: Spool, peripherals: Sequence[FakePeripheral] = ()) -> IngestResult:
        """A collection's figures: the played ``peripherals``' (or, recording real devices, the
        collector's own count of notifications) and the spool's."""
        c = spool.counters()
        return cls(
            notified=sum(p.delivered for p in peripherals) if peripherals else collector.stats.notifications,
            lost_on_air=sum(p.lost for p in peripherals),
            received=c.get("received", 0),
            quarantined=c.get("quarantined", 0),
            records=c.get("records", 0),
            sent=c.get("sent", 0),
            drops=collector.stats.drops,
            reconnects=max(0, collector.stats.connects - len(collector.targets)),
            bed_gaps=c.get("bed_gaps", 0),
            bed_gap_samples=c.get("bed_gap_samples", 0),
        )

    def summary_line(self) -> str:
        return (
            f"ble: notified={self.notified} lost_on_air={self.lost_on_air} received={self.received}"
            f" quarantined={self.quarantined} link_drops={self.drops} reconnects={self.reconnects}"
            f" bed_gaps={self.bed_gaps} ({self.bed_gap_samples} samples) -> records={self.records} sent={self.sent}"
        )


def collect_simulated(
    nights: Sequence[SimulatedNight],
    spool: Spool,
    producer: KinesisProducer,
    *,
    seed: int = 0,
    drop_ms: int = 20_000,
    malformed: bool = True,
    progress: bool = False,
    resolve: Callable[[str, int], str | None] | None = None,
    faults: DeviceFaults | None = None,
) -> IngestResult:
    """Collect ``nights`` over the fake BLE backend into ``spool`` and send it all.

    ``resolve``: each notification's subject from the registry (the demo registers its
    cohort first); without it, each device goes to the subject its simulated night names.
    """
    peripherals = simulated_peripherals(nights, seed=seed, drop_ms=drop_ms, malformed=malformed, faults=faults)
    world = FakeBleWorld(peripherals)
    targets = [DeviceTarget(p.address, None if resolve else str(p.subject_id), p.kind) for p in peripherals]
    collector = Collector(
        spool,
        targets,
        resolve=resolve,
        backend=world.client_backend(),
        clock=world.clock_ms,
        backoff_base_s=0.01,
        backoff_max_s=0.1,
    )
    sender = SpoolSender(spool, producer)  # no idle closes: the simulated clock jumps between devices
    done = threading.Event()
    sending = threading.Thread(target=sender.drain, kwargs={"stop": done.is_set, "idle_s": 0.05}, daemon=True)
    sending.start()
    total = sum(sum(1 for item in p.script if isinstance(item, tuple)) for p in peripherals)
    collector_log = logging.getLogger("ingest.collector")
    level = collector_log.level
    collector_log.setLevel(logging.ERROR)  # link drops are the point here; they are counted below
    try:
        asyncio.run(_collect(world, collector, total, progress))
        spool.frame_all(end_of_stream=True)  # the simulated recording has ended
    finally:
        collector_log.setLevel(level)
        done.set()
        sending.join()
    sender.drain()  # whatever the background sender had not reached yet
    return IngestResult.of(collector, spool, peripherals)


async def _collect(world: FakeBleWorld, collector: Collector, total: int, progress: bool) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        with tqdm(total=total, desc="BLE collect", unit="notif", disable=not progress) as bar:
            seen = 0
            while not world.all_finished:
                await asyncio.sleep(0.1)
                now = sum(p.delivered + p.lost for p in world.peripherals.values())
                bar.update(now - seen)
                seen = now
        stop.set()

    await asyncio.gather(collector.run(stop), watch())
