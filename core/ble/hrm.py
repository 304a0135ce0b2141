"""Bluetooth SIG Heart Rate Service: Heart Rate Measurement (0x2A37) and Body Sensor
Location (0x2A38), decoded and encoded.

Layout of a Heart Rate Measurement notification (Heart Rate Service 1.0 and the GATT
Specification Supplement, section "Heart Rate Measurement"), little-endian:

======  =====  ==============================================================
offset  bytes  field
======  =====  ==============================================================
0       1      flags: bit 0 heart-rate format (0 = uint8, 1 = uint16);
               bits 1-2 sensor contact status (bit 2 = feature supported,
               bit 1 = contact detected); bit 3 energy expended present;
               bit 4 RR-interval(s) present; bits 5-7 reserved
1       1 | 2  heart rate, beats/min
..      2      energy expended, kJ (uint16), when flag bit 3
..      2 x n  RR intervals, uint16 each in units of 1/1024 s, when flag bit 4;
               every remaining pair of bytes is one interval, oldest first
======  =====  ==============================================================

RR intervals are reported here in milliseconds: ``ms = raw * 1000 / 1024`` (exact in
binary floating point, since 1000/1024 = 125/128).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from core.errors import DecodeError

__all__ = [
    "BODY_SENSOR_LOCATION_UUID",
    "HEART_RATE_MEASUREMENT_UUID",
    "HEART_RATE_SERVICE_UUID",
    "HeartRateMeasurement",
    "decode_body_sensor_location",
    "decode_hrm",
    "encode_hrm",
    "rr_ms_from_raw",
    "rr_raw_from_ms",
]

HEART_RATE_SERVICE_UUID: Final = "0000180d-0000-1000-8000-00805f9b34fb"
HEART_RATE_MEASUREMENT_UUID: Final = "00002a37-0000-1000-8000-00805f9b34fb"
BODY_SENSOR_LOCATION_UUID: Final = "00002a38-0000-1000-8000-00805f9b34fb"

_HR16: Final = 0x01
_CONTACT_DETECTED: Final = 0x02
_CONTACT_SUPPORTED: Final = 0x04
_ENERGY: Final = 0x08
_RR: Final = 0x10
_WHAT: Final = "0x2A37"

#: Body Sensor Location (0x2A38) values, GATT Specification Supplement.
_LOCATIONS: Final = ("other", "chest", "wrist", "finger", "hand", "ear lobe", "foot")


def rr_ms_from_raw(raw: int) -> float:
    """RR interval in ms from its 1/1024-s wire units."""
    return raw * 1000 / 1024


def rr_raw_from_ms(ms: float) -> int:
    """Nearest 1/1024-s wire units of an RR interval in ms."""
    return round(ms * 1024 / 1000)


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One decoded 0x2A37 notification.

    ``sensor_contact`` is ``None`` when the device does not support contact detection.
    ``hr_uint16`` records the wire format of the heart rate, so that encoding a decoded
    notification gives back the same bytes.
    """

    hr_bpm: int
    rr_ms: tuple[float, ...] = ()
    sensor_contact: bool | None = None
    energy_kj: int | None = None
    hr_uint16: bool = False

    def as_json(self) -> dict[str, object]:
        """The ``sleepstack ble decode-hrm`` view of the measurement."""
        return {
            "hr_bpm": self.hr_bpm,
            "rr_ms": list(self.rr_ms),
            "sensor_contact": self.sensor_contact,
            "energy_kj": self.energy_kj,
        }


def decode_hrm(payload: bytes | bytearray | memoryview) -> HeartRateMeasurement:
    """Decode a Heart Rate Measurement; raises :class:`DecodeError` naming what is wrong.

    Rejects zero-length payloads, payloads shorter than their flags promise (heart rate,
    energy expended, RR present but absent) and an odd number of RR bytes. Values are
    decoded as sent: a heart rate or RR of 0 is the caller's to flag (see
    :func:`core.ble.device_records.strap_sample`).
    """
    data = bytes(payload)
    if not data:
        raise DecodeError(_WHAT, "empty notification", data)
    flags = data[0]
    pos = 1
    hr_size = 2 if flags & _HR16 else 1
    if len(data) < pos + hr_size:
        raise DecodeError(
            _WHAT, f"flags 0x{flags:02x} promise a {8 * hr_size}-bit heart rate, got {len(data)} bytes", data
        )
    hr = data[pos] if hr_size == 1 else struct.unpack_from("<H", data, pos)[0]
    pos += hr_size
    energy: int | None = None
    if flags & _ENERGY:
        if len(data) < pos + 2:
            raise DecodeError(_WHAT, f"flags 0x{flags:02x} promise energy expended at byte {pos}, payload ends", data)
        energy = struct.unpack_from("<H", data, pos)[0]
        pos += 2
    rest = len(data) - pos
    rr: tuple[float, ...] = ()
    if flags & _RR:
        if rest == 0:
            raise DecodeError(_WHAT, f"flags 0x{flags:02x} promise RR intervals, none present", data)
        if rest % 2:
            raise DecodeError(_WHAT, f"{rest} RR bytes is not a whole number of uint16 intervals", data)
        rr = tuple(rr_ms_from_raw(v) for v in struct.unpack_from(f"<{rest // 2}H", data, pos))
    elif rest:
        raise DecodeError(_WHAT, f"{rest} trailing bytes after the fields flags 0x{flags:02x} announce", data)
    contact = bool(flags & _CONTACT_DETECTED) if flags & _CONTACT_SUPPORTED else None
    return HeartRateMeasurement(
        hr_bpm=hr,
        rr_ms=rr,
        sensor_contact=contact,
        energy_kj=energy,
        hr_uint16=bool(flags & _HR16),
    )


def encode_hrm(m: HeartRateMeasurement) -> bytes:
    """Encode a measurement as a 0x2A37 notification (for tests, replays and the simulator).

    The heart rate is sent as uint16 when ``hr_uint16`` is set or it exceeds 255. RR values
    are rounded to 1/1024 s; raises ``ValueError`` for values that do not fit the format.
    """
    wide = m.hr_uint16 or m.hr_bpm > 255
    if not 0 <= m.hr_bpm <= 0xFFFF:
        raise ValueError(f"hr_bpm {m.hr_bpm} does not fit uint16")
    flags = _HR16 if wide else 0
    if m.sensor_contact is not None:
        flags |= _CONTACT_SUPPORTED | (_CONTACT_DETECTED if m.sensor_contact else 0)
    out = bytearray()
    out += struct.pack("<H", m.hr_bpm) if wide else bytes([m.hr_bpm])
    if m.energy_kj is not None:
        if not 0 <= m.energy_kj <= 0xFFFF:
            raise ValueError(f"energy_kj {m.energy_kj} does not fit uint16")
        flags |= _ENERGY
        out += struct.pack("<H", m.energy_kj)
    if m.rr_ms:
        raw = [rr_raw_from_ms(v) for v in m.rr_ms]
        if not all(0 <= v <= 0xFFFF for v in raw):
            raise ValueError(f"RR intervals {m.rr_ms!r} do not fit uint16 1/1024-s units")
        flags |= _RR
        out += struct.pack(f"<{len(raw)}H", *raw)
    return bytes([flags]) + bytes(out)


def decode_body_sensor_location(payload: bytes | bytearray | memoryview) -> str:
    """Body Sensor Location (0x2A38): one byte, e.g. ``b"\\x01"`` -> ``"chest"``."""
    data = bytes(payload)
    if len(data) != 1:
        raise DecodeError("0x2A38", f"expected 1 byte, got {len(data)}", data)
    if data[0] >= len(_LOCATIONS):
        return f"reserved ({data[0]})"
    return _LOCATIONS[data[0]]
