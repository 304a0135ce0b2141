"""A night's breathing-pause episodes and bed exits: the alert rules' definitions, counted.

Both layers count the same events. The speed layer raises them as alerts
(:class:`core.live.alerts.AlertTracker` over each bed's epoch documents, as they arrive); the
batch layer replays the night's bed documents through the same tracker
(:func:`bed_events`) with the defaults of :class:`~core.live.alerts.AlertRules`:

* a **breathing pause** is an episode with no respiratory movement for at least 10 s
  (``pause_min_s``, the AASM minimum for an apnoea: Berry R.B. et al., AASM Manual for the
  Scoring of Sleep and Associated Events, v2.6, 2020), made of the still stretches that
  :func:`core.signals.bcg.breathing_pauses_rows` finds in each epoch, joined across window and
  epoch edges when under 1 s apart; seconds of gross movement are never still, and an
  epoch with nobody in bed ends the episode. The normal rest after each exhalation (1-3 s)
  is a still stretch, never an episode.
* a **bed exit** is nobody on the sensor for 60 s or more (``bed_exit_after_s``) after at
  least 30 min in bed (``bed_exit_min_in_bed_s``).

The night's figures use these fixed definitions even where an operator tunes the live
alerts' thresholds (``SLEEPSTACK_ALERT_RULES``): a count in the curated tables means the
same thing on every installation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.contract.epochs import EPOCH_MS
from core.live.alerts import AlertKind, AlertRules, AlertTracker

__all__ = ["NIGHT_RULES", "BedEvents", "bed_events", "starts_per_epoch"]

#: The definitions the night's counts use: the defaults (AASM pause, 60-s bed exit).
NIGHT_RULES: Final = AlertRules()


@dataclass(frozen=True, slots=True)
class BedEvents:
    """Episodes as ``(start_ms, end_ms)`` pairs, ms UTC, in time order."""

    pauses: list[tuple[int, int]] = field(default_factory=list)
    bed_exits: list[tuple[int, int]] = field(default_factory=list)


def bed_events(docs: Iterable[dict[str, Any]], rules: AlertRules = NIGHT_RULES) -> BedEvents:
    """Breathing-pause episodes and bed exits in one bed sensor's epoch documents.

    ``docs``: epoch-vitals documents (:data:`core.signals.vitals.EPOCH_VITALS_FIELDS`) of one
    device, in epoch order. An episode still open after the last document ends with it.
    """
    tracker = AlertTracker(rules)
    alerts: dict[str, dict[str, Any]] = {}
    last: dict[str, Any] | None = None
    for doc in docs:
        for a in tracker.observe(doc):
            alerts[a["doc_id"]] = a
        last = doc
    if last is not None:
        for a in tracker.close_all(last):
            alerts[a["doc_id"]] = a
    found: dict[str, list[tuple[int, int]]] = {AlertKind.BREATHING_PAUSE: [], AlertKind.BED_EXIT: []}
    for a in alerts.values():
        if a["kind"] in found:
            found[a["kind"]].append((int(a["start_ms"]), int(a["end_ms"])))
    return BedEvents(sorted(found[AlertKind.BREATHING_PAUSE]), sorted(found[AlertKind.BED_EXIT]))


def starts_per_epoch(episodes: Iterable[tuple[int, int]], epoch_start_ms: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """How many episodes start in each epoch; ``epoch_start_ms`` shape (n,), sorted, on the 30-s grid."""
    grid = np.asarray(epoch_start_ms, dtype=np.int64)
    starts = np.array([a for a, _ in episodes], dtype=np.int64)
    k = np.searchsorted(grid, starts - starts % EPOCH_MS)
    hit = (k < len(grid)) & (grid[np.minimum(k, len(grid) - 1)] == starts - starts % EPOCH_MS)
    return np.bincount(k[hit], minlength=len(grid)).astype(np.int64)
