"""Commands for whoever hands data on: ``export`` (a subject's nights as Parquet, CSV, FHIR or EDF+ files)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sleepstack.settings import Settings

__all__ = ["register"]

_FORMATS = ("parquet", "csv", "fhir", "edf")


def _cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from local.erasure import record_export
    from serving.export import check_request, export_subject
    from sleepstack import wiring

    out = Path(args.out)
    check_request(args.subject, args.format, out, args.start, args.end)  # before anything is opened
    subject = wiring.registry(settings, create=False).get_subject(args.subject)
    tz = subject.tz if subject is not None else settings.tz
    result = export_subject(
        wiring.sql_engine(settings), args.subject, args.format, out, first=args.start, last=args.end, tz=tz
    )
    record_export(settings.paths, args.subject, args.format, result.out, int(time.time() * 1000))  # erase finds it
    print(result.summary())
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser(
        "export",
        help="a subject's nights as files: the lake's rows (parquet, csv), a FHIR R4 Bundle, EDF+ per night",
        description="Export one subject's nights (docs/export.md). Nothing is overwritten: --out must not exist.",
    )
    s.add_argument("--subject", required=True, help="the subject's pseudonymous id")
    s.add_argument("--from", dest="start", help="first night, YYYY-MM-DD (default: the subject's first staged night)")
    s.add_argument("--to", dest="end", help="last night, YYYY-MM-DD (default: its last staged night)")
    s.add_argument(
        "--format",
        required=True,
        choices=_FORMATS,
        help="parquet/csv: a folder of raw, epochs and nights tables; fhir: a JSON Bundle file; edf: a folder of"
        " one EDF+ file per night",
    )
    s.add_argument("--out", required=True, help="the folder (parquet, csv, edf) or file (fhir) to create")
    s.set_defaults(func=_cmd_export)
