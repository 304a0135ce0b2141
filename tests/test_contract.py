from __future__ import annotations

import base64
import contextlib
import json
import struct
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_layer.lake_schema import RAW_SCHEMA
from core.contract import (
    RAW_FIELDS,
    BedFrame,
    StrapSample,
    from_row,
    from_wire,
    hive_columns,
    make_record_id,
    spark_ddl,
    to_row,
    to_wire,
)
from core.errors import ContractError

T = 1_767_651_000_000


def strap(**kw: object) -> StrapSample:
    base: dict[str, object] = dict(
        device_id="strap-1",
        subject_id="s001",
        device_time_ms=T,
        event_time_ms=T,
        ingest_time_ms=T + 100,
        hr_bpm=60,
        rr_ms=(1000.0, 998.0),
        sensor_contact=True,
        energy_kj=None,
    )
    base.update(kw)
    return StrapSample(**base)  # type: ignore[arg-type]


def bed(**kw: object) -> BedFrame:
    base: dict[str, object] = dict(
        device_id="bed-1",
        subject_id="s001",
        device_time_ms=T,
        event_time_ms=T,
        ingest_time_ms=T + 30_100,
        fs_hz=100.0,
        samples=tuple(range(-50, 50)),
    )
    base.update(kw)
    return BedFrame(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("rec", [strap(), strap(sensor_contact=None, energy_kj=12), bed()])
def test_wire_and_row_round_trip(rec: StrapSample | BedFrame) -> None:
    assert from_wire(to_wire(rec)) == rec
    assert from_row(to_row(rec)) == rec


def test_record_id_is_deterministic_and_content_bound() -> None:
    assert strap().record_id == make_record_id("strap", "strap-1", T)
    assert strap().record_id != bed().record_id
    obj = json.loads(to_wire(strap()))
    obj["record_id"] = "0" * 32
    with pytest.raises(ContractError) as err:
        from_wire(json.dumps(obj).encode())
    assert err.value.field == "record_id"


def _wire_with(**changes: object) -> bytes:
    obj = json.loads(to_wire(strap()))
    obj.pop("record_id")
    obj.update(changes)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"", "<record>"),
        (b"\xff\xfe", "<record>"),
        (b"[1,2]", "<record>"),
        (b'{"hr_bpm": NaN}', "<record>"),
        (_wire_with(schema_version=3), "schema_version"),
        (_wire_with(kind="watch"), "kind"),
        (_wire_with(hr_bpm=300), "hr_bpm"),
        (_wire_with(hr_bpm=0), "hr_bpm"),
        (_wire_with(hr_bpm="60"), "hr_bpm"),
        (_wire_with(rr_ms=[0.0]), "rr_ms"),
        (_wire_with(device_id=""), "device_id"),
        (_wire_with(subject_id=None), "subject_id"),
        (_wire_with(event_time_ms=T + 3 * 3600 * 1000), "event_time_ms"),
        (_wire_with(event_time_ms=12), "event_time_ms"),
        (_wire_with(extra=1), "extra"),
        (b"{" + b" " * (1 << 20) + b"}", "<record>"),
    ],
)
def test_bad_records_raise_typed_error_naming_field(payload: bytes, field: str) -> None:
    with pytest.raises(ContractError) as err:
        from_wire(payload)
    assert err.value.field == field


def test_hr_zero_is_allowed_only_without_contact() -> None:
    rec = from_wire(_wire_with(hr_bpm=0, sensor_contact=False))
    assert isinstance(rec, StrapSample) and rec.hr_bpm == 0


def test_bed_samples_must_be_int16() -> None:
    with pytest.raises(ContractError) as err:
        from_wire(to_wire(bed(samples=(0, 40000)), version=1))
    assert err.value.field == "samples"
    with pytest.raises(ContractError) as err:
        to_wire(bed(samples=(0, 40000)))  # the v2 writer cannot pack it
    assert err.value.field == "samples"


@pytest.mark.parametrize("make", [strap, bed])
def test_v1_and_v2_wire_decode_to_the_same_record_and_row(make: Any) -> None:
    rec = make()
    v1, v2 = from_wire(to_wire(rec, version=1)), from_wire(to_wire(rec, version=2))
    assert v1 == v2 == rec
    assert to_row(v1) == to_row(v2)
    assert json.loads(to_wire(rec, version=1))["schema_version"] == 1
    assert json.loads(to_wire(v1))["schema_version"] == 2
    # a lake row written from a v1 record before v2 existed reads back the same
    old_row = {**to_row(rec), "schema_version": 1}
    assert from_row(old_row) == rec


def test_v2_packs_bed_samples_as_little_endian_int16() -> None:
    rec = bed(samples=(1, -2, 32767, -32768))
    obj = json.loads(to_wire(rec))
    assert "samples" not in obj
    assert base64.b64decode(obj["samples_i16le"]) == struct.pack("<4h", 1, -2, 32767, -32768)
    assert len(to_wire(bed(samples=tuple(range(-1500, 1500))))) < 0.6 * len(
        to_wire(bed(samples=tuple(range(-1500, 1500))), version=1)
    )


@pytest.mark.parametrize(
    ("packed", "reason"),
    [
        ("@@not base64@@", "not valid base64"),
        ("", "is empty"),
        (base64.b64encode(b"\x01\x02\x03").decode(), "whole number of int16"),
        (12, "expected base64 text"),
    ],
)
def test_bad_packed_samples_name_the_field(packed: object, reason: str) -> None:
    obj = json.loads(to_wire(bed()))
    obj.pop("record_id")
    obj["samples_i16le"] = packed
    with pytest.raises(ContractError, match=reason) as err:
        from_wire(json.dumps(obj).encode())
    assert err.value.field == "samples_i16le"


def test_a_v1_key_on_a_v2_record_is_refused() -> None:
    obj = json.loads(to_wire(bed()))
    obj["samples"] = [1, 2]
    with pytest.raises(ContractError) as err:
        from_wire(json.dumps(obj).encode())
    assert err.value.field == "samples"


def test_every_representation_comes_from_one_definition() -> None:
    names = [f.name for f in RAW_FIELDS]
    assert RAW_SCHEMA.names == names
    assert [c["Name"] for c in hive_columns()] == names
    assert [c.split()[0] for c in spark_ddl().split(", ")] == names
    assert RAW_SCHEMA.field("samples").type == pa.list_(pa.int16())
    assert not RAW_SCHEMA.field("record_id").nullable and RAW_SCHEMA.field("hr_bpm").nullable
    pa.Table.from_pylist([to_row(strap()), to_row(bed())], schema=RAW_SCHEMA)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decoder_raises_only_contract_errors_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ContractError):
        from_wire(data)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([f.name for f in RAW_FIELDS] + ["x"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.floats(allow_nan=False),
            st.text(max_size=5),
            st.lists(st.integers(-70000, 70000), max_size=4),
            st.booleans(),
        ),
    )
)
def test_decoder_raises_only_contract_errors_on_arbitrary_objects(obj: dict[str, object]) -> None:
    obj.setdefault("schema_version", 1)
    obj.setdefault("kind", "bed")
    with contextlib.suppress(ContractError):
        from_wire(json.dumps(obj).encode())


@settings(max_examples=100, deadline=None)
@given(
    hr=st.integers(25, 250),
    rr=st.lists(st.floats(1, 64000, allow_nan=False), max_size=8),
    contact=st.sampled_from([True, False, None]),
    energy=st.one_of(st.none(), st.integers(0, 65535)),
)
def test_strap_round_trip_property(hr: int, rr: list[float], contact: bool | None, energy: int | None) -> None:
    rec = strap(hr_bpm=hr, rr_ms=tuple(rr), sensor_contact=contact, energy_kj=energy)
    assert from_wire(to_wire(rec)) == rec
