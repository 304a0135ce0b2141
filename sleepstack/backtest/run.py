"""The backtest itself: every night through every rule set, figures per rule set and rule kind.

For each night (one at a time) and each rule set, :func:`sleepstack.backtest.replay.replay_alerts`
gives the alert documents, :func:`core.live.alarm_burden.episodes_from_docs` the episodes,
and :func:`core.live.alarm_burden.figures` the row of each rule kind the epoch rules raise
(:data:`core.live.alarm_burden.SOURCE_OF`; the device-status alerts such as
``device_silent`` are not thresholds of a night's vitals and are left out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from core.live.alarm_burden import SCORED_AGAINST, SOURCE_OF, TOLERANCE_S, NightResult, episodes_from_docs, figures
from core.live.alerts import AlertRules
from sleepstack.backtest.replay import replay_alerts
from sleepstack.backtest.sources import BacktestNight

__all__ = ["KINDS", "backtest"]

#: Rule kinds reported, in table order.
KINDS: tuple[str, ...] = tuple(str(k) for k in SOURCE_OF)


def backtest(
    nights: Iterable[BacktestNight],
    rule_sets: Mapping[str, AlertRules],
    subject_rules: Callable[[AlertRules], Callable[[str], AlertRules]] | None = None,
) -> dict[str, Any]:
    """Figures of each rule set on ``nights``: ``rows`` (one per set x kind), the nights replayed and
    ``true_events``, the nights' known events by kind (scored or not: slpdb's apnoeas have no bed sensor).

    ``subject_rules``: given a set's rules, each subject's (the registry's overrides on top,
    :func:`sleepstack.wiring.subject_rules`); without it a set applies to every subject as it is."""
    results: dict[str, list[NightResult]] = {name: [] for name in rule_sets}
    per_subject = {name: subject_rules(rules) if subject_rules else None for name, rules in rule_sets.items()}
    names: list[str] = []
    truth: dict[str, int] = {}
    hours = 0.0
    for night in nights:
        names.append(night.name)
        hours += night.duration_h
        for ev in night.events:
            truth[ev.kind] = truth.get(ev.kind, 0) + 1
        for set_name, rules in rule_sets.items():
            episodes = episodes_from_docs(replay_alerts(night.records, rules, per_subject[set_name]))
            results[set_name].append(
                NightResult(night.name, night.sources, tuple(episodes), night.events, night.duration_h, night.truth)
            )
    rows = [
        {"rule_set": set_name, **figures(kind, results[set_name]).as_dict()} for set_name in rule_sets for kind in KINDS
    ]
    return {
        "nights": names,
        "hours": round(hours, 2),
        "rule_sets": {name: _changed(rules) for name, rules in rule_sets.items()},
        "subject_overrides": subject_rules is not None,
        "true_events": truth,
        "matching": {
            "rule": "an episode matches an event when they overlap once the event is widened by the tolerance",
            "scored_against": {k: {"truth": t, "device": d} for k, (t, d) in SCORED_AGAINST.items()},
            "tolerance_s": dict(TOLERANCE_S),
        },
        "rows": rows,
    }


def _changed(rules: AlertRules) -> dict[str, float]:
    """The thresholds a rule set changes from the defaults."""
    defaults = AlertRules()
    return {k: getattr(rules, k) for k in AlertRules.__dataclass_fields__ if getattr(rules, k) != getattr(defaults, k)}
