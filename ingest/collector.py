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

Device health: on connect the collector reads the standard Battery Service (0x180F,
Battery Level 0x2A19) where the device has one, and subscribes to its notifications
where offered (else reads it again every ``battery_read_ms``). It keeps each device's link
state, last notification, notification count and, for a strap, whether it is worn (the
Heart Rate Measurement's contact bits), and spools a ``status`` notification per device on
connect, on link loss and every ``status_interval_ms`` of collector clock while it runs,
connected or not: a device that never answers still reports as silent. These become
:class:`~core.contract.DeviceStatus` records. Signal strength (RSSI) is left null: bleak
gives it only in scan advertisements, not on a connected link.

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
from core.ble.device_status import (
    BATTERY_LEVEL_UUID,
    BATTERY_SERVICE_UUID,
    StatusSnapshot,
    decode_battery_level,
    encode_status,
    hrm_contact,
)
from core.ble.hrm import (
    BODY_SENSOR_LOCATION_UUID,
    HEART_RATE_MEASUREMENT_UUID,
    HEART_RATE_SERVICE_UUID,
    decode_body_sensor_location,
)
from core.contract.records import MIN_TIME_MS
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
    #: strap or bed, where known before connecting (the registry, a recording): lets a
    #: device that never connects report as silent
    kind: str | None = None


@dataclass
class _Health:
    """What the collector knows of one device's health between status records."""

    kind: str | None
    connected: bool = False
    notifications: int = 0
    last_notification_ms: int | None = None
    battery_pct: int | None = None
    battery_notifies: bool = False
    worn: bool | None = None
    next_status_ms: int | None = None
    next_battery_ms: int | None = None
    last_stamp: int = -1
    client: BleakClient | None = None


@dataclass
class CollectorStats:
    notifications: int = 0
    spooled: int = 0
    rejected_spool_full: int = 0
    connects: int = 0
    drops: int = 0
    failed_connects: int = 0
    unassigned: int = 0
    statuses: int = 0
    battery_reads: int = 0
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
    #: collector-clock ms between a device's status records (and the first after a start)
    status_interval_ms: int = 60_000
    #: collector-clock ms between Battery Level reads of a device that does not notify it
    battery_read_ms: int = 300_000
    #: real seconds between checks for due status records and battery reads
    health_poll_s: float = 5.0
    rng: random.Random = field(default_factory=lambda: random.Random(2))  # noqa: S311 - jitter, not crypto
    stats: CollectorStats = field(default_factory=CollectorStats)

    def __post_init__(self) -> None:
        self._buffer: list[Notification] = []
        self._last_stamp: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        self._health = {t.address: _Health(t.kind) for t in self.targets}
        self._next_due: int | None = None
        #: how logs name a device: its position among the targets, never its address (health data)
        self._labels = {t.address: f"device {i + 1}" for i, t in enumerate(self.targets)}

    async def run(self, stop: asyncio.Event) -> CollectorStats:
        """Record every target until ``stop`` is set; then commit what is buffered."""
        committer = asyncio.create_task(self._commit_loop(stop))
        checker = asyncio.create_task(self._health_loop(stop))
        try:
            await asyncio.gather(*(self._session(t, stop) for t in self.targets))
        finally:
            for task in (committer, checker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.commit()
        return self.stats

    # ------------------------------------------------------------------ spooling

    def _subject(self, target: DeviceTarget, t_ms: int) -> str | None:
        return target.subject_id or (self.resolve(target.address, t_ms) if self.resolve else None)

    def _on_notify(self, target: DeviceTarget, kind: str, data: bytearray) -> None:
        now = self.clock()
        stamp = max(now, self._last_stamp.get(target.address, -1) + 1)
        self._last_stamp[target.address] = stamp
        health = self._health[target.address]
        health.notifications += 1
        health.last_notification_ms = stamp
        if kind == "strap":
            health.worn = hrm_contact(data)
        subject = self._subject(target, stamp)
        if subject is None:
            self.stats.unassigned += 1
            self.stats.device(target.address)["unassigned"] += 1
        else:
            self._buffer.append(Notification(target.address, subject, kind, stamp, bytes(data)))
            self.stats.notifications += 1
            self.stats.device(target.address)["notifications"] += 1
        if self._next_due is not None and stamp >= self._next_due:
            self._statuses_due(stamp)
        if len(self._buffer) >= self.commit_max:
            self.commit()

    # ------------------------------------------------------------------ device health

    def _status(self, target: DeviceTarget, now: int) -> None:
        """Spool the device's status now (if its kind is known and it is assigned now)."""
        health = self._health[target.address]
        health.next_status_ms = now + self.status_interval_ms
        self._next_due = min(h.next_status_ms for h in self._health.values() if h.next_status_ms is not None)
        if health.kind is None or now < MIN_TIME_MS:  # a replay's clock before its first notification
            return
        stamp = max(now, health.last_stamp + 1)
        health.last_stamp = stamp
        snapshot = StatusSnapshot(
            device_kind=health.kind,
            connected=health.connected,
            notifications=health.notifications,
            last_notification_ms=health.last_notification_ms,
            battery_pct=health.battery_pct,
            worn=health.worn if health.kind == "strap" else None,
        )
        health.notifications = 0
        subject = self._subject(target, stamp)
        if subject is None:
            return
        self._buffer.append(Notification(target.address, subject, "status", stamp, encode_status(snapshot)))
        self.stats.statuses += 1

    def _statuses_due(self, now: int) -> None:
        for t in self.targets:
            due = self._health[t.address].next_status_ms
            if due is None or now >= due:
                self._status(t, now)

    async def _health_loop(self, stop: asyncio.Event) -> None:
        """Status records of devices that send nothing, and battery reads of devices that do not notify it."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.health_poll_s)
            if stop.is_set():
                return
            now = self.clock()
            self._statuses_due(now)
            for t in self.targets:
                h = self._health[t.address]
                if h.connected and h.client is not None and h.next_battery_ms is not None and now >= h.next_battery_ms:
                    await self._read_battery(t, h.client)

    async def _read_battery(self, target: DeviceTarget, client: BleakClient) -> None:
        health = self._health[target.address]
        health.next_battery_ms = self.clock() + self.battery_read_ms
        try:
            health.battery_pct = decode_battery_level(await client.read_gatt_char(BATTERY_LEVEL_UUID))
            self.stats.battery_reads += 1
        except DecodeError as exc:
            log.warning("%s: battery level refused (%s)", self._labels[target.address], exc.reason)
        except (BleakError, TimeoutError, OSError) as exc:
            log.info("%s: battery level not read (%s)", self._labels[target.address], type(exc).__name__)

    async def _watch_battery(self, client: BleakClient, target: DeviceTarget) -> None:
        """Read the Battery Level on connect; subscribe to it where the device notifies it."""
        health = self._health[target.address]
        health.client = client
        char = client.services.get_characteristic(BATTERY_LEVEL_UUID)
        if client.services.get_service(BATTERY_SERVICE_UUID) is None or char is None:
            health.next_battery_ms = None
            return
        await self._read_battery(target, client)
        if "notify" in char.properties:

            def on_battery(_char: BleakGATTCharacteristic, data: bytearray) -> None:
                with contextlib.suppress(DecodeError):
                    health.battery_pct = decode_battery_level(data)

            await client.start_notify(BATTERY_LEVEL_UUID, on_battery)
            health.battery_notifies = True
            health.next_battery_ms = None

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
                health = self._health[target.address]
                health.kind, health.connected = kind, True
                await self._watch_battery(client, target)
                self._status(target, self.clock())
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
                if lost.is_set() or stop.is_set():
                    self._health[target.address].connected = False
                    self._health[target.address].client = None
                if lost.is_set():
                    self.stats.drops += 1
                    dev["drops"] += 1
                    self._status(target, self.clock())
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
