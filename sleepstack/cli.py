"""``sleepstack`` command line: the composition root of the local stack and the jobs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import SleepstackError
from sleepstack.local_stack import LocalStack, StackError
from sleepstack.package import PackageError
from sleepstack.settings import REPO_ROOT, Settings

__all__ = ["main"]

DEFAULT_SLEEP_ACCEL = REPO_ROOT.parent / "shared" / "data" / "sleep-accel"
DEFAULT_MODEL_PATH = REPO_ROOT / "core" / "models" / "hr-mlp-v1.json"


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
        from glue_jobs.nightly_staging import resolve_nights

        nights = resolve_nights(args.night, settings.tz, datetime.now(tz=UTC))
    else:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
        if end < start:
            raise ValueError(f"backfill: --to {args.end} is before --from {args.start}")
        nights = [(start + timedelta(days=k)).isoformat() for k in range((end - start).days + 1)]
    lake = Path(args.lake) if args.lake else settings.lake
    res = run_nightly(local_spark(), str(lake / "raw"), str(lake / "curated"), nights, settings.tz)
    print(f"staged {res.subject_nights} subject-nights ({res.epochs} epochs) for {', '.join(res.nights)}")
    if res.reprocessed:
        print(f"late data: re-staged {', '.join(res.reprocessed)}")
    return 0


def _cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from serving.sql_engine import AthenaSqlEngine, LocalSqlEngine, SqlEngine, load_query

    text = Path(args.query).read_text() if args.query.endswith(".sql") else load_query(args.query)
    engine: SqlEngine
    if settings.target == "aws":
        from pyathena import connect

        conn = connect(
            work_group=settings.athena_workgroup, s3_staging_dir=settings.athena_s3_staging, region_name=settings.region
        )
        engine = AthenaSqlEngine(conn, database=f"sleepstack_{settings.environment}")
    else:
        engine = LocalSqlEngine(Path(args.lake) if args.lake else settings.lake)
    print(engine.query(text).to_string(index=False))
    return 0


def _cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from serving.catalog import CATALOG, athena_ddl, render_template

    if args.write_template:
        path = settings.template
        path.write_text(render_template(path.read_text()))
        print(f"regenerated the Glue table columns in {path}")
    if args.ddl:
        print(";\n\n".join(athena_ddl(t, args.ddl) for t in CATALOG) + ";")
    return 0


def _cmd_ble(args: argparse.Namespace, settings: Settings) -> int:
    from core.bed_profile import decode_bed_frame
    from core.hrm import decode_hrm

    try:
        payload = bytes.fromhex(args.hex.replace(" ", "").replace(":", ""))
    except ValueError as exc:
        raise ValueError(f"not a hex string: {args.hex!r} ({exc})") from None
    if args.action == "decode-hrm":
        print(json.dumps(decode_hrm(payload).as_json()))
    else:
        n = decode_bed_frame(payload)
        print(
            json.dumps(
                {
                    "seq": n.seq,
                    "device_time_ms": n.device_time_ms,
                    "fs_hz": n.fs_hz,
                    "clock_set": n.clock_set,
                    "samples": n.samples.tolist(),
                }
            )
        )
    return 0


def _cmd_collect(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.collect import run_collect, run_scan

    if args.scan:
        return run_scan(args.timeout)
    if not args.device and not args.replay:
        raise ValueError("name at least one --device ADDR (or --replay FILE); --scan lists nearby devices")
    return run_collect(
        settings,
        devices=args.device,
        subject=args.subject,
        replays=[Path(p) for p in args.replay],
        duration_s=args.duration,
        max_spool_mib=args.max_spool_mib,
    )


def _print_figures(figures: dict[str, Any], *, as_json: bool) -> None:
    """A command's measured figures: one JSON object, or aligned ``name: value`` lines."""
    if as_json:
        print(json.dumps(figures))
        return
    width = max(map(len, figures))
    for k, v in figures.items():
        print(f"{k:>{width}}: {v}")


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.which == "speed":
        from sleepstack.bench_speed import bench_speed_latency, bench_speed_throughput

        figures = bench_speed_throughput(records=args.records or 10_000, rounds=args.rounds)
        if args.latency_seconds > 0:
            figures.update(bench_speed_latency(seconds=args.latency_seconds))
    elif args.which == "batch":
        from sleepstack.bench_batch import bench_batch

        counts = tuple(int(c) for c in args.nights.split(","))
        figures = bench_batch(
            counts, query_subjects=args.query_subjects, query_days=args.query_days, rounds=args.rounds
        )
    else:
        from sleepstack.bench import bench_ingest

        figures = bench_ingest(records=args.records or 20_000, rounds=args.rounds, synchronous=args.synchronous)
    _print_figures(figures, as_json=args.json)
    return 0


def _cmd_live(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.wiring import live_store

    store = live_store(settings)
    vitals = store.latest("vitals", args.subject, n=4)
    figures = {
        "subject_id": args.subject,
        "latest_vitals": {d["source"]: d for d in reversed(vitals)},
        "latest_strap_hr": next(iter(store.latest("samples", args.subject)), None),
        "open_alerts": store.open_alerts(args.subject),
    }
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
        return 0
    if not vitals:
        print(f"no live vitals for subject {args.subject!r}")
        return 1
    for source, d in figures["latest_vitals"].items():
        shown = {k: d.get(k) for k in _LIVE_FIELDS if d.get(k) is not None}
        print(f"{source:>5} epoch {_utc(d['epoch_start_ms'])}: " + "  ".join(f"{k}={v}" for k, v in shown.items()))
    alerts = figures["open_alerts"]
    print(f"open alerts: {len(alerts)}")
    for a in alerts:
        print(f"  {a['kind']:<16} since {_utc(a['start_ms'])} ({a['duration_s']:.0f} s so far) value={a['value']}")
    return 0


_LIVE_FIELDS = ("hr_bpm", "br_per_min", "movement", "presence", "rmssd_ms", "sdnn_ms", "complete")


def _utc(t_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cmd_opensearch(args: argparse.Namespace, settings: Settings) -> int:
    from speed_layer.dashboards import saved_objects_ndjson

    if args.action == "export":
        out = Path(args.out)
        out.write_text(saved_objects_ndjson())
        print(f"wrote OpenSearch Dashboards saved objects to {out}")
        return 0
    from sleepstack.wiring import opensearch_for
    from speed_layer.opensearch_setup import install

    url = args.url or settings.opensearch_url
    if not url:
        raise ValueError("no OpenSearch endpoint: pass --url or set OPENSEARCH_URL")
    retention = {}
    for item in args.retention_days:
        kind, _, days = item.partition("=")
        retention[kind] = int(days)
    client, post = opensearch_for(settings, url)
    report = install(
        client,
        retention_days=retention,
        replicas=args.replicas,
        dashboards_url=args.dashboards_url or settings.opensearch_dashboards_url,
        http_post=post,
        writer_arns=tuple(args.writer_role_arn),
    )
    print(report.summary())
    return 0


def _cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "sleep-accel":
        return _evaluate_staging(args)
    from core.simulate import SimConfig, simulate_night
    from core.vitals_accuracy import bed_vitals_accuracy
    from sleepstack.demo import FIRST_NIGHT_T0_MS
    from sleepstack.rr_files import read_rr_ms

    rr = read_rr_ms(Path(args.rr)) if args.rr else None
    night = simulate_night(SimConfig("eval", FIRST_NIGHT_T0_MS, seed=args.seed, apnea_per_hour=3.0, rr_source_ms=rr))
    figures = {"rr_file": args.rr, "seed": args.seed, **bed_vitals_accuracy(night)}
    _print_figures(figures, as_json=args.json)
    return 0


def _evaluate_staging(args: argparse.Namespace) -> int:
    from core.stage_model import StageModel, load_model
    from sleepstack.staging_eval import cross_validate, evaluate

    if not args.dir:
        raise SystemExit("evaluate sleep-accel needs the dataset directory (heart_rate/ and labels/)")
    root = Path(args.dir)
    if args.cv is not None:
        figures = cross_validate(root, folds=args.cv)
    else:
        model = StageModel.from_json(Path(args.model).read_text()) if args.model else load_model()
        figures = evaluate(root, model)
    if args.json:
        print(json.dumps(figures))
    else:
        per_subject = figures.pop("per_subject")
        _print_figures(figures, as_json=False)
        for row in per_subject:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.staging_eval import train

    model = train(Path(args.data), seed=args.seed)
    out = Path(args.out)
    out.write_text(model.to_json())
    counts = model.training["class_counts"]
    print(f"wrote {out}: {model.name}, {len(model.training['subjects'])} subjects, epochs per stage {counts}")
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

    _batch_parsers(sub)
    _ingest_parsers(sub)
    return p


def _batch_parsers(sub: Any) -> None:
    """Batch layer, serving and model commands."""
    s = sub.add_parser("batch", help="nightly staging job on local Spark")
    bsub = s.add_subparsers(dest="action", required=True)
    r = bsub.add_parser("run")
    r.add_argument("--night", required=True, help="YYYY-MM-DD (the night's first noon), or 'yesterday'")
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

    s = sub.add_parser("catalog", help="table definitions generated from the contract (template, Athena DDL)")
    s.add_argument("--write-template", action="store_true", help="regenerate the Glue columns in the template")
    s.add_argument("--ddl", metavar="S3_ROOT", help="print Athena CREATE EXTERNAL TABLE statements for this root")
    s.set_defaults(func=_cmd_catalog)

    s = sub.add_parser("evaluate", help="measure accuracy and print figures")
    s.add_argument("what", choices=["vitals", "sleep-accel"], help="bed vitals vs simulator truth, or staging vs PSG")
    s.add_argument("dir", nargs="?", help="sleep-accel: dataset directory (heart_rate/, labels/)")
    s.add_argument(
        "--cv", type=int, help="sleep-accel: leave-subjects-out CV with this many folds (0: one per subject)"
    )
    s.add_argument("--model", help="sleep-accel: a model JSON file (default: the committed model)")
    s.add_argument("--rr", help="vitals: real RR series driving the simulated beats (li2024 CSV or ms per line)")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("train", help="train the staging model on a sleep-accel directory")
    s.add_argument("--data", default=str(DEFAULT_SLEEP_ACCEL), help="dataset directory (heart_rate/, labels/)")
    s.add_argument("--out", default=str(DEFAULT_MODEL_PATH), help="artefact path (JSON)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_train)


def _ingest_parsers(sub: Any) -> None:
    """``ble``, ``collect`` and ``bench`` sub-commands."""
    s = sub.add_parser("ble", help="decode Bluetooth payloads (hex)")
    s.add_argument("action", choices=["decode-hrm", "decode-bed"], help="0x2A37 Heart Rate Measurement or bed frame")
    s.add_argument("hex", help="payload as hex, e.g. 1648e803")
    s.set_defaults(func=_cmd_ble)

    s = sub.add_parser("collect", help="record BLE straps and bed sensors all night into the spool and Kinesis")
    s.add_argument("--scan", action="store_true", help="list nearby devices and exit")
    s.add_argument("--timeout", type=float, default=5.0, help="scan time, s")
    s.add_argument("--device", action="append", default=[], help="ADDR or ADDR=SUBJECT (repeatable)")
    s.add_argument("--subject", default="s001", help="subject of devices given without =SUBJECT")
    s.add_argument("--replay", action="append", default=[], help="JSON-lines recording to play (fake BLE backend)")
    s.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    s.add_argument("--max-spool-mib", type=int, default=2048, help="spool size bound, MiB")
    s.set_defaults(func=_cmd_collect)

    s = sub.add_parser("bench", help="benchmarks (print figures)")
    s.add_argument("which", choices=["ingest", "speed", "batch"])
    s.add_argument("--nights", default="10,100,1000", help="batch: subject-night counts to stage")
    s.add_argument("--query-subjects", type=int, default=100, help="batch: subjects in the query year")
    s.add_argument("--query-days", type=int, default=365, help="batch: nights per subject in the query year")
    s.add_argument("--records", type=int, help="records (ingest: 20,000; speed: one 10,000-record batch)")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="spool durability")
    s.add_argument("--latency-seconds", type=float, default=90.0, help="speed: real-time replay length (0: skip)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_bench)

    s = sub.add_parser("live", help="a subject's latest vitals and open alerts from the live store")
    s.add_argument("--subject", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_live)

    s = sub.add_parser("opensearch", help="install (or export) the OpenSearch templates, policies and dashboards")
    s.add_argument("action", choices=["setup", "export"])
    s.add_argument("--url", help="OpenSearch endpoint (default $OPENSEARCH_URL)")
    s.add_argument("--dashboards-url", help="OpenSearch Dashboards URL (default $OPENSEARCH_DASHBOARDS_URL)")
    s.add_argument("--retention-days", action="append", default=[], help="KIND=DAYS (vitals, alerts, samples)")
    s.add_argument("--replicas", type=int, default=1)
    s.add_argument(
        "--writer-role-arn",
        action="append",
        default=[],
        help="IAM role to map to the index-writer role (fine-grained access control; the speed-layer role)",
    )
    s.add_argument("--out", default="sleepstack-dashboards.ndjson", help="export: NDJSON file to write")
    s.set_defaults(func=_cmd_opensearch)

    s = sub.add_parser("package", help="build the Lambda zip and the Glue wheel and script (build/)")
    s.add_argument("--out", default="build", help="output directory")
    s.add_argument("--version", help="artefact version (default: the installed sleepstack's)")
    s.set_defaults(func=_cmd_package)


def _cmd_package(args: argparse.Namespace, settings: Settings) -> int:
    from importlib.metadata import version

    from sleepstack.package import package_all
    from sleepstack.settings import REPO_ROOT

    report = package_all(REPO_ROOT, Path(args.out), args.version or version("sleepstack"))
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args, Settings.from_env()))
    except (StackError, SleepstackError, PackageError, ValueError, KeyError) as exc:
        print(f"sleepstack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
