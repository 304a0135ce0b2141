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
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from core.ble.bed_profile import encode_bed_frame
from core.ble.hrm import encode_hrm
from ingest.collector import Collector, DeviceTarget
from ingest.fake_ble import Drop, FakeBleWorld, FakePeripheral, ScriptItem
from ingest.producer import KinesisProducer
from ingest.sender import SpoolSender
from ingest.spool import Spool
from simulator.nights import SimulatedNight, bed_notifications, strap_measurements

__all__ = [
    "MALFORMED_HRM",
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
) -> list[FakePeripheral]:
    """One strap and one bed peripheral per subject, playing the subject's nights in order.

    With ``drop_ms`` > 0 each device loses its link once per night, at a random point, for
    that long (the sensor's notifications in that time are lost and the collector must
    reconnect). With ``malformed`` the first subject's strap also sends
    :data:`MALFORMED_HRM` ten minutes into its first night.
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
        for script in (strap, bed) if drop_ms > 0 else ():
            at = int(rng.integers(len(script) // 10, 9 * len(script) // 10))
            script.insert(at, Drop(drop_ms, refuse=int(rng.integers(1, 4))))
        scripts.setdefault((strap_address(subject), "strap", subject), []).extend(strap)
        scripts.setdefault((bed_address(subject), "bed", subject), []).extend(bed)
    return [
        FakePeripheral(
            address=addr,
            kind=kind,
            script=script,
            name=addr,
            samples_per_frame=samples_per_frame,
            subject_id=subject,
        )
        for (addr, kind, subject), script in scripts.items()
    ]


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
) -> IngestResult:
    """Collect ``nights`` over the fake BLE backend into ``spool`` and send it all.

    ``resolve``: each notification's subject from the registry (the demo registers its
    cohort first); without it, each device goes to the subject its simulated night names.
    """
    peripherals = simulated_peripherals(nights, seed=seed, drop_ms=drop_ms, malformed=malformed)
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
