"""Run the real collector + spool + sender over simulated BLE devices (demo, benchmark).

The simulated straps and bed sensors are played through the fake bleak backend; the
collector records them exactly as it would real devices (reconnecting after each link
drop), while a sender thread drains the spool to Kinesis concurrently. At the end the
open bed frames are closed and the spool drained.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from core.simulate import SimulatedNight
from ingest.collector import Collector, DeviceTarget
from ingest.fake_ble import FakeBleWorld
from ingest.producer import KinesisProducer
from ingest.sender import SpoolSender
from ingest.sim_devices import simulated_peripherals
from ingest.spool import Spool

__all__ = ["IngestResult", "collect_simulated"]


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
) -> IngestResult:
    """Collect ``nights`` over the fake BLE backend into ``spool`` and send it all."""
    peripherals = simulated_peripherals(nights, seed=seed, drop_ms=drop_ms, malformed=malformed)
    world = FakeBleWorld(peripherals)
    targets = [DeviceTarget(p.address, p.address.split("-", 1)[1]) for p in peripherals]
    collector = Collector(
        spool, targets, backend=world.client_backend(), clock=world.clock_ms, backoff_base_s=0.01, backoff_max_s=0.1
    )
    sender = SpoolSender(spool, producer)
    done = threading.Event()
    sending = threading.Thread(target=sender.drain, kwargs={"stop": done.is_set, "idle_s": 0.05}, daemon=True)
    sending.start()
    total = sum(sum(1 for item in p.script if isinstance(item, tuple)) for p in peripherals)
    collector_log = logging.getLogger("ingest.collector")
    level = collector_log.level
    collector_log.setLevel(logging.ERROR)  # link drops are the point here; they are counted below
    try:
        asyncio.run(_collect(world, collector, total, progress))
        spool.frame(flush_all=True)
    finally:
        collector_log.setLevel(level)
        done.set()
        sending.join()
    sender.drain()  # whatever the background sender had not reached yet
    c = spool.counters()
    return IngestResult(
        notified=sum(p.delivered for p in peripherals),
        lost_on_air=sum(p.lost for p in peripherals),
        received=c.get("received", 0),
        quarantined=c.get("quarantined", 0),
        records=c.get("records", 0),
        sent=c.get("sent", 0),
        drops=collector.stats.drops,
        reconnects=collector.stats.connects - len(targets),
        bed_gaps=c.get("bed_gaps", 0),
        bed_gap_samples=c.get("bed_gap_samples", 0),
    )


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
