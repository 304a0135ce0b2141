"""Device health over BLE: the Battery Service, a strap's contact bits, and the status record.

* Battery Service (Bluetooth SIG, 0x180F) with its Battery Level characteristic (0x2A19):
  one unsigned byte, the charge in percent (0-100). It may be read, and a device may
  also notify it when it changes. Values above 100 are out of the specification and
  rejected (:class:`~core.errors.DecodeError`).
* A Heart Rate Measurement's flags (0x2A37, bits 1-2) say whether the strap is on the
  skin: :func:`hrm_contact` reads them from the first byte without decoding the rest, so
  the collector can keep a strap's wear state per notification at no cost.
* The collector's periodic :class:`StatusSnapshot` of one device (link, battery, wear, the
  number of measurement notifications since the previous snapshot) travels through the
  spool as a 17-byte payload (:func:`encode_status` / :func:`decode_status`, little-endian)
  and becomes a :class:`~core.contract.DeviceStatus` record (:func:`status_record`).

Pure: no I/O. Times are milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from core.contract import DeviceStatus
from core.errors import DecodeError

__all__ = [
    "BATTERY_LEVEL_UUID",
    "BATTERY_SERVICE_UUID",
    "StatusSnapshot",
    "decode_battery_level",
    "decode_status",
    "encode_status",
    "hrm_contact",
    "status_record",
]

BATTERY_SERVICE_UUID: Final = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_UUID: Final = "00002a19-0000-1000-8000-00805f9b34fb"

_CONTACT_SUPPORTED: Final = 0x04
_CONTACT_DETECTED: Final = 0x02
# version, flags, kind, battery, rssi, notifications, last notification ms
_STATUS: Final = struct.Struct("<BBBBbIq")
_VERSION: Final = 1
_F_CONNECTED, _F_BATTERY, _F_WORN_KNOWN, _F_WORN, _F_RSSI, _F_LAST = (1, 2, 4, 8, 16, 32)
_KINDS: Final = ("strap", "bed")


def decode_battery_level(payload: bytes | bytearray | memoryview) -> int:
    """Battery Level (0x2A19): percent, 0-100."""
    data = bytes(payload)
    if len(data) != 1:
        raise DecodeError("0x2A19", f"battery level is 1 byte, got {len(data)}", data)
    if data[0] > 100:
        raise DecodeError("0x2A19", f"battery level {data[0]} % is over 100", data)
    return data[0]


def hrm_contact(payload: bytes | bytearray | memoryview) -> bool | None:
    """A Heart Rate Measurement's sensor contact (None: the strap does not report it, or no flags)."""
    if not payload:
        return None
    flags = payload[0]
    return bool(flags & _CONTACT_DETECTED) if flags & _CONTACT_SUPPORTED else None


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """One device's health at a moment, as the collector keeps it."""

    device_kind: str  # strap | bed
    connected: bool
    notifications: int  # measurement notifications since the previous snapshot
    last_notification_ms: int | None = None
    battery_pct: int | None = None
    worn: bool | None = None
    rssi_dbm: int | None = None


def encode_status(s: StatusSnapshot) -> bytes:
    """The spool payload of a snapshot."""
    flags = (
        (_F_CONNECTED if s.connected else 0)
        | (_F_BATTERY if s.battery_pct is not None else 0)
        | (_F_WORN_KNOWN if s.worn is not None else 0)
        | (_F_WORN if s.worn else 0)
        | (_F_RSSI if s.rssi_dbm is not None else 0)
        | (_F_LAST if s.last_notification_ms is not None else 0)
    )
    return _STATUS.pack(
        _VERSION,
        flags,
        _KINDS.index(s.device_kind),
        s.battery_pct or 0,
        s.rssi_dbm or 0,
        min(s.notifications, 2**32 - 1),
        s.last_notification_ms or 0,
    )


def decode_status(payload: bytes | bytearray | memoryview) -> StatusSnapshot:
    """The snapshot of a spool payload; :class:`DecodeError` naming what is wrong."""
    data = bytes(payload)
    if len(data) != _STATUS.size:
        raise DecodeError("device status", f"payload is {len(data)} bytes, expected {_STATUS.size}", data)
    version, flags, kind, battery, rssi, notes, last = _STATUS.unpack(data)
    if version != _VERSION:
        raise DecodeError("device status", f"payload version {version} is not {_VERSION}", data)
    if kind >= len(_KINDS):
        raise DecodeError("device status", f"device kind {kind} is unknown", data)
    return StatusSnapshot(
        device_kind=_KINDS[kind],
        connected=bool(flags & _F_CONNECTED),
        notifications=notes,
        last_notification_ms=last if flags & _F_LAST else None,
        battery_pct=battery if flags & _F_BATTERY else None,
        worn=bool(flags & _F_WORN) if flags & _F_WORN_KNOWN else None,
        rssi_dbm=rssi if flags & _F_RSSI else None,
    )


def status_record(s: StatusSnapshot, *, device_id: str, subject_id: str, receive_ms: int) -> DeviceStatus:
    """The contract record of a snapshot taken at ``receive_ms`` (collector clock)."""
    return DeviceStatus(
        device_id=device_id,
        subject_id=subject_id,
        device_time_ms=receive_ms,
        event_time_ms=receive_ms,
        ingest_time_ms=receive_ms,
        device_kind=s.device_kind,
        connected=s.connected,
        notifications=s.notifications,
        last_notification_ms=s.last_notification_ms,
        battery_pct=s.battery_pct,
        worn=s.worn,
        rssi_dbm=s.rssi_dbm,
    )
