"""Each staged night as an EDF+ file a polysomnography viewer opens (written with ``edfio``).

One EDF+C file per night (EDF+ holds one continuous recording; a night's epochs are a
continuous 30-s grid): ``<subject>_<night>.edf``. Data records of 30 s with one sample
each (an epoch), three signals:

* ``HR``: heart rate, ``bpm`` (the bed sensor's, else the strap's: ``hr_source``);
* ``BR``: breathing rate, ``/min`` (bed sensor);
* ``Movement``: the bed sensor's movement index (no unit, ``a.u.``).

Each signal's physical range is its data's, widened to whole units; an epoch without a
value is written one unit *below* that range's data minimum (the physical minimum), so
it can never be mistaken for a measurement, and is marked by a ``No data: HR`` (``BR``,
``Movement``) annotation over the stretch. 16-bit samples resolve (max - min) / 65535.

The hypnogram is written as EDF+ annotations, one per run of equal stages, in the
Sleep-EDF/AASM wording (:data:`STAGE_LABELS`). Our stager scores four classes from heart rate,
its variability and movement: light sleep (N1 and N2 together) is written ``Sleep stage N2``,
the bulk of it; a reader must take it as light sleep, not a scored N2.

The header names the subject by its pseudonymous id only (patient code; sex, birth date and
name are ``X``), the recording's start in the subject's zone, and ``sleepstack`` as equipment.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.contract.epochs import EPOCH_MS, EPOCH_S
from serving.export._lake import SubjectData

if TYPE_CHECKING:
    import edfio

__all__ = ["SIGNALS", "STAGE_LABELS", "UNSCORED", "edf_name", "write_edf"]

#: stage_label -> annotation text.
STAGE_LABELS: Final = {
    "wake": "Sleep stage W",
    "light": "Sleep stage N2",
    "deep": "Sleep stage N3",
    "rem": "Sleep stage R",
}
#: An epoch the stager left unscored (no data long enough), as in Sleep-EDF.
UNSCORED: Final = "Sleep stage ?"
#: (column, EDF label, physical dimension): the signals, in this order.
SIGNALS: Final = (("hr_bpm", "HR", "bpm"), ("br_per_min", "BR", "/min"), ("movement", "Movement", "a.u."))


def edf_name(subject_id: str, night: str) -> str:
    return f"{subject_id}_{night}.edf"


def _runs(values: list[str]) -> list[tuple[int, int, str]]:
    """(first index, length, value) of each run of equal values."""
    out: list[tuple[int, int, str]] = []
    for i, v in enumerate(values):
        if out and out[-1][2] == v and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1, v)
        else:
            out.append((i, 1, v))
    return out


def _signal(values: np.ndarray, label: str, unit: str) -> tuple[edfio.EdfSignal, list[tuple[int, int, str]]]:
    """The EdfSignal of one column (1 sample per 30-s record) and its runs without a value."""
    import edfio

    missing = np.isnan(values)
    have = values[~missing]
    lo = math.floor(float(have.min())) if have.size else 0
    hi = math.ceil(float(have.max())) if have.size else 1
    if missing.any():
        lo -= 1  # the no-data level: below every measurement
    if hi <= lo:
        hi = lo + 1
    data = np.where(missing, float(lo), values)
    gaps = [r for r in _runs(["gap" if m else "" for m in missing]) if r[2] == "gap"]
    signal = edfio.EdfSignal(
        data, sampling_frequency=1 / EPOCH_S, label=label, physical_dimension=unit, physical_range=(lo, hi)
    )
    return signal, gaps


def _night_edf(subject_id: str, epochs: pd.DataFrame, tz: str) -> edfio.Edf:
    import edfio

    epochs = epochs.sort_values("epoch_start_ms")
    start_ms = int(epochs["epoch_start_ms"].iloc[0])
    steps = np.diff(epochs["epoch_start_ms"].to_numpy(dtype=np.int64))
    if (steps != EPOCH_MS).any():  # the nightly job writes a continuous grid; EDF+C needs one
        raise ValueError(f"the night's epochs of {subject_id} are not a continuous 30-s grid")
    signals = []
    annotations = []
    for column, label, unit in SIGNALS:
        values = pd.to_numeric(epochs[column], errors="coerce").to_numpy(dtype=float)
        signal, gaps = _signal(values, label, unit)
        signals.append(signal)
        annotations += [edfio.EdfAnnotation(i * EPOCH_S, n * EPOCH_S, f"No data: {label}") for i, n, _ in gaps]
    labels = [STAGE_LABELS.get(str(s), UNSCORED) for s in epochs["stage_label"]]
    annotations += [edfio.EdfAnnotation(i * EPOCH_S, n * EPOCH_S, text) for i, n, text in _runs(labels)]
    annotations.sort(key=lambda a: (a.onset, a.text))
    local = datetime.fromtimestamp(start_ms / 1000, tz=UTC).astimezone(ZoneInfo(tz))
    return edfio.Edf(
        signals,
        patient=edfio.Patient(code=subject_id),
        recording=edfio.Recording(startdate=local.date(), equipment_code="sleepstack"),
        starttime=local.time().replace(tzinfo=None),
        data_record_duration=EPOCH_S,
        annotations=annotations,
    )


def write_edf(data: SubjectData, folder: Path) -> dict[str, int]:
    """Write one EDF+ file per staged night of ``data`` into ``folder``; epochs per file name."""
    epochs = data.epochs.to_pandas()
    out = {}
    for night, rows in epochs.groupby("night", sort=True):
        name = edf_name(data.subject_id, str(night))
        edf = _night_edf(data.subject_id, rows, data.tz)
        edf.write(folder / name)
        out[name] = len(rows)
    return out
