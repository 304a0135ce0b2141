"""The sleepstack Bed Sensor BLE profile (v1): UUIDs, frame layout, decoder and encoder.

No Bluetooth SIG profile exists for under-mattress ballistocardiography, so sleepstack
defines one (documented in docs/operator.md, "Bed-sensor BLE profile"). A sensor exposes one
primary service with three characteristics:

==================  ======================================  ==========  =======================
name                UUID                                    properties  value
==================  ======================================  ==========  =======================
Bed Sensor service  ``5eed0001-51ee-4c0d-8b1e-d5e2b0c0ffee``  —           —
Sample frame        ``5eed0002-51ee-4c0d-8b1e-d5e2b0c0ffee``  notify      a frame (below)
Sensor info         ``5eed0003-51ee-4c0d-8b1e-d5e2b0c0ffee``  read        ``<B H B``: profile version,
                                                                        sample rate (Hz), samples
                                                                        per frame
Clock               ``5eed0004-51ee-4c0d-8b1e-d5e2b0c0ffee``  write       ``<Q``: UTC ms since epoch
==================  ======================================  ==========  =======================

The collector writes the Clock characteristic on every connection before subscribing, so
frame timestamps are UTC. A frame (one notification), little-endian:

======  =====  ===========================================================================
offset  bytes  field
======  =====  ===========================================================================
0       1      profile version (1)
1       1      flags: bit 0 = clock set since power-on (timestamps are UTC); others 0
2       2      sequence number, uint16, +1 per frame, wraps at 65536
4       8      device time of the first sample, uint64 ms (UTC once the clock is set)
12      2      sample rate, uint16 Hz
14      1      n, number of samples (1..255)
15      2 x n  samples, int16 ADC counts, oldest first
======  =====  ===========================================================================

A frame of n samples needs an ATT MTU of at least 18 + 2n bytes (n = 50 at 100 Hz: 118).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from core.errors import DecodeError

__all__ = [
    "BED_CLOCK_UUID",
    "BED_FRAME_UUID",
    "BED_INFO_UUID",
    "BED_SERVICE_UUID",
    "HEADER_BYTES",
    "PROFILE_VERSION",
    "BedNotification",
    "decode_bed_frame",
    "decode_sensor_info",
    "encode_bed_frame",
    "encode_clock",
    "encode_sensor_info",
]

BED_SERVICE_UUID: Final = "5eed0001-51ee-4c0d-8b1e-d5e2b0c0ffee"
BED_FRAME_UUID: Final = "5eed0002-51ee-4c0d-8b1e-d5e2b0c0ffee"
BED_INFO_UUID: Final = "5eed0003-51ee-4c0d-8b1e-d5e2b0c0ffee"
BED_CLOCK_UUID: Final = "5eed0004-51ee-4c0d-8b1e-d5e2b0c0ffee"

PROFILE_VERSION: Final = 1
_HEADER: Final = struct.Struct("<BBHQHB")
HEADER_BYTES: Final = _HEADER.size  # 15
_CLOCK_SET: Final = 0x01
_WHAT: Final = "bed frame"
_INFO: Final = struct.Struct("<BHB")


@dataclass(frozen=True, slots=True)
class BedNotification:
    """One decoded frame. ``samples``: shape (n,), int16 ADC counts at ``fs_hz``."""

    seq: int
    device_time_ms: int
    fs_hz: int
    samples: npt.NDArray[np.int16]
    clock_set: bool = True

    @property
    def end_time_ms(self) -> float:
        """Time just after the last sample (device clock, ms)."""
        return self.device_time_ms + 1000.0 * len(self.samples) / self.fs_hz

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BedNotification):
            return NotImplemented
        return (self.seq, self.device_time_ms, self.fs_hz, self.clock_set) == (
            other.seq,
            other.device_time_ms,
            other.fs_hz,
            other.clock_set,
        ) and np.array_equal(self.samples, other.samples)

    __hash__ = None  # type: ignore[assignment]  # holds an array


def decode_bed_frame(payload: bytes | bytearray | memoryview) -> BedNotification:
    """Decode one Sample-frame notification; raises :class:`DecodeError` naming the problem."""
    data = bytes(payload)
    if len(data) < HEADER_BYTES:
        raise DecodeError(_WHAT, f"{len(data)} bytes is shorter than the {HEADER_BYTES}-byte header", data)
    version, flags, seq, t_ms, fs, n = _HEADER.unpack_from(data)
    if version != PROFILE_VERSION:
        raise DecodeError(_WHAT, f"profile version {version} (this reader: {PROFILE_VERSION})", data)
    if flags & ~_CLOCK_SET:
        raise DecodeError(_WHAT, f"reserved flag bits set (0x{flags:02x})", data)
    if fs == 0:
        raise DecodeError(_WHAT, "sample rate 0 Hz", data)
    if n == 0:
        raise DecodeError(_WHAT, "frame holds no samples", data)
    if len(data) != HEADER_BYTES + 2 * n:
        raise DecodeError(_WHAT, f"header announces {n} samples ({HEADER_BYTES + 2 * n} bytes), got {len(data)}", data)
    samples = np.frombuffer(data, dtype="<i2", count=n, offset=HEADER_BYTES).astype(np.int16)
    return BedNotification(seq, t_ms, fs, samples, clock_set=bool(flags & _CLOCK_SET))


def encode_bed_frame(n: BedNotification) -> bytes:
    """Encode a frame (the sensor side: for tests, replays and the simulator)."""
    samples = np.asarray(n.samples)
    if not 1 <= len(samples) <= 255:
        raise ValueError(f"a frame carries 1..255 samples, not {len(samples)}")
    if not 1 <= n.fs_hz <= 0xFFFF or not 0 <= n.seq <= 0xFFFF or n.device_time_ms < 0:
        raise ValueError(f"header field out of range: {n!r}")
    header = _HEADER.pack(
        PROFILE_VERSION, _CLOCK_SET if n.clock_set else 0, n.seq, n.device_time_ms, n.fs_hz, len(samples)
    )
    return header + samples.astype("<i2").tobytes()


def encode_clock(utc_ms: int) -> bytes:
    """Value the collector writes to the Clock characteristic."""
    return struct.pack("<Q", utc_ms)


def encode_sensor_info(fs_hz: int, samples_per_frame: int) -> bytes:
    return _INFO.pack(PROFILE_VERSION, fs_hz, samples_per_frame)


def decode_sensor_info(payload: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(profile version, sample rate Hz, samples per frame) from the Sensor info value."""
    data = bytes(payload)
    if len(data) != _INFO.size:
        raise DecodeError("bed sensor info", f"expected {_INFO.size} bytes, got {len(data)}", data)
    version, fs, per = _INFO.unpack(data)
    return int(version), int(fs), int(per)
