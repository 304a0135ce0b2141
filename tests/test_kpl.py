"""The KPL aggregation codec: byte-compatible with AWS's aws-kinesis-agg, strict on corrupt input."""

from __future__ import annotations

import base64
import hashlib

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract.kpl import MAGIC, AggregateError, aggregate, deaggregate, is_aggregated, packed_size

payloads = st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(payloads, st.text(alphabet="abcdef0123456789:-", min_size=1, max_size=64))
def test_round_trip_and_exact_size(datas: list[bytes], key: str) -> None:
    agg = aggregate([(key, d) for d in datas])
    assert len(agg) == packed_size([(key, len(d)) for d in datas])
    out = deaggregate(agg)
    assert [u.data for u in out] == datas
    assert {u.partition_key for u in out} == {key}
    assert [u.sub_sequence for u in out] == list(range(len(datas)))


@settings(max_examples=30, deadline=None)
@given(payloads)
def test_identical_bytes_to_the_reference_aggregator(datas: list[bytes]) -> None:
    ref = RecordAggregator()
    for d in datas:
        assert ref.add_user_record("strap-01", d) is None
    _, _, ref_bytes = ref.clear_and_get().get_contents()
    assert aggregate([("strap-01", d) for d in datas]) == ref_bytes


def test_the_reference_deaggregator_reads_ours() -> None:
    datas = [b'{"a":1}', b'{"b":2}', b"x" * 700]
    agg = aggregate([("bed-7", d) for d in datas])
    records = list(
        iter_deaggregate_records(
            [{"SequenceNumber": "1", "PartitionKey": "bed-7", "ApproximateArrivalTimestamp": 0, "Data": agg}],
            data_format="Boto3",
        )
    )
    assert [r["kinesis"]["partitionKey"] for r in records] == ["bed-7"] * 3
    assert [base64.b64decode(r["kinesis"]["data"]) for r in records] == datas


def test_reads_several_partition_keys_hash_keys_and_tags() -> None:
    ref = RecordAggregator()
    ref.add_user_record("a", b"1", explicit_hash_key="123")
    ref.add_user_record("b", b"2")
    ref.add_user_record("a", b"3")
    _, _, agg = ref.clear_and_get().get_contents()
    out = deaggregate(agg)
    assert [(u.partition_key, u.data) for u in out] == [("a", b"1"), ("b", b"2"), ("a", b"3")]
    assert out[0].explicit_hash_key == "123"
    # a Tag (field 4) and an unknown field inside a record are skipped
    body = agg[4:-16]
    tag = b"\x22\x05\x0a\x01k\x12\x00"
    rec = b"\x08\x00\x1a\x01z" + tag + b"\x28\x07"
    body += b"\x1a" + bytes([len(rec)]) + rec
    patched = MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()
    assert deaggregate(patched)[-1].data == b"z"


def _sealed(body: bytes) -> bytes:
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"kind":"strap"}', "no KPL magic"),
        (MAGIC + b"\x00" * 5, "shorter than the magic"),
        (aggregate([("k", b"abc"), ("k", b"def")])[:-3], "MD5"),
        (aggregate([("k", b"abc")])[:-1] + b"\x00", "MD5"),
        (_sealed(b"\x0a\x05ab"), "past the end"),
        (_sealed(b"\x0a\x01k\x1a\x02\x08\x00"), "lacks its partition key index or its data"),
        (_sealed(b"\x0a\x01k\x1a\x05\x08\x03\x1a\x01z"), "partition key 3 of 1"),
        (_sealed(b"\x0a\x01k\x1a\x07\x08\x00\x10\x02\x1a\x01z"), "explicit hash key 2 of 0"),
        (_sealed(b"\x0a\x02\xff\xfe"), "not UTF-8"),
        (_sealed(b"\x0b"), "wire type 3"),
        (_sealed(b"\x08" + b"\xff" * 11), "64 bits"),
    ],
)
def test_corrupt_aggregates_name_what_is_wrong(data: bytes, reason: str) -> None:
    with pytest.raises(AggregateError, match=reason) as info:
        deaggregate(data)
    assert info.value.field == "<aggregate>"


def test_plain_records_are_not_aggregates() -> None:
    assert not is_aggregated(b'{"kind":"bed"}')
    assert is_aggregated(aggregate([("k", b"x")]))
    with pytest.raises(ValueError, match="at least one"):
        aggregate([])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "bb", "ccc", "d" * 64]), st.binary(max_size=300)), min_size=1))
def test_several_keys_round_trip_and_match_the_reference(records: list[tuple[str, bytes]]) -> None:
    agg = aggregate(records)
    assert len(agg) == packed_size([(k, len(d)) for k, d in records])
    assert [(u.partition_key, u.data) for u in deaggregate(agg)] == records
    ref = RecordAggregator()
    for k, d in records:
        ref.add_user_record(k, d)
    assert ref.clear_and_get().get_contents()[2] == agg
