"""Heart Rate Measurement (0x2A37), Body Sensor Location and the bed-sensor frame codecs."""

from __future__ import annotations

import contextlib
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ble.bed_profile import (
    HEADER_BYTES,
    BedNotification,
    decode_bed_frame,
    decode_sensor_info,
    encode_bed_frame,
    encode_sensor_info,
)
from core.ble.hrm import HeartRateMeasurement, decode_body_sensor_location, decode_hrm, encode_hrm
from core.errors import DecodeError
from sleepstack.cli import main

# ------------------------------------------------------------------ 0x2A37 worked examples


def test_uint8_hr_contact_detected_one_rr() -> None:
    # flags 0x16: uint8 HR, contact supported + detected, RR present; HR 72; RR 1024/1024 s
    m = decode_hrm(bytes.fromhex("1648" + "0004"))
    assert m == HeartRateMeasurement(hr_bpm=72, rr_ms=(1000.0,), sensor_contact=True)


def test_uint16_hr_energy_and_several_rr() -> None:
    payload = bytes([0x19]) + struct.pack("<HHHHH", 300, 13, 1000, 1024, 512)
    m = decode_hrm(payload)
    assert m.hr_bpm == 300
    assert m.hr_uint16
    assert m.energy_kj == 13
    assert m.rr_ms == (1000 * 1000 / 1024, 1000.0, 500.0)
    assert m.sensor_contact is None  # contact feature not supported


def test_contact_supported_but_not_detected() -> None:
    assert decode_hrm(bytes([0x04, 0])).sensor_contact is False
    assert decode_hrm(bytes([0x02, 70])).sensor_contact is None  # detected bit without support bit


def test_reserved_flag_bits_are_ignored() -> None:
    assert decode_hrm(bytes([0xE0, 61])).hr_bpm == 61


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"", "empty"),
        (bytes([0x00]), "8-bit heart rate"),
        (bytes([0x01, 60]), "16-bit heart rate"),
        (bytes([0x08, 60, 1]), "energy expended"),
        (bytes([0x10, 60]), "promise RR"),
        (bytes([0x10, 60, 1, 2, 3]), "whole number"),
        (bytes([0x00, 60, 1]), "trailing"),
    ],
)
def test_malformed_notifications_raise_decode_error_with_hex(payload: bytes, needle: str) -> None:
    with pytest.raises(DecodeError, match=needle) as err:
        decode_hrm(payload)
    assert err.value.payload_hex == payload.hex()
    assert err.value.what == "0x2A37"


def test_body_sensor_location() -> None:
    assert decode_body_sensor_location(b"\x01") == "chest"
    assert decode_body_sensor_location(b"\x02") == "wrist"
    assert decode_body_sensor_location(b"\x09") == "reserved (9)"
    with pytest.raises(DecodeError):
        decode_body_sensor_location(b"")


# ------------------------------------------------------------------ properties

measurements = st.builds(
    lambda hr, wide, contact, energy, raw_rr: HeartRateMeasurement(
        hr_bpm=hr if wide else hr % 256,
        rr_ms=tuple(v * 1000 / 1024 for v in raw_rr),
        sensor_contact=contact,
        energy_kj=energy,
        hr_uint16=wide,
    ),
    st.integers(0, 0xFFFF),
    st.booleans(),
    st.sampled_from([None, True, False]),
    st.one_of(st.none(), st.integers(0, 0xFFFF)),
    st.lists(st.integers(0, 0xFFFF), max_size=9),
)


@given(measurements)
def test_hrm_roundtrip(m: HeartRateMeasurement) -> None:
    assert decode_hrm(encode_hrm(m)) == m


@settings(max_examples=400)
@given(st.binary(max_size=40))
def test_hrm_parser_raises_only_its_own_error(data: bytes) -> None:
    try:
        m = decode_hrm(data)
    except DecodeError:
        return
    flags = data[0] & 0x19 | (data[0] & 0x06 if data[0] & 0x04 else 0)  # reserved/meaningless bits dropped
    assert encode_hrm(m) == bytes([flags]) + data[1:]


frames = st.builds(
    BedNotification,
    st.integers(0, 0xFFFF),
    st.integers(0, 2**63 - 1),
    st.integers(1, 0xFFFF),
    st.lists(st.integers(-32768, 32767), min_size=1, max_size=255).map(lambda v: np.asarray(v, dtype=np.int16)),
    st.booleans(),
)


@given(frames)
def test_bed_frame_roundtrip(n: BedNotification) -> None:
    assert decode_bed_frame(encode_bed_frame(n)) == n


@settings(max_examples=400)
@given(st.binary(max_size=80))
def test_bed_parser_raises_only_its_own_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_bed_frame(data)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b[:10], "shorter than"),
        (lambda b: bytes([2]) + b[1:], "profile version 2"),
        (lambda b: b[:1] + bytes([0x81]) + b[2:], "reserved flag"),
        (lambda b: b[:12] + b"\x00\x00" + b[14:], "sample rate 0"),
        (lambda b: b[:-1], "announces 3 samples"),
        (lambda b: b + b"\x00\x00", "announces 3 samples"),
        (lambda b: b[:14] + b"\x00", "no samples"),
    ],
)
def test_bed_frame_errors(mutate: object, needle: str) -> None:
    good = encode_bed_frame(BedNotification(7, 1_767_651_000_000, 100, np.array([1, -2, 3], dtype=np.int16)))
    assert len(good) == HEADER_BYTES + 6
    with pytest.raises(DecodeError, match=needle):
        decode_bed_frame(mutate(good))  # type: ignore[operator]


def test_sensor_info_roundtrip() -> None:
    assert decode_sensor_info(encode_sensor_info(100, 50)) == (1, 100, 50)
    with pytest.raises(DecodeError):
        decode_sensor_info(b"\x01")


# ------------------------------------------------------------------ the CLI


def test_decode_hrm_command_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ble", "decode-hrm", "1e4801000004"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"hr_bpm": 72, "rr_ms": [1000.0], "sensor_contact": True, "energy_kj": 1}
    assert isinstance(out["hr_bpm"], int)
    assert all(isinstance(v, float) for v in out["rr_ms"])


def test_decode_hrm_command_without_contact_support(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ble", "decode-hrm", "0048"]) == 0
    assert json.loads(capsys.readouterr().out) == {"hr_bpm": 72, "rr_ms": [], "sensor_contact": None, "energy_kj": None}


def test_decode_hrm_command_rejects_bad_payload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ble", "decode-hrm", "10"]) == 2
    assert "HEX: 10 is not a valid Heart Rate Measurement" in capsys.readouterr().err
    assert main(["ble", "decode-hrm", "xyz"]) == 2
