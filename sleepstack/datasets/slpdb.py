"""Reader for the slpdb-rr layout: beat-to-beat RR intervals and R&K stages from the MIT-BIH
Polysomnographic Database (Ichimaru & Moody 1999; PhysioNet slpdb 1.0.0).

Layout of a dataset directory (see ``../shared/data/README.md``)::

    meta.csv            record,subject,start_clock,age_y,sex,weight_kg
    rr/<record>.csv     beat_end_s,rr_s,beat_types    (one row per beat pair; s from the record's start)
    stages/<record>.csv t_s,stage,events              (every 30 s; 0 W, 1-4 R&K NREM, 5 REM, -1 unscored)

Stages collapse to :class:`~core.nights.stages.SleepStage` (S1+S2 light, S3+S4 deep);
movement time and unscored epochs become ``-1``. A record is one segment of a subject's
night (``slp01a`` and ``slp01b`` are one subject): cross-validation groups by
``subject``, never by record.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.contract.epochs import EPOCH_S
from core.errors import DatasetError
from core.nights.stages import RK_STAGES

__all__ = ["SlpdbRecord", "SubjectInfo", "epoch_mean_hr", "list_records", "read_meta", "read_record"]


@dataclass(frozen=True)
class SlpdbRecord:
    """One record: beats shape (n_beats,), epochs shape (n_epochs,).

    ``beat_t_s``: end of each interval, s from the record's start; ``rr_ms``: the interval,
    ms; ``normal``: both beats annotated normal (``NN``); ``epoch_t_s``: start of each
    scored 30-s epoch; ``stages``: SleepStage codes, -1 unscored; ``events``: the scorers'
    respiratory and arousal codes per epoch.
    """

    record: str
    subject: str
    beat_t_s: npt.NDArray[np.float64]
    rr_ms: npt.NDArray[np.float64]
    normal: npt.NDArray[np.bool_]
    epoch_t_s: npt.NDArray[np.float64]
    stages: npt.NDArray[np.int8]
    events: tuple[str, ...]


@dataclass(frozen=True)
class SubjectInfo:
    """What ``meta.csv`` says of a record: clock time of its start, age (years), sex (``M``/``F``)."""

    start_clock: str
    age_y: int
    sex: str


def read_meta(root: Path) -> dict[str, SubjectInfo]:
    """``meta.csv``'s start clock time, age and sex of each record."""
    path = root / "meta.csv"
    rows = _rows(path, ("record", "start_clock", "age_y", "sex"))
    try:
        return {r["record"]: SubjectInfo(r["start_clock"], int(r["age_y"]), r["sex"]) for r in rows}
    except ValueError:
        raise DatasetError(str(path), "column age_y holds a value that is not a whole number") from None


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetError(str(path), "missing file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not set(columns) <= set(reader.fieldnames):
            raise DatasetError(str(path), f"expected the columns {', '.join(columns)}")
        return list(reader)


def list_records(root: Path) -> list[tuple[str, str]]:
    """(record, subject) pairs of ``meta.csv`` that have an RR and a stage file, in file order."""
    rows = _rows(root / "meta.csv", ("record", "subject"))
    return [
        (r["record"], r["subject"])
        for r in rows
        if (root / "rr" / f"{r['record']}.csv").is_file() and (root / "stages" / f"{r['record']}.csv").is_file()
    ]


def _floats(rows: list[dict[str, str]], column: str, path: Path) -> npt.NDArray[np.float64]:
    try:
        return np.array([float(r[column]) for r in rows], dtype=float)
    except ValueError:
        raise DatasetError(str(path), f"column {column} holds a value that is not a number") from None


def read_record(root: Path, record: str, subject: str) -> SlpdbRecord:
    """One record under ``root`` (see the module docstring); beats sorted by time."""
    rr_path, st_path = root / "rr" / f"{record}.csv", root / "stages" / f"{record}.csv"
    beats = _rows(rr_path, ("beat_end_s", "rr_s", "beat_types"))
    t = _floats(beats, "beat_end_s", rr_path)
    rr = _floats(beats, "rr_s", rr_path) * 1000.0
    normal = np.array([r["beat_types"] == "NN" for r in beats], dtype=bool)
    order = np.argsort(t, kind="stable")
    scored = _rows(st_path, ("t_s", "stage", "events"))
    codes = _floats(scored, "stage", st_path).astype(int)
    bad = sorted(set(codes.tolist()) - set(RK_STAGES))
    if bad:
        raise DatasetError(str(st_path), f"unknown stage codes {bad}")
    return SlpdbRecord(
        record,
        subject,
        t[order],
        rr[order],
        normal[order],
        _floats(scored, "t_s", st_path),
        np.array([RK_STAGES[c] for c in codes], dtype=np.int8),
        tuple(r["events"] for r in scored),
    )


def epoch_mean_hr(rec: SlpdbRecord) -> npt.NDArray[np.float64]:
    """Heart rate (bpm) of each scored epoch from its normal-to-normal intervals, NaN where the
    epoch has none; shape (n_epochs,). 60000 / mean NN interval, the heart rate the HR-only
    model sees from any source."""
    idx = np.searchsorted(rec.epoch_t_s, rec.beat_t_s, side="right") - 1
    ok = (idx >= 0) & (rec.beat_t_s < rec.epoch_t_s[np.maximum(idx, 0)] + EPOCH_S) & rec.normal
    ok &= (rec.rr_ms >= 300.0) & (rec.rr_ms <= 2000.0)
    n = len(rec.epoch_t_s)
    sums = np.bincount(idx[ok], weights=rec.rr_ms[ok], minlength=n)
    counts = np.bincount(idx[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: npt.NDArray[np.float64] = np.where(counts > 0, 60000.0 * counts / sums, np.nan)
    return out
