"""Reader for the apnea-ecg layout: beat-to-beat RR intervals and per-minute apnoea labels of the
PhysioNet Apnea-ECG Database (Penzel T., Moody G.B., Mark R.G., Goldberger A.L., Peter J.H.,
Computers in Cardiology 27:255-258, 2000; the PhysioNet/CinC Challenge 2000).

Layout of a dataset directory (see ``../shared/data/README.md``)::

    meta.csv            record[,subject][,class][,ahi][,...]   one row per record
    rr/<record>.csv     beat_end_s,rr_s,beat_types              (one row per beat; s from the record's start)
    apnea/<record>.csv  minute,apnea                            (1 apnoea/hypopnoea, 0 normal, -1 unlabelled)

Only ``record`` is required in ``meta.csv``: without ``subject`` each record is its own
subject; without ``class`` a record's class is its name's first letter when that is A, B
or C (the challenge's naming), else unknown; without ``ahi`` (or with it blank) the
record's polysomnographic AHI is unknown. A record without an ``apnea/`` file has no
labels (its minutes are predicted, not scored); one without an ``rr/`` file is an error.
Cross-validation groups by ``subject``: one person has several records here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.errors import DatasetError

__all__ = ["ApneaRecord", "list_records", "load_apnea_ecg", "read_record"]

_CLASSES = ("A", "B", "C")


@dataclass(frozen=True)
class ApneaRecord:
    """One overnight record: beats shape (n_beats,), labels shape (n_minutes,).

    ``beat_t_s``: end of each interval, s from the record's start, sorted; ``rr_ms``: the
    interval, ms; ``labels``: per minute from the start, 1 apnoea or hypopnoea, 0 normal,
    -1 unlabelled (all -1 when the record has no labels); ``record_class``: A, B, C or None;
    ``ahi``: the polysomnogram's AHI (events per hour) or None; ``labelled``: whether the
    record has an ``apnea/`` file.
    """

    record: str
    subject: str
    beat_t_s: npt.NDArray[np.float64]
    rr_ms: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int8]
    record_class: str | None
    ahi: float | None
    labelled: bool

    @property
    def n_minutes(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class _Meta:
    record: str
    subject: str
    record_class: str | None
    ahi: float | None


def _rows(path: Path, columns: tuple[str, ...]) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DatasetError(str(path), "missing file" if not path.exists() else "is not a file")
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in reader.fieldnames or []]
            if not set(columns) <= set(fields):
                raise DatasetError(str(path), f"expected the columns {', '.join(columns)}")
            reader.fieldnames = fields
            return fields, list(reader)
    except UnicodeDecodeError:
        raise DatasetError(str(path), "is not a text CSV file") from None


def list_records(root: Path) -> list[_Meta]:
    """``meta.csv``'s records in file order, with subject, class and AHI where given."""
    path = root / "meta.csv"
    if not root.is_dir():
        raise DatasetError(str(root), "no such dataset directory" if not root.exists() else "is not a directory")
    fields, rows = _rows(path, ("record",))
    out = []
    for i, r in enumerate(rows, start=2):
        name = (r.get("record") or "").strip()
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise DatasetError(str(path), f"line {i}: {name!r} is not a record name")
        cls = (r.get("class") or "").strip().upper() if "class" in fields else ""
        if not cls and name[0].upper() in _CLASSES:
            cls = name[0].upper()
        if cls and cls not in _CLASSES:
            raise DatasetError(str(path), f"line {i}: class {cls!r} is not A, B or C")
        ahi_text = (r.get("ahi") or "").strip()
        try:
            ahi = float(ahi_text) if ahi_text else None
        except ValueError:
            raise DatasetError(str(path), f"line {i}: ahi {ahi_text!r} is not a number") from None
        out.append(_Meta(name, (r.get("subject") or "").strip() or name, cls or None, ahi))
    if not out:
        raise DatasetError(str(path), "lists no records")
    return out


def _floats(rows: list[dict[str, str]], column: str, path: Path) -> npt.NDArray[np.float64]:
    try:
        return np.array([float(r[column]) for r in rows], dtype=float)
    except (ValueError, TypeError):
        raise DatasetError(str(path), f"column {column} holds a value that is not a number") from None


def read_record(root: Path, meta: _Meta) -> ApneaRecord:
    """One record under ``root`` (module docstring); beats sorted by time."""
    rr_path, ap_path = root / "rr" / f"{meta.record}.csv", root / "apnea" / f"{meta.record}.csv"
    _, beats = _rows(rr_path, ("beat_end_s", "rr_s"))
    t = _floats(beats, "beat_end_s", rr_path)
    rr = _floats(beats, "rr_s", rr_path) * 1000.0
    if len(t) == 0:
        raise DatasetError(str(rr_path), "holds no beats")
    order = np.argsort(t, kind="stable")
    t, rr = t[order], rr[order]
    labelled = ap_path.exists()
    if labelled:
        _, rows = _rows(ap_path, ("minute", "apnea"))
        minute = _floats(rows, "minute", ap_path)
        value = _floats(rows, "apnea", ap_path)
        if len(minute) and (minute.min() < 0 or (minute % 1).any() or minute.max() > 24 * 60):
            raise DatasetError(str(ap_path), "column minute must hold whole minutes from 0 to 1440")
        if not set(np.unique(value).tolist()) <= {-1.0, 0.0, 1.0}:
            raise DatasetError(str(ap_path), "column apnea must hold 1, 0 or -1")
        n = int(max(minute.max() + 1 if len(minute) else 0, 0))
        labels = np.full(n, -1, dtype=np.int8)
        labels[minute.astype(int)] = value.astype(np.int8)
    else:
        n = int(max(float(t[-1]), 0.0) // 60.0)  # whole minutes from the start, as the challenge cut them
        labels = np.full(n, -1, dtype=np.int8)
    return ApneaRecord(meta.record, meta.subject, t, rr, labels, meta.record_class, meta.ahi, labelled)


def load_apnea_ecg(root: Path) -> list[ApneaRecord]:
    """Every record ``meta.csv`` lists under ``root``; :class:`DatasetError` naming the file for anything malformed."""
    return [read_record(root, m) for m in list_records(root)]
