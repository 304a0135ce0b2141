"""The overnight BLE collector: subscribe, stamp, spool; reconnect after every drop.

One :class:`Collector` records several devices at once, one asyncio task per device:

1. connect with ``bleak.BleakClient`` (the platform backend, or any bleak backend passed
   in, e.g. :mod:`ingest.fake_ble` for tests and the demo);
2. recognise the device by its services: Heart Rate Service (0x180D) -> strap, sleepstack
   Bed Sensor service -> bed; for a bed sensor, write the current UTC time to its Clock
   characteristic so its frames are stamped in UTC;
3. subscribe to the measurement characteristic; each notification is stamped with the
   device and its receive time (strictly increasing per device), given the subject the
   device is assigned to at that time (the registry, through ``resolve``:
   :class:`ingest.assignments.AssignmentCache`; or the subject a replayed recording
   names) and buffered; a notification of a device assigned to nobody then is not
   collected, only counted (``unassigned``);
4. when the link drops, reconnect with exponential backoff and full jitter (1 s doubling
   to 60 s by default) and re-subscribe; this goes on all night until ``stop`` is set.

The buffer is committed to the :class:`~ingest.spool.Spool` every ``commit_interval_s``
(and whenever it holds ``commit_max`` notifications); a notification counts as received
once committed. Decoding happens after the spool (in :meth:`Spool.frame`), so a payload
the parser rejects is quarantined with its bytes instead of crashing the collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bleak.exc import BleakError

from core.ble.bed_profile import BED_CLOCK_UUID, BED_FRAME_UUID, BED_SERVICE_UUID, encode_clock
from core.ble.hrm import (
    BODY_SENSOR_LOCATION_UUID,
    HEART_RATE_MEASUREMENT_UUID,
    HEART_RATE_SERVICE_UUID,
    decode_body_sensor_location,
)
from core.errors import DecodeError
from ingest.spool import Notification, Spool, SpoolFullError

__all__ = ["Collector", "CollectorStats", "DeviceTarget", "scan", "wall_clock_ms"]

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """A device to record; ``subject_id`` only for a recording that names its subject
    (a live device's subject comes from the registry at each notification)."""

    address: str
    subject_id: str | None = None


@dataclass
class CollectorStats:
    notifications: int = 0
    spooled: int = 0
    rejected_spool_full: int = 0
    connects: int = 0
    drops: int = 0
    failed_connects: int = 0
    unassigned: int = 0
    per_device: dict[str, dict[str, int]] = field(default_factory=dict)

    def device(self, address: str) -> dict[str, int]:
        return self.per_device.setdefault(
            address, {"notifications": 0, "connects": 0, "drops": 0, "failed_connects": 0, "unassigned": 0}
        )


@dataclass
class Collector:
    """Records ``targets`` into ``spool``; see the module docstring."""

    spool: Spool
    targets: list[DeviceTarget]
    #: (device address, receive time ms) -> the subject assigned then, or None
    resolve: Callable[[str, int], str | None] | None = None
    backend: type[BaseBleakClient] | None = None
    clock: Callable[[], int] = wall_clock_ms
    commit_interval_s: float = 0.05
    commit_max: int = 2000
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    connect_timeout_s: float = 20.0
    rng: random.Random = field(default_factory=lambda: random.Random(2))  # noqa: S311 - jitter, not crypto
    stats: CollectorStats = field(default_factory=CollectorStats)

    def __post_init__(self) -> None:
        self._buffer: list[Notification] = []
        self._last_stamp: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        #: how logs name a device: its position among the targets, never its address (health data)
        self._labels = {t.address: f"device {i + 1}" for i, t in enumerate(self.targets)}

    async def run(self, stop: asyncio.Event) -> CollectorStats:
        """Record every target until ``stop`` is set; then commit what is buffered."""
        committer = asyncio.create_task(self._commit_loop(stop))
        try:
            await asyncio.gather(*(self._session(t, stop) for t in self.targets))
        finally:
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committer
            self.commit()
        return self.stats

    # ------------------------------------------------------------------ spooling

    def _on_notify(self, target: DeviceTarget, kind: str, data: bytearray) -> None:
        now = self.clock()
        stamp = max(now, self._last_stamp.get(target.address, -1) + 1)
        self._last_stamp[target.address] = stamp
        subject = target.subject_id or (self.resolve(target.address, stamp) if self.resolve else None)
        if subject is None:
            self.stats.unassigned += 1
            self.stats.device(target.address)["unassigned"] += 1
            return
        self._buffer.append(Notification(target.address, subject, kind, stamp, bytes(data)))
        self.stats.notifications += 1
        self.stats.device(target.address)["notifications"] += 1
        if len(self._buffer) >= self.commit_max:
            self.commit()

    def commit(self) -> None:
        """Commit buffered notifications to the spool (they now count as received)."""
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            self.spool.append(batch)
            self.stats.spooled += len(batch)
        except SpoolFullError:
            self.stats.rejected_spool_full += len(batch)
            log.error("the spool is full; %d notifications rejected", len(batch))

    async def _commit_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.commit_interval_s)
            self.commit()

    # ------------------------------------------------------------------ one device

    def _backoff_s(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** min(attempt, 20)))

    async def _session(self, target: DeviceTarget, stop: asyncio.Event) -> None:
        attempt = 0
        dev = self.stats.device(target.address)
        while not stop.is_set():
            lost = asyncio.Event()
            client = BleakClient(
                target.address,
                disconnected_callback=lambda _c, ev=lost: ev.set(),  # type: ignore[misc]
                timeout=self.connect_timeout_s,
                backend=self.backend,
            )
            try:
                await client.connect()
                kind = await self._subscribe(client, target)
                self.stats.connects += 1
                dev["connects"] += 1
                if attempt or dev["connects"] > 1:
                    log.info(
                        "%s (%s) reconnected after %d failed attempt(s)", self._labels[target.address], kind, attempt
                    )
                attempt = 0
                waiters = [asyncio.create_task(lost.wait()), asyncio.create_task(stop.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                if lost.is_set():
                    self.stats.drops += 1
                    dev["drops"] += 1
                    self.commit()
                if stop.is_set():
                    await client.disconnect()
                    return
                log.warning("%s: link lost; reconnecting", self._labels[target.address])
            except (BleakError, TimeoutError, OSError, DecodeError) as exc:
                self.stats.failed_connects += 1
                dev["failed_connects"] += 1
                level = logging.WARNING if math.log10(attempt + 1).is_integer() else logging.INFO  # 1, 10, 100..
                # the exception's text can carry the address or payload bytes: its type only
                label = self._labels[target.address]
                log.log(level, "%s: connection attempt %d failed (%s)", label, attempt + 1, type(exc).__name__)
                with contextlib.suppress(BleakError, TimeoutError, OSError):
                    await client.disconnect()
            delay = self._backoff_s(attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def _subscribe(self, client: BleakClient, target: DeviceTarget) -> str:
        services = client.services
        if services.get_service(HEART_RATE_SERVICE_UUID) is not None:
            kind, char = "strap", HEART_RATE_MEASUREMENT_UUID
            if services.get_characteristic(BODY_SENSOR_LOCATION_UUID) is not None:
                where = decode_body_sensor_location(await client.read_gatt_char(BODY_SENSOR_LOCATION_UUID))
                log.info("%s: heart-rate sensor worn at %s", self._labels[target.address], where)
        elif services.get_service(BED_SERVICE_UUID) is not None:
            kind, char = "bed", BED_FRAME_UUID
            await client.write_gatt_char(BED_CLOCK_UUID, encode_clock(self.clock()), response=True)
        else:
            raise BleakError(f"{target.address} offers neither the Heart Rate Service nor the Bed Sensor service")
        self.kinds[target.address] = kind

        def on_notify(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            self._on_notify(target, kind, data)

        await client.start_notify(char, on_notify)
        return kind


async def scan(timeout_s: float = 5.0, backend: type[BaseBleakScanner] | None = None) -> list[dict[str, Any]]:
    """Nearby BLE devices, strongest first, with the kind sleepstack would record them as."""
    kwargs: dict[str, Any] = {} if backend is None else {"backend": backend}
    found = await BleakScanner.discover(timeout_s, return_adv=True, **kwargs)
    out = []
    for device, adv in found.values():
        uuids = {u.lower() for u in adv.service_uuids}
        kind = "strap" if HEART_RATE_SERVICE_UUID in uuids else "bed" if BED_SERVICE_UUID in uuids else None
        out.append({"address": device.address, "name": device.name or adv.local_name, "rssi": adv.rssi, "kind": kind})
    return sorted(out, key=lambda d: -int(d["rssi"]))
