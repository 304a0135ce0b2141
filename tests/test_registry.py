"""The registry: subjects, devices, assignments, on both adapters (SQLite and DynamoDB under moto)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.live.alerts import AlertRules
from core.registry import Assignment, Device, RegistryError, Subject, plan_assignment, subject_at
from local.registry import LocalRegistry
from registry.store import RegistryStore

T0 = 1_767_650_400_000  # 2026-01-05T22:00:00Z
H = 3_600_000


@pytest.fixture(params=["sqlite", "dynamodb"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryStore]:
    if request.param == "sqlite":
        store = LocalRegistry(tmp_path / "registry.sqlite")
        yield store
        store.close()
        return
    import boto3
    from moto import mock_aws

    from registry.dynamodb import DynamoRegistry

    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(
            TableName="registry",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoRegistry(client, "registry")


def _enrol(reg: RegistryStore, *ids: str) -> None:
    for sid in ids:
        reg.add_subject(Subject(sid, enrolled_ms=T0 - 48 * H, tz="Europe/London"))


def test_subjects_and_devices_are_kept_and_refused_twice(registry: RegistryStore) -> None:
    _enrol(registry, "s001")
    registry.add_device(Device("AA:BB:CC:DD:EE:01", "strap", "strap 1"), at_ms=T0)
    assert [s.subject_id for s in registry.subjects()] == ["s001"]
    assert registry.get_subject("s001") == Subject("s001", enrolled_ms=T0 - 48 * H, tz="Europe/London")
    assert registry.get_device("AA:BB:CC:DD:EE:01") == Device("AA:BB:CC:DD:EE:01", "strap", "strap 1")
    with pytest.raises(RegistryError, match="s001 is already registered"):
        _enrol(registry, "s001")
    with pytest.raises(RegistryError, match="already registered"):
        registry.add_device(Device("AA:BB:CC:DD:EE:01", "bed"), at_ms=T0)
    assert [h["action"] for h in registry.history()] == ["subject_added", "device_added"]


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"subject_id": "s 1"}, "subject_id"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"age_band": "12"}, "age_band"),
        ({"sex": "x"}, "sex"),
        ({"alert_overrides": {"hr_hi": 130}}, "alert_overrides"),
        ({"alert_overrides": {"hr_high_bpm": -1}}, "alert_overrides"),
    ],
)
def test_a_bad_subject_is_refused_naming_the_field(fields: dict[str, Any], what: str) -> None:
    with pytest.raises(RegistryError) as err:
        Subject(**{"subject_id": "s001", "enrolled_ms": T0, **fields})
    assert err.value.what == what


def test_a_subjects_thresholds_override_the_defaults() -> None:
    s = Subject("s001", enrolled_ms=T0, alert_overrides={"hr_high_bpm": 135, "hr_sustained_s": 60})
    rules = s.alert_rules()
    assert rules.hr_high_bpm == 135.0 and rules.hr_sustained_s == 60 and rules.hr_low_bpm == AlertRules().hr_low_bpm


def test_a_device_moves_to_the_next_patient_and_overlaps_are_refused_by_name(registry: RegistryStore) -> None:
    _enrol(registry, "s001", "s002", "s003")
    registry.add_device(Device("strap-1", "strap"), at_ms=T0)
    registry.assign(Assignment("strap-1", T0, "s001"), at_ms=T0)
    written = registry.assign(Assignment("strap-1", T0 + 24 * H, "s002"), at_ms=T0 + 24 * H, why="next patient")
    assert written == [Assignment("strap-1", T0, "s001", T0 + 24 * H), Assignment("strap-1", T0 + 24 * H, "s002")]
    with pytest.raises(RegistryError, match="assigned to s001 from 2026-01-05T22:00:00Z until 2026-01-06T22:00:00Z"):
        registry.assign(Assignment("strap-1", T0 + H, "s003", T0 + 2 * H), at_ms=T0)
    with pytest.raises(RegistryError, match="already assigned to s002"):
        registry.assign(Assignment("strap-1", T0 + 30 * H, "s002"), at_ms=T0)
    assert registry.subject_at("strap-1", T0 + H) == "s001"
    assert registry.subject_at("strap-1", T0 + 25 * H) == "s002"
    assert registry.subject_at("strap-1", T0 - H) is None
    with pytest.raises(RegistryError, match="not registered"):
        registry.assign(Assignment("strap-9", T0, "s001"), at_ms=T0)


def test_withdrawal_ends_the_subjects_assignments(registry: RegistryStore) -> None:
    _enrol(registry, "s001")
    registry.add_device(Device("bed-12", "bed", "bed 12"), at_ms=T0)
    registry.assign(Assignment("bed-12", T0, "s001"), at_ms=T0)
    registry.withdraw("s001", at_ms=T0 + 5 * H, why="consent withdrawn")
    assert registry.get_subject("s001").status == "withdrawn"  # type: ignore[union-attr]
    assert registry.subject_at("bed-12", T0 + 4 * H) == "s001" and registry.subject_at("bed-12", T0 + 6 * H) is None
    with pytest.raises(RegistryError, match="was withdrawn"):
        registry.assign(Assignment("bed-12", T0 + 7 * H, "s001"), at_ms=T0)
    with pytest.raises(RegistryError, match="already withdrawn"):
        registry.withdraw("s001", at_ms=T0 + 8 * H)


# one device, a random sequence of assignments: the store agrees with a plain model of the rules
_ops = st.lists(
    st.tuples(st.integers(0, 40), st.one_of(st.none(), st.integers(1, 12)), st.sampled_from(["s001", "s002", "s003"])),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(ops=_ops, probes=st.lists(st.integers(-2, 60), min_size=5, max_size=20))
def test_any_sequence_of_assignments_never_overlaps_and_resolves_like_the_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[int, int | None, str]], probes: list[int]
) -> None:
    reg = LocalRegistry(tmp_path_factory.mktemp("reg") / "r.sqlite")
    _enrol(reg, "s001", "s002", "s003")
    reg.add_device(Device("strap-1", "strap"), at_ms=T0)
    model: list[Assignment] = []
    for start_h, length_h, sid in ops:
        new = Assignment("strap-1", T0 + start_h * H, sid, None if length_h is None else T0 + (start_h + length_h) * H)
        try:
            writes = plan_assignment(model, new)
        except RegistryError:
            with pytest.raises(RegistryError):
                reg.assign(new, at_ms=T0)
            continue
        assert reg.assign(new, at_ms=T0) == writes
        model = sorted({a.from_ms: a for a in [*model, *writes]}.values())
    stored = reg.assignments("strap-1")
    assert stored == model
    for a, b in itertools.pairwise(stored):
        assert a.to_ms is not None and a.to_ms <= b.from_ms  # never overlapping
    for p in probes:
        t = T0 + p * H + 1
        expected = [a.subject_id for a in model if a.covers(t)]
        assert subject_at(stored, "strap-1", t) == (expected[0] if expected else None) == reg.subject_at("strap-1", t)
    reg.close()
