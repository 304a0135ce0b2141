"""Alarm burden of alert rules: episodes scored against known events, per rule kind.

Inputs are the alert episodes a rule set raised on a night (the final alert documents of
:class:`core.live.alerts.AlertTracker`, one per ``doc_id``) and, where the night has them,
the true events (a simulated night's apnoeas, tachycardias and bed exit, a
polysomnography's scored respiratory events). Times are ms UTC.

Matching rule (stated once, here): an episode ``[start_ms, end_ms]`` matches an event
``[start, end)`` when the two intervals overlap once the event is widened by the kind's
tolerance (:data:`TOLERANCE_S`) on both sides. Then, per rule kind over all nights where
that kind is scoreable (:data:`SCORED_AGAINST`: the truth exists and the night has the
device whose signal raises the kind),

* sensitivity = events matched by at least one episode / events;
* positive predictive value (PPV) = episodes matching at least one event / episodes;

as in the scoring of apnoea detectors against PSG (AASM Manual for the Scoring of Sleep
and Associated Events, v2.6, 2020, for the events; event-by-event sensitivity and PPV as
in e.g. Penzel T. et al., Med. Biol. Eng. Comput. 40:402-407, 2002).

Burden figures, for every kind whatever the truth: alerts per night; **time to alert**,
``raised_ms`` minus the start of the condition (the matched event's start when the
episode matches one, else the episode's own start, which is the rule's sustain time); and
**time in alarm**, from ``raised_ms`` to the episode's end, minutes per night.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from core.live.alerts import AlertKind

__all__ = [
    "SCORED_AGAINST",
    "SOURCE_OF",
    "TOLERANCE_S",
    "Episode",
    "Event",
    "KindFigures",
    "NightResult",
    "episodes_from_docs",
    "figures",
    "match",
]

#: Which truth each rule kind is scored against, and the device that must be on the night (None: either).
SCORED_AGAINST: Final[Mapping[str, tuple[str, str | None]]] = {
    AlertKind.HR_HIGH: ("tachycardia", None),
    AlertKind.BREATHING_PAUSE: ("apnea", "bed"),
    AlertKind.BED_EXIT: ("bed_exit", "bed"),
}
#: The device kind (record kind) whose epochs can raise each rule kind; None: either.
SOURCE_OF: Final[Mapping[str, str | None]] = {
    AlertKind.HR_HIGH: None,
    AlertKind.HR_LOW: None,
    AlertKind.BREATHING_PAUSE: "bed",
    AlertKind.BED_EXIT: "bed",
    AlertKind.CONTACT_LOST: "strap",
}
#: Widening of a true event's interval on each side before matching, s. A pause is placed to
#: within ~1.5 s by the bed sensor's respiration; a bed exit and a heart rate to the 30-s epoch.
TOLERANCE_S: Final[Mapping[str, float]] = {
    AlertKind.HR_HIGH: 30.0,
    AlertKind.BREATHING_PAUSE: 5.0,
    AlertKind.BED_EXIT: 30.0,
}


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert episode: the condition's start, when it was raised, its end (ms UTC)."""

    kind: str
    start_ms: int
    raised_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Event:
    """One true event, ``[start_ms, end_ms)``; ``kind`` as in :data:`SCORED_AGAINST` (``apnea``, ``bed_exit``)."""

    kind: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class NightResult:
    """What one rule set raised on one night, with the night's devices and truth.

    ``truth``: the event kinds whose every occurrence on the night is in ``events`` (a
    simulated night knows its apnoeas, tachycardias and bed exit; slpdb its apnoeas only;
    a lake night nothing). A kind is scored only on nights that know its truth.
    """

    name: str
    sources: frozenset[str]
    episodes: tuple[Episode, ...]
    events: tuple[Event, ...]
    duration_h: float
    truth: frozenset[str] = frozenset()


def episodes_from_docs(docs: Iterable[Mapping[str, Any]]) -> list[Episode]:
    """Episodes of alert documents: the last document of each ``doc_id`` (open, then closed).

    An episode still open (no ``end_ms``) is ended at its start plus its ``duration_s`` so far.
    """
    last: dict[str, Mapping[str, Any]] = {}
    for d in docs:
        last[str(d["doc_id"])] = d
    out = []
    for d in last.values():
        start = int(d["start_ms"])
        end = d.get("end_ms")
        end_ms = int(end) if end is not None else start + round(float(d["duration_s"]) * 1000)
        out.append(Episode(str(d["kind"]), start, int(d["raised_ms"]), end_ms))
    return sorted(out, key=lambda e: (e.start_ms, e.kind))


def match(
    episodes: Sequence[Episode], events: Sequence[Event], tolerance_s: float
) -> tuple[list[Event | None], list[bool]]:
    """For each episode the first event it matches (or None); for each event whether it is matched.

    The matching rule is the module's: overlap with the event widened by ``tolerance_s``.
    """
    tol = round(tolerance_s * 1000)
    by_episode: list[Event | None] = []
    hit = [False] * len(events)
    for ep in episodes:
        first: Event | None = None
        for i, ev in enumerate(events):
            if ep.start_ms < ev.end_ms + tol and ep.end_ms > ev.start_ms - tol:
                hit[i] = True
                first = first or ev
        by_episode.append(first)
    return by_episode, hit


@dataclass(frozen=True)
class KindFigures:
    """One rule kind's figures over the nights where it can fire (module docstring)."""

    kind: str
    nights: int
    alerts: int
    alerts_per_night: float | None
    time_to_alert_s_median: float | None
    time_in_alarm_min_per_night: float | None
    events: int | None
    sensitivity: float | None
    ppv: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "nights": self.nights,
            "alerts": self.alerts,
            "alerts_per_night": self.alerts_per_night,
            "time_to_alert_s_median": self.time_to_alert_s_median,
            "time_in_alarm_min_per_night": self.time_in_alarm_min_per_night,
            "events": self.events,
            "sensitivity": self.sensitivity,
            "ppv": self.ppv,
        }


def figures(kind: str, nights: Sequence[NightResult]) -> KindFigures:
    """Burden and, where scoreable, sensitivity and PPV of ``kind`` over ``nights``."""
    source = SOURCE_OF.get(kind)
    able = [n for n in nights if source is None or source in n.sources]
    truth_kind, truth_source = SCORED_AGAINST.get(kind, (None, None))
    scored = {id(n) for n in able if truth_kind in n.truth and (truth_source is None or truth_source in n.sources)}
    tol = TOLERANCE_S.get(kind, 0.0)
    delays: list[float] = []
    alarm_ms = 0
    alerts = 0
    events = matched_events = matched_episodes = scored_episodes = 0
    for n in able:
        eps = [e for e in n.episodes if e.kind == kind]
        alerts += len(eps)
        alarm_ms += sum(max(0, e.end_ms - e.raised_ms) for e in eps)
        truth = [ev for ev in n.events if ev.kind == truth_kind] if id(n) in scored else []
        first, hit = match(eps, truth, tol)
        delays += [(e.raised_ms - (ev.start_ms if ev else e.start_ms)) / 1000 for e, ev in zip(eps, first, strict=True)]
        if id(n) in scored:
            events += len(truth)
            matched_events += sum(hit)
            scored_episodes += len(eps)
            matched_episodes += sum(ev is not None for ev in first)
    n_able = len(able)
    return KindFigures(
        kind=kind,
        nights=n_able,
        alerts=alerts,
        alerts_per_night=round(alerts / n_able, 2) if n_able else None,
        time_to_alert_s_median=round(statistics.median(delays), 1) if delays else None,
        time_in_alarm_min_per_night=round(alarm_ms / 60_000 / n_able, 2) if n_able else None,
        events=events if scored else None,
        sensitivity=round(matched_events / events, 3) if events else None,
        ppv=round(matched_episodes / scored_episodes, 3) if scored_episodes else None,
    )
