"""Per-subject alert thresholds from the registry reach the speed layer's alerts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.live.alerts import AlertRules
from core.registry import Subject
from local.registry import LocalRegistry
from simulator.nights import SimConfig, night_records, simulate_night
from sleepstack import wiring
from sleepstack.settings import Settings
from speed_layer.processing import apply_records
from speed_layer.subject_rules import SubjectRules
from tests.conftest import T0_MS

LOW = AlertRules(hr_high_bpm=66, hr_low_bpm=56, hr_sustained_s=90)  # alerts on a normal night


def _alerts(rules_for: SubjectRules | None) -> dict[str, set[str]]:
    """Two subjects' identical hour, through the speed layer; the kinds of alerts each got."""
    night = simulate_night(SimConfig("s001", T0_MS, seed=3, apnea_per_hour=8.0))
    recs = [
        r for r in night_records(night, strap_device="strap-1", bed_device=None) if r.event_time_ms < T0_MS + 3_600_000
    ]
    twin = [dataclasses.replace(r, subject_id="s002", device_id="strap-2") for r in recs]
    out: dict[str, set[str]] = {"s001": set(), "s002": set()}
    for kind, doc in apply_records([*recs, *twin], {}, LOW, rules_for).docs:
        if kind == "alerts":
            out[doc["subject_id"]].add(doc["kind"])
    return out


def test_a_subjects_overrides_change_only_that_subjects_alerts() -> None:
    same = _alerts(None)
    assert same["s001"] == same["s002"] and "hr_low" in same["s001"]
    wide = {"s001": {"hr_low_bpm": 20.0}}
    mine = _alerts(SubjectRules(LOW, wide.get))
    assert mine["s002"] == same["s002"]  # the defaults
    assert "hr_low" not in mine["s001"]  # this subject's lower threshold: none


def test_rules_are_cached_refreshed_and_kept_when_the_registry_fails() -> None:
    now, calls, table = [0.0], [0], {"s001": {"hr_high_bpm": 130.0}}

    def overrides(sid: str) -> dict[str, float] | None:
        calls[0] += 1
        if table is None:
            raise OSError("unreachable")
        return table.get(sid)

    rules = SubjectRules(AlertRules(), overrides, ttl_s=60.0, clock=lambda: now[0])
    assert rules("s001").hr_high_bpm == 130.0 and rules("s002") == AlertRules()
    assert rules("s001").hr_high_bpm == 130.0 and calls[0] == 2  # cached
    table["s001"] = {"hr_high_bpm": 140.0}
    now[0] = 61.0
    assert rules("s001").hr_high_bpm == 140.0  # within a minute of the change
    table = None
    now[0] = 130.0


def test_the_local_stack_reads_the_registrys_overrides(tmp_path: Path) -> None:
    settings = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path)})
    rules = wiring.subject_rules(settings, AlertRules())
    assert rules is not None and rules("s001") == AlertRules()  # no registry yet: the defaults, nothing created
    assert not settings.paths.registry_db.exists()
    reg = LocalRegistry(settings.paths.registry_db)
    reg.add_subject(Subject("s009", enrolled_ms=T0_MS, alert_overrides={"hr_high_bpm": 135}))
    reg.close()
    assert wiring.subject_rules(settings, AlertRules())("s009").hr_high_bpm == 135.0  # type: ignore[misc]
