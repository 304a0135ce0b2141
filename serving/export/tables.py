"""The lake's rows and the staged nights as Parquet or CSV files.

A folder holding ``raw.<ext>`` (the raw lake's rows of the subject in the nights, every
kind, with the ``night`` each belongs to), ``epochs.<ext>`` (``epoch_stages``) and
``nights.<ext>`` (``night_summary``), with the catalog's columns in its order. Parquet keeps
the catalog's types; CSV writes a list column (a bed frame's samples) as a JSON array and
a missing value as an empty field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from serving.export._lake import SubjectData

__all__ = ["TABLE_FILES", "write_tables"]

#: The files of a table export, by the attribute of :class:`SubjectData` they hold.
TABLE_FILES: Final = {"raw": "raw", "epochs": "epochs", "nights": "summaries"}


def _csv_ready(table: pa.Table) -> pa.Table:
    """``table`` with each list column as JSON text (CSV has no arrays)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_list(f.type):
            text = [None if v is None else json.dumps(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, pa.field(f.name, pa.string()), pa.array(text, type=pa.string()))
    return table


def write_tables(data: SubjectData, folder: Path, fmt: str) -> dict[str, int]:
    """Write the three tables into ``folder`` as ``fmt`` (``parquet`` or ``csv``); rows per file name."""
    rows = {}
    for stem, attr in TABLE_FILES.items():
        table: pa.Table = getattr(data, attr)
        path = folder / f"{stem}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path, compression="zstd")
        else:
            pacsv.write_csv(_csv_ready(table), path)
        rows[path.name] = table.num_rows
    return rows
