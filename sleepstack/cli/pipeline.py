"""Commands that run the pipeline: ``simulate``, ``demo``, ``batch``, ``sql``, ``catalog``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.contract.epochs import night_of
from core.errors import NoDataError, QueryError
from sleepstack.cli._helpers import NIGHT_HELP, rr_argument
from sleepstack.cli.errors import UsageError
from sleepstack.hints import command
from sleepstack.settings import Settings

__all__ = ["register"]


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    import pyarrow.parquet as pq

    from core.contract import to_wire
    from simulator.nights import cohort, night_records, simulate_night
    from sleepstack.demo import truth_table

    rr = rr_argument(args.rr)
    if args.recording:
        configs = cohort(args.subjects, args.nights, args.seed, rr)
        return _write_recordings(Path(args.recording), configs, args.seed, settings)
    out = Path(args.out or settings.paths.sim)
    out.mkdir(parents=True, exist_ok=True)
    n_records = 0
    for cfg in cohort(args.subjects, args.nights, args.seed, rr):
        sim = simulate_night(cfg)
        recs = night_records(sim, strap_device=f"strap-{cfg.subject_id}", bed_device=f"bed-{cfg.subject_id}")
        name = f"{cfg.subject_id}_{truth_table(sim)['night'][0]}"
        with (out / f"{name}.records.ndjson").open("wb") as fh:
            for r in recs:
                fh.write(to_wire(r) + b"\n")
        pq.write_table(truth_table(sim), out / f"{name}.truth.parquet")
        with (out / f"{name}.events.json").open("w") as fh:
            json.dump(
                {
                    "events": sim.events,
                    "beats_s": sim.beat_t_s.round(4).tolist(),
                    "breaths_s": sim.breath_t_s.round(3).tolist(),
                },
                fh,
            )
        n_records += len(recs)
    print(f"wrote {args.subjects * args.nights} nights, {n_records} records to {out}")
    return 0


def _write_recordings(out: Path, configs: list[Any], seed: int, settings: Settings) -> int:
    """The cohort as BLE notification recordings, one JSON-lines file per device (``collect --replay``)."""
    from ingest.fake_ble import recording_lines
    from ingest.simulated_devices import simulated_peripherals
    from simulator.nights import simulate_night

    if out.exists() and not out.is_dir():
        raise UsageError("--recording", f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    peripherals = simulated_peripherals([simulate_night(c) for c in configs], seed=seed, malformed=True)
    for p in peripherals:
        (out / f"{p.address}.jsonl").write_text("\n".join(recording_lines(p)) + "\n")
    nights = sorted({night_of(c.t0_ms, settings.tz) for c in configs})
    replays = [a for p in peripherals for a in ("--replay", out / f"{p.address}.jsonl")]
    print(f"wrote {len(peripherals)} recordings to {out}: nights {', '.join(nights)} as recorded ({settings.tz})")
    print("play them on the running stack (collect --speed moves them to the latest days they fit before now):")
    print(f"  {command('stack', 'up', home=settings.home)}")
    print(f"  {command('collect', *replays, '--speed', '60', home=settings.home)}")
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.demo import run_demo

    result = run_demo(
        settings.home / "demo",
        subjects=args.subjects,
        nights=args.nights,
        seed=args.seed,
        environment=settings.environment,
        progress=not args.no_progress,
        keep_running=args.keep_running,
    )
    return 0 if result.lost == 0 and result.duplicated == 0 else 1


def _cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    from batch_layer.nightly_job import run_nightly
    from core.contract.epochs import night_range, resolve_nights
    from local.spark import local_spark

    if args.action == "run":
        nights = resolve_nights(args.night, settings.tz, datetime.now(tz=UTC), arg="--night")
    else:
        nights = night_range(args.start, args.end)
    lake = Path(args.lake) if args.lake else settings.lake
    if not any((lake / "raw").glob("dt=*/*.parquet")):
        raise NoDataError(
            f"no raw data in the lake yet ({lake / 'raw'} holds no delivered records): nothing to stage for"
            f" {', '.join(nights)}; collect and deliver records first (--lake names another lake)"
        )
    from sleepstack import wiring

    zones = {s.subject_id: s.tz for s in wiring.registry(settings, create=False).subjects()}
    res = run_nightly(
        local_spark(),
        str(lake / "raw"),
        str(lake / "curated"),
        nights,
        settings.tz,
        rr_staging=settings.staging_rr,
        subject_tz=zones,
    )
    if res.subject_nights == 0:
        raise NoDataError(f"no data for night {', '.join(nights)} in {lake / 'raw'} yet: nothing staged")
    print(f"staged {res.subject_nights} subject-nights ({res.epochs} epochs) for {', '.join(res.nights)}")
    if res.reprocessed:
        print(f"late data: re-staged {', '.join(res.reprocessed)}")
    if res.record_conflicts:
        print(f"record conflicts: {res.record_conflicts} record ids with more than one content (one kept per id)")
    return 0


def _cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from serving.sql_engine import load_query
    from sleepstack.wiring import sql_engine

    if args.list:
        _print_query_list()
        return 0
    if not args.query:
        raise UsageError("QUERY", "name a query (sql --list shows them) or give a .sql file")
    if args.query.endswith(".sql"):
        source, text = args.query, _sql_text(args.query)
    else:
        try:
            source, text = f"query {args.query}", load_query(args.query)
        except QueryError as exc:
            raise UsageError("QUERY", f"{exc} (or give a .sql file)") from None
    params = dict(_param(p) for p in args.param)
    engine = sql_engine(settings, Path(args.lake) if args.lake else None)
    try:
        rows = engine.query(text, params)
    except QueryError as exc:
        raise QueryError(f"{source}: {exc}") from None
    print(rows.to_string(index=False))
    return 0


def _param(text: str) -> tuple[str, str | int | float]:
    """``NAME=VALUE`` (a decimal number binds as a number, anything else as text) or ``NAME:text=VALUE``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError("--param", f"{text!r} is not NAME=VALUE (e.g. subject=s001, limit=10)")
    if name.endswith(":text"):
        return name.removesuffix(":text"), value
    if not name.isidentifier():
        raise UsageError("--param", f"{name!r} is not a parameter name (letters, digits, _)")
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, value


def _print_query_list() -> None:
    """Every named query with its parameters, then the catalog's tables and columns."""
    import sqlglot
    from sqlglot import expressions as exp

    from serving.catalog import CATALOG
    from serving.sql_engine import load_query, query_names

    print("named queries (sleepstack sql NAME [--param NAME=VALUE ...]):")
    for name in query_names():
        text = load_query(name)
        placeholders = sorted({str(p.this) for p in sqlglot.parse_one(text, read="athena").find_all(exp.Placeholder)})
        summary = next((ln.removeprefix("--").strip() for ln in text.splitlines() if ln.startswith("--")), "")
        params = " ".join(f"--param {p}=..." for p in placeholders)
        print(f"  {name:<26} {params:<44} {summary}")
    print("tables (write sleepstack.<table>):")
    for t in CATALOG:
        cols = ", ".join(c for c, _, _ in t.columns)
        print(f"  {t.name:<26} partitioned by {t.partition}; {cols}")


def _sql_text(name: str) -> str:
    path = Path(name)
    if path.is_dir():
        raise UsageError("QUERY", f"{path} is a directory; give a query name or a .sql file")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError("QUERY", f"{path}: no such .sql file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError("QUERY", f"{path} cannot be read as UTF-8 text ({exc})") from None


def _cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from serving.catalog import CATALOG, athena_ddl, render_template

    if not args.write_template and not args.ddl:
        raise UsageError("catalog", "name what to produce: --write-template and/or --ddl S3_ROOT")
    if args.write_template:
        path = settings.template
        path.write_text(render_template(path.read_text()))
        print(f"regenerated the Glue table columns in {path}")
    if args.ddl:
        print(";\n\n".join(athena_ddl(t, args.ddl) for t in CATALOG) + ";")
    return 0


def _count(text: str) -> int:
    """A count of subjects or nights for argparse: 1 or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: give 1 or more")
    return n


def register(sub: Any) -> None:
    s = sub.add_parser("simulate", help="simulate nights: wire records + ground truth files")
    s.add_argument("--subjects", type=_count, default=3, help="subjects to simulate (1 or more)")
    s.add_argument("--nights", type=_count, default=2, help="nights per subject (1 or more)")
    s.add_argument("--seed", type=int, default=7, help="the cohort's seed (the same seed, the same nights)")
    s.add_argument("--rr", help="real RR series to drive the beats (li2024 CSV or one interval in ms per line)")
    s.add_argument("--out", help="output directory (default $SLEEPSTACK_HOME/sim)")
    s.add_argument(
        "--recording",
        metavar="DIR",
        help="write BLE notification recordings instead, one per device (collect --replay)",
    )
    s.set_defaults(func=_cmd_simulate)

    s = sub.add_parser("demo", help="run the whole pipeline on a simulated cohort, locally")
    s.add_argument("--subjects", type=_count, default=3, help="subjects to simulate (1 or more)")
    s.add_argument("--nights", type=_count, default=2, help="nights per subject, the last one last night")
    s.add_argument("--seed", type=int, default=7, help="the cohort's seed (the same seed, the same nights)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.add_argument("--keep-running", action="store_true", help="leave the stack up afterwards (stack down stops it)")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("batch", help="nightly staging job on local Spark")
    bsub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = bsub.add_parser("run", help="stage nights (and any night that has gained late data)")
    r.add_argument("--night", required=True, help=NIGHT_HELP)
    r.add_argument("--lake", help="lake directory (default $SLEEPSTACK_HOME/lake)")
    r = bsub.add_parser("backfill", help="stage every night in a range again (replaces their partitions)")
    r.add_argument("--from", dest="start", required=True, help="first night, YYYY-MM-DD")
    r.add_argument("--to", dest="end", required=True, help="last night, YYYY-MM-DD (inclusive)")
    r.add_argument("--lake", help="lake directory (default $SLEEPSTACK_HOME/lake)")
    s.set_defaults(func=_cmd_batch)

    s = sub.add_parser("sql", help="run a named serving query (or a .sql file) on the local lake")
    s.add_argument("query", nargs="?", help="a named query (sql --list shows them) or a .sql file")
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for the query's :NAME (repeatable); a decimal number binds as a number, NAME:text=VALUE as text",
    )
    s.add_argument("--list", action="store_true", help="list the named queries with their parameters, and the tables")
    s.add_argument("--lake", help="lake directory (default $SLEEPSTACK_HOME/lake)")
    s.set_defaults(func=_cmd_sql)

    s = sub.add_parser("catalog", help="table definitions generated from the contract (template, Athena DDL)")
    s.add_argument("--write-template", action="store_true", help="regenerate the Glue columns in the template")
    s.add_argument("--ddl", metavar="S3_ROOT", help="print Athena CREATE EXTERNAL TABLE statements for this root")
    s.set_defaults(func=_cmd_catalog)
