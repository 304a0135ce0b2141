"""One list of a night's respiratory events, with each one's evidence from every device.

A bed sensor sees breathing stop (a *pause*: >= 10 s without respiratory movement,
:mod:`core.nights.bed_events`); a chest strap sees the heart-rate cycle an apnoea leaves, a
slowing during it and a surge when breathing resumes (cyclic variation of heart rate:
Guilleminault C. et al., Lancet 1984;1:126-131; :mod:`core.signals.cvhr`). Where both
exist, each pause is one event with its evidence:

* ``pause_s``: the pause's length, s (bed);
* ``hr_surge_bpm``: the heart-rate surge after it ends, beats/min: the highest 3-beat mean
  heart rate in the :data:`SURGE_WINDOW_S` after the end, minus the median heart rate in
  the same span before it (strap); a pause with a surge of :data:`SURGE_MIN_BPM` or more is
  ``pause+cvhr``, one without ``pause``;
* ``movement``: the bed's movement index of the epoch it starts in (already an epoch column).

Where the bed sensor gave no epoch, a CVHR cycle the strap's beats show is an event of its
own, ``cvhr`` (its evidence: the cycle; no pause length). Where the bed sensor did give the
epoch and saw breathing go on, a heart-rate cycle is not a respiratory event.

The list is per epoch: each event is counted in the 30-s epoch it starts in (the longest
pause where two start in one), so the curated ``epoch_stages`` table carries it
(``resp_event``, ``pause_s``, ``hr_surge_bpm``) and ``WHERE resp_event IS NOT NULL`` reads
the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from core.contract.epochs import EPOCH_MS

__all__ = ["SURGE_MIN_BPM", "SURGE_WINDOW_S", "EpochEvents", "epoch_events", "hr_surge_bpm"]

#: The span before and after a pause's end whose heart rates are compared, s.
SURGE_WINDOW_S: Final = 20.0
#: A surge this large (beats/min) marks a pause as also seen in the heart rate. The CVHR
#: surges of apnoea patients are 10-20 beats/min (Guilleminault 1984); normal breathing's
#: sinus arrhythmia moves heart rate by a few.
SURGE_MIN_BPM: Final = 6.0


def hr_surge_bpm(beat_t_s: npt.ArrayLike, rr_ms: npt.ArrayLike, end_s: float) -> float | None:
    """The heart-rate surge after ``end_s`` (module docstring); ``beat_t_s`` (n,) s and ``rr_ms``
    (n,) ms, sorted by time. None without 3 beats on each side."""
    t = np.asarray(beat_t_s, dtype=float)
    rr = np.asarray(rr_ms, dtype=float)
    ok = (rr >= 300.0) & (rr <= 2000.0)
    t, hr = t[ok], 60_000.0 / rr[ok]
    before = hr[(t >= end_s - SURGE_WINDOW_S) & (t < end_s)]
    after = hr[(t >= end_s) & (t < end_s + SURGE_WINDOW_S)]
    if len(before) < 3 or len(after) < 3:
        return None
    peak = float(np.convolve(after, np.ones(3) / 3.0, mode="valid").max())
    return peak - float(np.median(before))


@dataclass(frozen=True)
class EpochEvents:
    """Per epoch (n_epochs,): ``kind`` (None, ``pause+cvhr``, ``pause`` or ``cvhr``), ``pause_s``
    and ``hr_surge_bpm`` (NaN where not measured)."""

    kind: list[str | None]
    pause_s: npt.NDArray[np.float64]
    hr_surge_bpm: npt.NDArray[np.float64]


def epoch_events(
    grid_ms: npt.ArrayLike,
    pauses: Sequence[tuple[int, int]],
    bed_epochs: npt.ArrayLike,
    beat_t_s: npt.ArrayLike | None,
    rr_ms: npt.ArrayLike | None,
    cvhr_cycles: npt.ArrayLike,
) -> EpochEvents:
    """The night's events by the epoch they start in (module docstring).

    ``grid_ms`` (n,) epoch starts, ms UTC; ``pauses`` (start_ms, end_ms) of the bed's pause
    episodes; ``bed_epochs`` (n,) bool, the bed sensor gave the epoch; ``beat_t_s``/``rr_ms``
    the strap's beats, s from ``grid_ms[0]`` (None without a strap); ``cvhr_cycles`` (n,)
    CVHR cycles starting in each epoch (NaN or negative: not measured)."""
    grid = np.asarray(grid_ms, dtype=np.int64)
    n = len(grid)
    kind: list[str | None] = [None] * n
    pause_s = np.full(n, np.nan)
    surge = np.full(n, np.nan)
    t = np.asarray(beat_t_s if beat_t_s is not None else [], dtype=float)
    rr = np.asarray(rr_ms if rr_ms is not None else [], dtype=float)
    order = np.argsort(t, kind="stable")
    t, rr = t[order], rr[order]
    for start_ms, end_ms in pauses:
        k = int((start_ms - int(grid[0])) // EPOCH_MS) if n else -1
        length = (end_ms - start_ms) / 1000.0
        if not 0 <= k < n or (np.isfinite(pause_s[k]) and pause_s[k] >= length):
            continue
        pause_s[k] = length
        s = hr_surge_bpm(t, rr, (end_ms - int(grid[0])) / 1000.0) if len(t) else None
        surge[k] = np.nan if s is None else s
        kind[k] = "pause+cvhr" if s is not None and s >= SURGE_MIN_BPM else "pause"
    bed = np.asarray(bed_epochs, dtype=bool)
    cycles = np.nan_to_num(np.asarray(cvhr_cycles, dtype=float), nan=0.0)
    for j in np.flatnonzero(~bed & (cycles > 0)).tolist():
        if kind[j] is None:
            kind[j] = "cvhr"
    return EpochEvents(kind, pause_s, surge)
