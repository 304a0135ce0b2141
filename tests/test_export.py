"""sleepstack export: the lake's rows as Parquet/CSV, a FHIR R4 Bundle, EDF+ per night.

The truth is the lake itself, read here without the export's reader: the raw Parquet
with pyarrow, the curated tables' Parquet files. The FHIR Bundle is parsed back by
``fhir.resources``; the EDF+ files are read back by pyedflib (EDFlib, the C library
behind EDFbrowser), not by edfio, which wrote them.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from batch_layer.lake_schema import RAW_SCHEMA
from batch_layer.raw_landing import partition_keys
from core.contract import to_row
from core.contract.epochs import EPOCH_MS, EPOCH_S
from core.errors import InputError
from local.duckdb_sql import LocalSqlEngine
from serving.export import FORMATS, export_subject
from serving.export import edf as edf_mod
from serving.export import fhir as fhir_mod
from sleepstack.bench.fixtures import simulated_night_records, stage_records
from sleepstack.cli import main

SUBJECT, OTHER = "s001", "s002"
HOURS = 4.5  # a night is scored from 4 h in bed


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose lake holds 4.5 h of a simulated night of two subjects: raw rows as the
    delivery lays them out (``raw/dt=``) and the nights staged by the nightly job's functions."""
    root = tmp_path_factory.mktemp("export") / "home"
    lake = root / "lake"
    recs = []
    for k, subject in enumerate((SUBJECT, OTHER)):
        night = simulated_night_records(subject, seed=k)
        end = night[0].event_time_ms + HOURS * 3_600_000
        recs += [r for r in night if r.event_time_ms < end]
    by_dt: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_dt.setdefault(partition_keys(r)["dt"], []).append(to_row(r))
    for dt, rows in by_dt.items():
        (lake / "raw" / f"dt={dt}").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=RAW_SCHEMA), lake / "raw" / f"dt={dt}" / "part-0.parquet")
    stage_records(lake, recs)
    return root


@pytest.fixture(scope="module")
def engine(home: Path) -> LocalSqlEngine:
    return LocalSqlEngine(home / "lake")


@pytest.fixture(scope="module")
def truth(home: Path) -> dict[str, pd.DataFrame]:
    """The subject's rows as the lake holds them, read straight from its Parquet files."""
    lake = home / "lake"
    raw = pq.read_table(lake / "raw", filters=[("subject_id", "=", SUBJECT)]).to_pandas()
    out = {"raw": raw.sort_values("record_id").reset_index(drop=True)}
    for table in ("epochs", "nights"):
        frames = []
        for f in sorted((lake / "curated" / table).glob(f"night=*/part-{SUBJECT}.parquet")):
            frames.append(pd.read_parquet(f).assign(night=f.parent.name.removeprefix("night=")))
        out[table] = pd.concat(frames, ignore_index=True)
    out["epochs"] = out["epochs"].sort_values("epoch_start_ms").reset_index(drop=True)
    return out


@pytest.fixture
def outdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def _cells(df: pd.DataFrame) -> list[list[Any]]:
    """Every cell, a missing value (None, NaN, NA) as None, a number as float."""
    out = []
    for row in df.itertuples(index=False):
        out.append([None if v is None or (not isinstance(v, str) and pd.isna(v)) else v for v in row])
    return [
        [float(v) if isinstance(v, int | float | np.number) and not isinstance(v, bool) else v for v in r] for r in out
    ]


def _private(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    for p in path.iterdir() if path.is_dir() else ():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_parquet_holds_the_subjects_raw_rows_epochs_and_nights_as_the_lake_does(
    engine: LocalSqlEngine, truth: dict[str, pd.DataFrame], outdir: Path
) -> None:
    res = export_subject(engine, SUBJECT, "parquet", outdir / "x")
    _private(res.out)
    assert sorted(p.name for p in res.out.iterdir()) == ["epochs.parquet", "nights.parquet", "raw.parquet"]
    raw = pq.read_table(res.out / "raw.parquet")
    assert raw.schema.field("samples").type == pa.list_(pa.int16())  # the lake's types, not the engine's
    raw_df = raw.to_pandas().sort_values("record_id").reset_index(drop=True)
    want = truth["raw"]
    assert len(raw_df) == len(want) > 0 and set(raw_df["subject_id"]) == {SUBJECT}
    assert raw_df["record_id"].tolist() == want["record_id"].tolist()
    for col in ("event_time_ms", "device_id", "hr_bpm", "kind"):
        pd.testing.assert_series_equal(raw_df[col], want[col], check_dtype=False, check_names=False)
    bed = raw_df["kind"] == "bed"
    assert all(np.array_equal(a, b) for a, b in zip(raw_df["samples"][bed], want["samples"][bed], strict=True))
    for name, table in (("epochs", "epochs"), ("nights", "nights")):
        got = pd.read_parquet(res.out / f"{name}.parquet")
        exp = truth[table][got.columns]
        assert _cells(got) == _cells(exp), name
    assert res.files == {"raw.parquet": len(want), "epochs.parquet": len(truth["epochs"]), "nights.parquet": 1}


def test_csv_writes_the_same_rows_with_samples_as_json_arrays(
    engine: LocalSqlEngine, truth: dict[str, pd.DataFrame], outdir: Path
) -> None:
    res = export_subject(engine, SUBJECT, "csv", outdir / "x")
    _private(res.out)
    raw = pacsv.read_csv(res.out / "raw.csv").to_pandas().sort_values("record_id").reset_index(drop=True)
    assert raw["record_id"].tolist() == truth["raw"]["record_id"].tolist()
    bed = raw["kind"] == "bed"
    first = raw.index[bed][0]
    assert json.loads(raw.loc[first, "samples"]) == truth["raw"].loc[first, "samples"].tolist()
    epochs = pacsv.read_csv(res.out / "epochs.csv").to_pandas()
    np.testing.assert_allclose(epochs["hr_bpm"], truth["epochs"]["hr_bpm"], rtol=1e-12)
    assert (res.out / "nights.csv").read_text().count("\n") == 2  # header + one night


def test_fhir_bundle_parses_back_through_the_library_with_the_curated_values(
    engine: LocalSqlEngine, truth: dict[str, pd.DataFrame], outdir: Path
) -> None:
    from fhir.resources.R4B.bundle import Bundle

    res = export_subject(engine, SUBJECT, "fhir", outdir / "bundle.json")
    _private(res.out)
    text = res.out.read_text()
    assert OTHER not in text
    bundle = Bundle.model_validate_json(text)
    assert bundle.type == "collection"
    obs = [e.resource for e in bundle.entry]
    epochs, nights = truth["epochs"], truth["nights"]
    metric_values = [nights[c.column].iloc[0] for c in fhir_mod.NIGHT_METRICS]
    n_metrics = sum(1 for v in metric_values if pd.notna(v))
    with_hr, with_br = int(epochs["hr_bpm"].notna().sum()), int(epochs["br_per_min"].notna().sum())
    assert len(obs) == with_hr + with_br + n_metrics == res.files["bundle.json"]
    assert n_metrics >= 15 and with_hr > 400
    assert len({e.fullUrl for e in bundle.entry}) == len(obs)
    by_start = epochs.set_index("epoch_start_ms")
    seen = {"8867-4": 0, "9279-1": 0}
    for o in obs:
        assert o.status == "final"
        assert o.subject.identifier.value == SUBJECT and o.subject.identifier.system == fhir_mod.SUBJECT_SYSTEM
        assert o.subject.reference is None and o.subject.display is None  # pseudonymous id only
        assert o.valueQuantity.system == "http://unitsofmeasure.org"
        code = o.code.coding[0]
        start_ms = int(o.effectivePeriod.start.timestamp() * 1000)
        if code.code in seen:  # an epoch vital
            assert code.system == fhir_mod.LOINC and o.valueQuantity.code == "/min"
            assert o.category[0].coding[0].code == "vital-signs"
            assert int(o.effectivePeriod.end.timestamp() * 1000) - start_ms == EPOCH_MS
            column = "hr_bpm" if code.code == "8867-4" else "br_per_min"
            assert float(o.valueQuantity.value) == by_start.loc[start_ms, column]
            assert o.device.identifier.value in {f"bed-{SUBJECT}", f"strap-{SUBJECT}"}
            seen[code.code] += 1
    assert seen == {"8867-4": with_hr, "9279-1": with_br}
    metrics = {(c.system, c.code): o for o in obs for c in o.code.coding if o.category is None}
    assert int(nights["first_epoch_ms"].iloc[0]) == min(
        int(o.effectivePeriod.start.timestamp() * 1000) for o in metrics.values()
    )
    for m in fhir_mod.NIGHT_METRICS:
        system, code, _ = m.codings[0]
        value = nights[m.column].iloc[0]
        if pd.isna(value):
            assert (system, code) not in metrics
            continue
        o = metrics[(system, code)]
        assert float(o.valueQuantity.value) == value, m.column
        assert o.valueQuantity.code == m.ucum
    assert float(metrics[(fhir_mod.LOINC, "93832-4")].valueQuantity.value) == nights["total_sleep_time_min"].iloc[0]


def test_edf_reads_back_with_an_independent_reader(
    engine: LocalSqlEngine, truth: dict[str, pd.DataFrame], outdir: Path
) -> None:
    import pyedflib

    res = export_subject(engine, SUBJECT, "edf", outdir / "edf")
    _private(res.out)
    night = truth["nights"]["night"].iloc[0]
    path = res.out / f"{SUBJECT}_{night}.edf"
    assert sorted(p.name for p in res.out.iterdir()) == [path.name]
    epochs = truth["epochs"]
    with pyedflib.EdfReader(str(path)) as edf:
        assert edf.filetype == pyedflib.FILETYPE_EDFPLUS
        assert edf.getPatientCode() == SUBJECT and edf.getPatientName() in ("X", "")
        start = datetime.fromtimestamp(int(epochs["epoch_start_ms"].iloc[0]) / 1000, tz=UTC).replace(tzinfo=None)
        assert edf.getStartdatetime() == start
        assert edf.getFileDuration() == len(epochs) * EPOCH_S
        assert edf.getSignalLabels() == [label for _, label, _ in edf_mod.SIGNALS]
        for i, (column, label, unit) in enumerate(edf_mod.SIGNALS):
            assert edf.getPhysicalDimension(i) == unit
            assert edf.getSampleFrequency(i) == pytest.approx(1 / EPOCH_S)
            got = edf.readSignal(i)
            want = epochs[column].to_numpy(dtype=float)
            assert len(got) == len(want)
            lo, hi = edf.getPhysicalMinimum(i), edf.getPhysicalMaximum(i)
            resolution = (hi - lo) / (edf.getDigitalMaximum(i) - edf.getDigitalMinimum(i))
            have = ~np.isnan(want)
            assert have.sum() > 400, label
            np.testing.assert_allclose(got[have], want[have], atol=resolution / 2 + 1e-9)
            if not have.all():  # a gap sits a unit below every measurement
                np.testing.assert_allclose(got[~have], lo, atol=resolution)
                assert want[have].min() >= lo + 1
        onsets, durations, texts = edf.readAnnotations()
    stages = [(o, d, t) for o, d, t in zip(onsets, durations, texts, strict=True) if t.startswith("Sleep stage")]
    hypnogram = [t for o, d, t in stages for _ in range(round(d / EPOCH_S))]
    assert [round(o / EPOCH_S) for o, _, _ in stages] == np.cumsum([0] + [round(d / EPOCH_S) for _, d, _ in stages])[
        :-1
    ].tolist()
    assert hypnogram == [edf_mod.STAGE_LABELS.get(s, edf_mod.UNSCORED) for s in epochs["stage_label"]]
    for column, label, _ in edf_mod.SIGNALS:  # every epoch without a value is inside a "No data" annotation
        gaps = [(o, o + d) for o, d, t in zip(onsets, durations, texts, strict=True) if t == f"No data: {label}"]
        missing = np.flatnonzero(epochs[column].isna().to_numpy()) * EPOCH_S
        assert all(any(a <= t < b for a, b in gaps) for t in missing), label
        assert sum(b - a for a, b in gaps) == len(missing) * EPOCH_S


def test_edf_signal_marks_missing_epochs_below_the_data() -> None:
    signal, gaps = edf_mod._signal(np.array([60.2, np.nan, np.nan, 71.9, np.nan]), "HR", "bpm")
    assert (signal.physical_min, signal.physical_max) == (59, 72)
    assert gaps == [(1, 2, "gap"), (4, 1, "gap")]
    np.testing.assert_allclose(signal.data, [60.2, 59, 59, 71.9, 59], atol=(72 - 59) / 65535)


def test_a_range_picks_its_nights_and_another_subject_never_appears(engine: LocalSqlEngine, outdir: Path) -> None:
    res = export_subject(engine, OTHER, "parquet", outdir / "x", first="2026-01-05", last="2026-01-05")
    assert res.nights == ("2026-01-05",)
    for name in ("raw", "epochs", "nights"):
        assert set(pq.read_table(res.out / f"{name}.parquet").column("subject_id").to_pylist()) == {OTHER}


@pytest.mark.parametrize(
    ("subject", "fmt", "out", "first", "last", "what"),
    [
        ("nobody", "fhir", "b.json", None, None, "--subject"),
        ("s 1", "fhir", "b.json", None, None, "--subject"),
        (SUBJECT, "xml", "b.xml", None, None, "--format"),
        (SUBJECT, "csv", "x", "2026-13-01", None, "--from"),
        (SUBJECT, "csv", "x", "2026-01-06", "2026-01-05", "--to"),
        (SUBJECT, "csv", "x", "2026-02-01", None, "--from"),
        (SUBJECT, "edf", "x", "2026-01-07", "2026-01-08", "--from"),
        (SUBJECT, "csv", "no/such/folder", None, None, "--out"),
        (SUBJECT, "csv", "taken", None, None, "--out"),
    ],
)
def test_bad_requests_raise_one_typed_error_and_write_nothing(
    engine: LocalSqlEngine,
    outdir: Path,
    subject: str,
    fmt: str,
    out: str,
    first: str | None,
    last: str | None,
    what: str,
) -> None:
    (outdir / "taken").write_text("mine")
    with pytest.raises(InputError) as err:
        export_subject(engine, subject, fmt, outdir / out, first=first, last=last)
    assert err.value.what == what and "\n" not in str(err.value)
    assert sorted(p.name for p in outdir.iterdir()) == ["taken"]
    assert (outdir / "taken").read_text() == "mine"


def test_a_failed_write_leaves_nothing(engine: LocalSqlEngine, outdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: Any, folder: Path) -> dict[str, int]:
        (folder / "half.edf").write_bytes(b"0")
        raise OSError("disk full")

    monkeypatch.setattr(edf_mod, "write_edf", broken)
    with pytest.raises(OSError, match="disk full"):
        export_subject(engine, SUBJECT, "edf", outdir / "edf")
    monkeypatch.setattr(fhir_mod, "write_fhir", lambda data, path, ts=None: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export_subject(engine, SUBJECT, "fhir", outdir / "b.json")
    assert list(outdir.iterdir()) == []


def test_the_command_exports_and_names_only_counts(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sleepstack.cli import export as cli_export

    assert cli_export._FORMATS == FORMATS
    monkeypatch.setenv("SLEEPSTACK_HOME", str(home))
    out = tmp_path / "night.json"
    assert main(["export", "--subject", SUBJECT, "--format", "fhir", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"exported {SUBJECT}, nights 2026-01-05, as fhir to {out}: night.json (")
    assert main(["export", "--subject", "nobody", "--format", "edf", "--out", str(tmp_path / "e")]) == 2
    assert "nobody is not in the lake" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["night.json"]
