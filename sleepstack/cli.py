"""``sleepstack`` command line: the composition root of the local stack and the jobs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from core.errors import SleepstackError
from sleepstack.local_stack import LocalStack, StackError
from sleepstack.settings import Settings

__all__ = ["main"]


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    import pyarrow.parquet as pq

    from core.contract import to_wire
    from core.simulate import night_records, simulate_night
    from sleepstack.demo import cohort, truth_table
    from sleepstack.rr_files import read_rr_ms

    out = Path(args.out or settings.home / "sim")
    out.mkdir(parents=True, exist_ok=True)
    rr = read_rr_ms(Path(args.rr)) if args.rr else None
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


def _cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    stack = LocalStack(settings.home, settings.region)
    if args.action == "up":
        print(f"kinesalite listening at {stack.up(port=args.port, environment=settings.environment)}")
    elif args.action == "down":
        print("stopped" if stack.down() else "not running")
    else:
        state = stack.state()
        print(f"running at http://127.0.0.1:{state['port']}" if state else "not running")
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
    )
    return 0 if result.lost == 0 and result.duplicated == 0 else 1


def _cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    from batch_layer.nightly_job import run_nightly
    from batch_layer.spark_session import local_spark

    if args.action == "run":
        nights = [args.night]
    else:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
        nights = [(start + timedelta(days=k)).isoformat() for k in range((end - start).days + 1)]
    lake = Path(args.lake) if args.lake else settings.lake
    res = run_nightly(local_spark(), str(lake / "raw"), str(lake / "curated"), nights, settings.tz)
    print(f"staged {res.subject_nights} subject-nights ({res.epochs} epochs) for {', '.join(res.nights)}")
    return 0


def _cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from serving.sql_engine import LocalSqlEngine, load_query

    text = Path(args.query).read_text() if args.query.endswith(".sql") else load_query(args.query)
    lake = Path(args.lake) if args.lake else settings.lake
    print(LocalSqlEngine(lake).query(text).to_string(index=False))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sleepstack", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="simulate nights: wire records + ground truth files")
    s.add_argument("--subjects", type=int, default=3)
    s.add_argument("--nights", type=int, default=2)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--rr", help="real RR series to drive the beats (li2024 CSV or one interval in ms per line)")
    s.add_argument("--out", help="output directory (default $SLEEPSTACK_HOME/sim)")
    s.set_defaults(func=_cmd_simulate)

    s = sub.add_parser("stack", help="start/stop the local embedded stack")
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument("--port", type=int, default=0, help="kinesalite port (0: any free port)")
    s.set_defaults(func=_cmd_stack)

    s = sub.add_parser("demo", help="run the whole pipeline on a simulated cohort, locally")
    s.add_argument("--subjects", type=int, default=3)
    s.add_argument("--nights", type=int, default=2)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("batch", help="nightly staging job on local Spark")
    bsub = s.add_subparsers(dest="action", required=True)
    r = bsub.add_parser("run")
    r.add_argument("--night", required=True, help="YYYY-MM-DD (the night's first noon)")
    r.add_argument("--lake")
    r = bsub.add_parser("backfill")
    r.add_argument("--from", dest="start", required=True)
    r.add_argument("--to", dest="end", required=True)
    r.add_argument("--lake")
    s.set_defaults(func=_cmd_batch)

    s = sub.add_parser("sql", help="run a named serving query (or a .sql file) on the local lake")
    s.add_argument("query")
    s.add_argument("--lake")
    s.set_defaults(func=_cmd_sql)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args, Settings.from_env()))
    except (StackError, SleepstackError, ValueError, KeyError) as exc:
        print(f"sleepstack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
