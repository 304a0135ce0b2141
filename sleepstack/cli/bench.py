"""``sleepstack bench ingest|speed|batch|dashboard|opensearch``: benchmarks that print figures."""

from __future__ import annotations

import argparse
from typing import Any

from sleepstack.cli._helpers import print_figures
from sleepstack.settings import Settings

__all__ = ["register"]


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.which == "speed":
        from sleepstack.bench.speed import bench_speed_latency, bench_speed_throughput

        figures = bench_speed_throughput(records=args.records or 10_000, rounds=args.rounds)
        if args.latency_seconds > 0:
            figures.update(bench_speed_latency(seconds=args.latency_seconds))
    elif args.which == "batch":
        from sleepstack.bench.batch import bench_batch

        counts = tuple(int(c) for c in args.nights.split(","))
        figures = bench_batch(
            counts, query_subjects=args.query_subjects, query_days=args.query_days, rounds=args.rounds
        )
    elif args.which == "opensearch":
        from sleepstack.bench.opensearch import bench_opensearch

        figures = bench_opensearch(settings, rounds=args.rounds)
    elif args.which == "dashboard":
        from sleepstack.bench.dashboard import bench_dashboard

        figures = bench_dashboard(requests=args.requests, loads=args.rounds + 2)
    else:
        from sleepstack.bench.ingest import bench_ingest

        figures = bench_ingest(records=args.records or 20_000, rounds=args.rounds, synchronous=args.synchronous)
    print_figures(figures, as_json=args.json)
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("bench", help="benchmarks (print figures)")
    s.add_argument("which", choices=["ingest", "speed", "batch", "dashboard", "opensearch"])
    s.add_argument("--requests", type=int, default=50, help="dashboard: timed requests per API route")
    s.add_argument("--nights", default="10,100,1000", help="batch: subject-night counts to stage")
    s.add_argument("--query-subjects", type=int, default=100, help="batch: subjects in the query year")
    s.add_argument("--query-days", type=int, default=365, help="batch: nights per subject in the query year")
    s.add_argument("--records", type=int, help="records (ingest: 20,000; speed: one 10,000-record batch)")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="spool durability")
    s.add_argument("--latency-seconds", type=float, default=90.0, help="speed: real-time replay length (0: skip)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_bench)
