"""One night's records through the speed layer's own code, and the alert episodes it raises.

No second implementation: the records go through :func:`speed_layer.processing.apply_records`
(the epoch vitals of :mod:`core.live.epochs`, the rules of :class:`core.live.alerts.AlertTracker`,
the device statuses' technical alerts) exactly as the speed-layer Lambda applies them; the
speed layer's output does not depend on batching, so one batch per night gives the documents
the live store holds for it. Runs still open when the night's data ends are closed there by
the tracker itself (:meth:`~core.live.alerts.AlertTracker.close_all`), as a long silence
would close them live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.contract import Record
from core.live.alerts import AlertRules, AlertTracker
from speed_layer.processing import apply_records

__all__ = ["replay_alerts"]


def replay_alerts(
    records: Sequence[Record], rules: AlertRules, rules_for: Callable[[str], AlertRules] | None = None
) -> list[dict[str, Any]]:
    """Alert documents (open and closed, in order) that ``records`` raise under ``rules``.

    ``records``: one night's records of any devices, each device's in stream order.
    ``rules_for``: each subject's rules (``rules`` with the registry's overrides,
    :class:`speed_layer.subject_rules.SubjectRules`), as the speed layer is wired.
    """
    applied = apply_records(records, {}, rules, rules_for)
    docs = [doc for kind, doc in applied.docs if kind == "alerts"]
    for device, state in sorted(applied.states.items()):
        if not state.get("alerts"):
            continue
        mine = rules_for(state["subject_id"]) if rules_for is not None else rules
        tracker = AlertTracker.from_state(mine, state["alerts"])
        last = {"subject_id": state["subject_id"], "device_id": device, "source": state["source"]}
        docs += tracker.close_all(last)
    return docs
