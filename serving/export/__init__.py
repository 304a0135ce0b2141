"""Export one subject's data as files: the lake's rows and staged nights (Parquet, CSV),
an HL7 FHIR R4 Bundle of Observations, or EDF+ files of its nights.

The command line (``sleepstack export``) and the dashboard call :func:`export_subject`
with their SQL engine (:class:`serving.sql_engine.SqlEngine`: DuckDB over the local
lake, Athena on AWS). What each format holds: ``docs/export.md``.

An export is written beside its destination under a temporary name, owner-only (files
0600, folders 0700), and renamed into place when whole: a failed export leaves nothing,
and an existing path is never overwritten. Files name the subject by its pseudonymous id
only; nothing here logs a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, get_args

from core.contract.epochs import night_range
from core.errors import InputError
from serving.export._files import check_out, staged_dir, staged_file
from serving.export._lake import SubjectData, check_subject, load_subject
from serving.sql_engine import SqlEngine

__all__ = [
    "FORMATS",
    "ExportFormat",
    "ExportResult",
    "SubjectData",
    "check_request",
    "export_subject",
    "load_subject",
]

ExportFormat = Literal["parquet", "csv", "fhir", "edf"]
#: The formats, in the order the command line lists them.
FORMATS: Final[tuple[str, ...]] = get_args(ExportFormat)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: ``out`` (a folder, or the FHIR JSON file), rows or resources per
    file name, and the nights it covers."""

    subject_id: str
    fmt: str
    out: Path
    nights: tuple[str, ...]
    files: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a person: what went where (counts and names, no values)."""
        what = ", ".join(f"{name} ({n})" for name, n in self.files.items())
        span = self.nights[0] if len(self.nights) == 1 else f"{self.nights[0]} to {self.nights[-1]}"
        return f"exported {self.subject_id}, nights {span}, as {self.fmt} to {self.out}: {what}"


def check_request(subject_id: str, fmt: str, out: Path, first: str | None = None, last: str | None = None) -> Path:
    """What an export is asked, checked before anything is read: the subject id, format, dates
    (``YYYY-MM-DD``, ``first`` not after ``last``) and ``out`` (absolute; must not exist, its
    folder must). Raises :class:`~core.errors.InputError`."""
    check_subject(subject_id)
    if fmt not in FORMATS:
        raise InputError("--format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    for value, arg in ((first, "--from"), (last, "--to")):
        if value is not None:
            night_range(value, value, start_arg=arg, end_arg=arg)
    if first is not None and last is not None:
        night_range(first, last)
    return check_out(out)


def export_subject(
    engine: SqlEngine,
    subject_id: str,
    fmt: str,
    out: Path,
    *,
    first: str | None = None,
    last: str | None = None,
    tz: str = "UTC",
    timestamp: datetime | None = None,
) -> ExportResult:
    """Export ``subject_id``'s nights ``first`` to ``last`` (``YYYY-MM-DD``, inclusive; None: its
    first or last staged night) as ``fmt`` to ``out``, a path that must not exist yet.

    ``parquet``/``csv``: a folder ``out`` with ``raw``, ``epochs`` and ``nights`` tables;
    ``fhir``: the JSON Bundle file ``out``; ``edf``: a folder ``out`` of one ``.edf`` per
    staged night. ``tz``: the subject's zone (its nights run noon to noon there).
    ``timestamp``: the Bundle's (default now).

    Raises :class:`~core.errors.InputError` (nothing written) for an unknown format, a
    malformed subject id or date, a subject the lake does not hold, a range without its
    data, staged nights missing for ``fhir``/``edf``, or an ``out`` that exists or whose
    folder does not.
    """
    target = check_request(subject_id, fmt, out, first, last)
    data = load_subject(engine, subject_id, first, last, tz=tz)
    if fmt in ("fhir", "edf") and data.epochs.num_rows == 0:
        raise InputError("--from", f"{subject_id} has no staged nights from {data.nights[0]} to {data.nights[-1]}")
    if fmt == "fhir":
        from serving.export.fhir import write_fhir

        with staged_file(target) as tmp:
            files = {target.name: write_fhir(data, tmp, timestamp)}
    else:
        with staged_dir(target) as tmp:
            if fmt == "edf":
                from serving.export.edf import write_edf

                files = write_edf(data, tmp)
            else:
                from serving.export.tables import write_tables

                files = write_tables(data, tmp, fmt)
    nights = tuple(sorted(set(data.epochs.column("night").to_pylist()))) or data.nights
    return ExportResult(subject_id, fmt, target, nights, files)
