"""A bleak backend that plays recorded notification streams: tests, demo, replays.

``BleakClient(address, backend=world.client_backend())`` runs bleak's real client code
(service resolution, ``start_notify`` callback wrapping, disconnect callbacks) over
:class:`FakeBleakClient`, which serves a :class:`FakePeripheral` from a
:class:`FakeBleWorld` instead of a radio. Likewise ``BleakScanner(backend=
world.scanner_backend())`` sees the world's peripherals advertising.

A peripheral plays its script of ``(t_ms, payload)`` notifications in order, as fast as
the event loop allows (``speed=None``) or paced at ``speed`` x real time. Played as fast as
possible, the world's connected peripherals keep in step: none delivers a notification
more than :data:`LOCKSTEP_MS` of recording time ahead of another's next one, so the
devices of one room play their night together, as they would in real time. A
:class:`Drop` in the script disconnects the link at that point in the recording: the
notifications stamped in the following ``down_ms`` are lost (the sensor sent them to
nobody), the next ``refuse`` connection attempts fail, and playback resumes once a client
reconnects and re-subscribes. Before each notification the world clock is set to its
stamp, so a collector using :meth:`FakeBleWorld.clock_ms` stamps receive times in
recording time. When the script is exhausted the peripheral disconnects and disappears.

A peripheral with a ``battery_pct`` also offers the Battery Service (0x180F): its Battery
Level (0x2A19) starts there at the script's first notification and drains by
``battery_drain_pct_h`` per hour of recording time; it can be read, and it notifies each
whole-percent change to a subscribed client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from core.ble.bed_profile import (
    BED_CLOCK_UUID,
    BED_FRAME_UUID,
    BED_INFO_UUID,
    BED_SERVICE_UUID,
    decode_bed_frame,
    encode_bed_frame,
    encode_sensor_info,
)
from core.ble.device_status import BATTERY_LEVEL_UUID, BATTERY_SERVICE_UUID
from core.ble.hrm import BODY_SENSOR_LOCATION_UUID, HEART_RATE_MEASUREMENT_UUID, HEART_RATE_SERVICE_UUID
from core.errors import DatasetError

__all__ = [
    "Drop",
    "FakeBleWorld",
    "FakeBleakClient",
    "FakeBleakScanner",
    "FakePeripheral",
    "load_recording",
    "recording_lines",
]


@dataclass(frozen=True, slots=True)
class Drop:
    """Link loss at this point of the recording, for ``down_ms`` of recording time."""

    down_ms: int
    refuse: int = 1  # connection attempts refused before the sensor is back


ScriptItem = tuple[int, bytes] | Drop
#: How far (recording ms) a peripheral played as fast as possible may run ahead of the others.
LOCKSTEP_MS: Final = 1_000


@dataclass
class FakePeripheral:
    """A recorded sensor: ``kind`` is ``"strap"`` (Heart Rate Service) or ``"bed"``."""

    address: str
    kind: str
    script: list[ScriptItem]
    name: str = ""
    rssi: int = -60
    body_sensor_location: int = 1  # chest
    fs_hz: int = 100
    samples_per_frame: int = 50
    speed: float | None = None
    #: the subject who wore it, when the recording says (``simulate --recording`` does)
    subject_id: str | None = None
    #: Battery Service: the level (%) at the first notification; None: no Battery Service
    battery_pct: float | None = None
    #: percent the battery loses per hour of recording time
    battery_drain_pct_h: float = 0.0
    # playback state
    cursor: int = 0
    refuse_left: int = 0
    delivered: int = 0
    lost: int = 0
    connects: int = 0
    writes: list[tuple[str, bytes]] = field(default_factory=list)
    client: FakeBleakClient | None = None
    finished: bool = False
    #: recording time of the last notification played
    played_ms: int | None = None

    @property
    def notify_uuid(self) -> str:
        return HEART_RATE_MEASUREMENT_UUID if self.kind == "strap" else BED_FRAME_UUID

    def services(self) -> BleakGATTServiceCollection:
        coll = BleakGATTServiceCollection()
        handles = itertools.count(1)
        if self.kind == "strap":
            layout = {
                HEART_RATE_SERVICE_UUID: [
                    (HEART_RATE_MEASUREMENT_UUID, ["notify"]),
                    (BODY_SENSOR_LOCATION_UUID, ["read"]),
                ]
            }
        else:
            layout = {
                BED_SERVICE_UUID: [
                    (BED_FRAME_UUID, ["notify"]),
                    (BED_INFO_UUID, ["read"]),
                    (BED_CLOCK_UUID, ["write"]),
                ]
            }
        if self.battery_pct is not None:
            layout[BATTERY_SERVICE_UUID] = [(BATTERY_LEVEL_UUID, ["read", "notify"])]
        for svc_uuid, chars in layout.items():
            svc = BleakGATTService(None, next(handles), svc_uuid)
            coll.add_service(svc)
            for uuid, props in chars:
                coll.add_characteristic(BleakGATTCharacteristic(None, next(handles), uuid, props, lambda: 244, svc))  # type: ignore[arg-type]
        return coll

    def read(self, uuid: str) -> bytes:
        if uuid == BODY_SENSOR_LOCATION_UUID:
            return bytes([self.body_sensor_location])
        if uuid == BED_INFO_UUID:
            return encode_sensor_info(self.fs_hz, self.samples_per_frame)
        level = self.battery_at(self.played_ms)
        if uuid == BATTERY_LEVEL_UUID and level is not None:
            return bytes([level])
        raise BleakError(f"characteristic {uuid} is not readable")

    def battery_at(self, t_ms: int | None) -> int | None:
        """The Battery Level (whole %) at recording time ``t_ms`` (None: no Battery Service)."""
        if self.battery_pct is None:
            return None
        t0 = _first_time(self.script, 0)
        hours = max(0, (t_ms if t_ms is not None else t0) - t0) / 3_600_000
        return max(0, min(100, int(self.battery_pct - self.battery_drain_pct_h * hours)))


class FakeBleWorld:
    """The peripherals in radio range, and the recording-time clock."""

    def __init__(self, peripherals: Iterable[FakePeripheral] = ()) -> None:
        self.peripherals: dict[str, FakePeripheral] = {}
        self._clock_ms = 0
        self._next_ms: dict[str, int] = {}  # fast playback: each playing peripheral's next notification
        for p in peripherals:
            self.add(p)

    def add(self, p: FakePeripheral) -> None:
        """Put ``p`` in range; before any notification the clock reads the earliest recording time."""
        self.peripherals[p.address] = p
        first = _first_time(p.script, p.cursor)
        if first and (self._clock_ms == 0 or first < self._clock_ms):
            self._clock_ms = first

    def clock_ms(self) -> int:
        """Recording time of the notification being delivered (ms since epoch)."""
        return self._clock_ms

    @property
    def all_finished(self) -> bool:
        return all(p.finished for p in self.peripherals.values())

    def client_backend(self) -> type[FakeBleakClient]:
        return type("FakeBleakClient", (FakeBleakClient,), {"world": self})

    def scanner_backend(self) -> type[FakeBleakScanner]:
        return type("FakeBleakScanner", (FakeBleakScanner,), {"world": self})

    def set_clock(self, t_ms: int) -> None:
        self._clock_ms = t_ms

    async def wait_turn(self, address: str, t_ms: int) -> None:
        """Fast playback: wait until no other playing peripheral is more than :data:`LOCKSTEP_MS` behind ``t_ms``."""
        self._next_ms[address] = t_ms
        while t_ms > min(self._next_ms.values()) + LOCKSTEP_MS:
            await asyncio.sleep(0)

    def hold(self, address: str, t_ms: int) -> None:
        """A dropped peripheral resumes at ``t_ms``: the others wait there until it is reconnected."""
        self._next_ms[address] = t_ms

    def leave(self, address: str) -> None:
        """A peripheral stopped playing (link lost, finished, unsubscribed): nobody waits for it."""
        self._next_ms.pop(address, None)


class FakeBleakClient(BaseBleakClient):
    """bleak client backend over a :class:`FakeBleWorld` (bound by ``world.client_backend()``)."""

    world: FakeBleWorld

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self._peripheral: FakePeripheral | None = None
        self._playback: asyncio.Task[None] | None = None
        self._battery: NotifyCallback | None = None
        self._battery_sent: int | None = None

    @property
    def name(self) -> str:
        return self._peripheral.name if self._peripheral else self.address

    @property
    def mtu_size(self) -> int:
        return 247

    @property
    def is_connected(self) -> bool:
        return self._peripheral is not None and self._peripheral.client is self

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        p = self.world.peripherals.get(self.address)
        if p is None or p.finished:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        if p.refuse_left > 0:
            p.refuse_left -= 1
            raise BleakError(f"{self.address}: connection attempt failed (device out of range)")
        if p.client is not None:
            raise BleakError(f"{self.address}: already connected to another central")
        p.client = self
        p.connects += 1
        self._peripheral = p
        self.services = p.services()

    async def disconnect(self) -> None:
        self._stop_playback()
        if self._peripheral is not None and self._peripheral.client is self:
            self._peripheral.client = None
        self._peripheral = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    def _require(self) -> FakePeripheral:
        if not self.is_connected or self._peripheral is None:
            raise BleakError("Not connected")
        return self._peripheral

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        return bytearray(self._require().read(characteristic.uuid))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        raise BleakError("descriptors are not recorded")

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        p = self._require()
        if "write" not in characteristic.properties:
            raise BleakError(f"characteristic {characteristic.uuid} is not writable")
        p.writes.append((characteristic.uuid, bytes(data)))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise BleakError("descriptors are not recorded")

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        p = self._require()
        if characteristic.uuid == BATTERY_LEVEL_UUID and p.battery_pct is not None:
            self._battery, self._battery_sent = callback, p.battery_at(p.played_ms)
            return
        if characteristic.uuid != p.notify_uuid:
            raise BleakError(f"characteristic {characteristic.uuid} does not notify")
        self._stop_playback()
        self._playback = asyncio.get_running_loop().create_task(self._play(p, callback))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._stop_playback()

    def _stop_playback(self) -> None:
        task, self._playback = self._playback, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _play(self, p: FakePeripheral, callback: NotifyCallback) -> None:
        dropped = False
        try:
            dropped = await self._play_script(p, callback)
        finally:
            if not dropped:
                self.world.leave(p.address)

    async def _play_script(self, p: FakePeripheral, callback: NotifyCallback) -> bool:
        """Play until the script ends (False) or a drop breaks the link (True)."""
        prev_t: int | None = None
        while p.cursor < len(p.script):
            item = p.script[p.cursor]
            p.cursor += 1
            if isinstance(item, Drop):
                self._drop(p, item, prev_t)
                return True
            t_ms, payload = item
            if p.speed:
                if prev_t is not None and t_ms > prev_t:
                    await asyncio.sleep((t_ms - prev_t) / 1000 / p.speed)
            else:
                await self.world.wait_turn(p.address, t_ms)
                if p.delivered % 32 == 0:
                    await asyncio.sleep(0)
            if not self.is_connected:
                p.cursor -= 1
                return False
            prev_t = t_ms
            self.world.set_clock(t_ms)
            p.played_ms = t_ms
            p.delivered += 1
            callback(bytearray(payload))
            if self._battery is not None:
                level = p.battery_at(t_ms)
                if level is not None and level != self._battery_sent:
                    self._battery_sent = level
                    self._battery(bytearray([level]))
        p.finished = True
        self._lose_link(p)
        return False

    def _drop(self, p: FakePeripheral, drop: Drop, prev_t: int | None) -> None:
        """Skip what the sensor sent while nobody listened, then break the link."""
        start = prev_t if prev_t is not None else _first_time(p.script, p.cursor)
        while p.cursor < len(p.script):
            nxt = p.script[p.cursor]
            if isinstance(nxt, Drop) or nxt[0] >= start + drop.down_ms:
                break
            p.cursor += 1
            p.lost += 1
        p.refuse_left = drop.refuse
        if p.cursor < len(p.script) and not p.speed:  # the others play on only up to when it is back
            self.world.hold(p.address, _first_time(p.script, p.cursor))
        self._lose_link(p)

    def _lose_link(self, p: FakePeripheral) -> None:
        if p.client is self:
            p.client = None
        self._peripheral = None
        self._playback = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()


def _first_time(script: list[ScriptItem], cursor: int) -> int:
    """The recording time of the first notification at or after ``cursor`` (0: none).

    Indexes instead of slicing: :meth:`FakePeripheral.battery_at` asks for every
    notification, and a slice copied the rest of the script each time (quadratic in a
    night's notifications: the demo cohort's collection took about 4 min instead of 20 s).
    """
    for i in range(cursor, len(script)):
        item = script[i]
        if not isinstance(item, Drop):
            return item[0]
    return 0


class FakeBleakScanner(BaseBleakScanner):
    """bleak scanner backend: every peripheral of the world advertises once per scan."""

    world: FakeBleWorld

    def __init__(self, detection_callback: Any, service_uuids: list[str] | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        for p in self.world.peripherals.values():
            if p.finished:
                continue
            svc = HEART_RATE_SERVICE_UUID if p.kind == "strap" else BED_SERVICE_UUID
            adv = AdvertisementData(p.name or None, {}, {}, [svc], None, p.rssi, ())
            if not self.is_allowed_uuid(adv.service_uuids):
                continue
            device = self.create_or_update_device(p.address, p.address, p.name or None, None, adv)
            self.call_detection_callbacks(device, adv)

    async def stop(self) -> None:
        return None


_KINDS = ("strap", "bed")


def _recording_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of the recording at ``path``."""
    if path.is_dir():
        raise DatasetError(str(path), "is a directory, not a recording file (JSON lines)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(str(path), "no such recording file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(str(path), f"cannot be read as UTF-8 text ({exc})") from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{n}", f"not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DatasetError(f"{path}:{n}", f"expected a JSON object, got {type(obj).__name__}")
        out.append((n, obj))
    return out


def _int(obj: dict[str, Any], key: str, where: str, *, minimum: int | None = None) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or (minimum is not None and v < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise DatasetError(where, f"{key!r} must be an integer{bound}, got {v!r}")
    return v


def load_recording(path: Path) -> FakePeripheral:
    """A peripheral from a JSON-lines recording.

    First line: ``{"address": ..., "kind": "strap"|"bed", "name": ..., "subject_id": ...}``
    (``subject_id`` optional: who wore the device; ``battery_pct`` and
    ``battery_drain_pct_h`` optional: its Battery Service); then one object
    per notification ``{"t_ms": ..., "hex": "..."}`` or link loss ``{"drop_ms": ...,
    "refuse": 1}``. A file that is not such a recording raises :class:`DatasetError`
    naming the file and line.
    """
    lines = _recording_lines(path)
    if not lines:
        raise DatasetError(str(path), "is empty; a recording starts with the device line")
    (n0, head), body = lines[0], lines[1:]
    where = f"{path}:{n0}"
    if not isinstance(head.get("address"), str) or not head["address"]:
        raise DatasetError(where, 'the first line must name the device: {"address": ..., "kind": "strap"|"bed"}')
    if head.get("kind") not in _KINDS:
        raise DatasetError(where, f"unknown device kind {head.get('kind')!r} (expected 'strap' or 'bed')")
    script: list[ScriptItem] = []
    for n, o in body:
        where = f"{path}:{n}"
        if "drop_ms" in o:
            script.append(
                Drop(_int(o, "drop_ms", where, minimum=0), _int({"refuse": 1, **o}, "refuse", where, minimum=0))
            )
            continue
        if "t_ms" not in o or "hex" not in o:
            raise DatasetError(where, 'expected a notification {"t_ms": ..., "hex": ...} or a drop {"drop_ms": ...}')
        try:
            payload = bytes.fromhex(str(o["hex"]))
        except ValueError:
            raise DatasetError(where, f"'hex' is not a hex string: {str(o['hex'])[:16]!r}") from None
        script.append((_int(o, "t_ms", where), payload))
    subject = head.get("subject_id")
    if subject is not None and (not isinstance(subject, str) or not subject):
        raise DatasetError(f"{path}:{n0}", f"'subject_id' must be a non-empty string, got {subject!r}")
    battery = head.get("battery_pct")
    drain = head.get("battery_drain_pct_h", 0.0)
    for key, v in (("battery_pct", battery), ("battery_drain_pct_h", drain)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100):
            raise DatasetError(f"{path}:{n0}", f"{key!r} must be a number from 0 to 100, got {v!r}")
    return FakePeripheral(
        address=head["address"],
        kind=head["kind"],
        script=script,
        name=str(head.get("name", "")),
        subject_id=subject,
        battery_pct=battery,
        battery_drain_pct_h=float(drain or 0.0),
    )


def rebased(p: FakePeripheral, shift_ms: int, *, after_ms: int | None = None) -> FakePeripheral:
    """``p`` with every time moved by ``shift_ms`` (bed frames' device times too), minus what was played.

    ``after_ms`` (in the shifted time): notifications at or before it are dropped, as is a
    link loss before the first one kept: a replay that was interrupted resumes there.
    """
    script: list[ScriptItem] = []
    for item in p.script:
        if isinstance(item, Drop):
            script.append(item)
            continue
        t_ms, payload = item
        if p.kind == "bed" and shift_ms:
            n = decode_bed_frame(payload)
            payload = encode_bed_frame(dataclasses.replace(n, device_time_ms=n.device_time_ms + shift_ms))
        if after_ms is not None and t_ms + shift_ms <= after_ms:
            script = []  # everything so far was played before the interruption
            continue
        script.append((t_ms + shift_ms, payload))
    return dataclasses.replace(p, script=script, cursor=0, writes=[], client=None, finished=False)


def recording_lines(p: FakePeripheral) -> Iterable[str]:
    """The JSON-lines form :func:`load_recording` reads."""
    head: dict[str, Any] = {"address": p.address, "kind": p.kind, "name": p.name}
    if p.subject_id:
        head["subject_id"] = p.subject_id
    if p.battery_pct is not None:
        head |= {"battery_pct": p.battery_pct, "battery_drain_pct_h": p.battery_drain_pct_h}
    yield json.dumps(head)
    for item in p.script:
        if isinstance(item, Drop):
            yield json.dumps({"drop_ms": item.down_ms, "refuse": item.refuse})
        else:
            yield json.dumps({"t_ms": item[0], "hex": item[1].hex()})
