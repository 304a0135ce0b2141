"""``sleepstack bench ingest|speed|batch|dashboard|opensearch|lambda|idle|notify``: benchmarks that print figures."""

from __future__ import annotations

import argparse
from typing import Any

from sleepstack.cli._helpers import print_figures
from sleepstack.cli.errors import UsageError
from sleepstack.settings import Settings

__all__ = ["register"]


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.which == "speed":
        from sleepstack.bench.speed import bench_speed_latency, bench_speed_throughput

        figures = bench_speed_throughput(records=args.records, rounds=args.rounds)
        if args.latency_seconds > 0:
            figures.update(bench_speed_latency(seconds=args.latency_seconds))
    elif args.which == "batch":
        from sleepstack.bench.batch import bench_batch

        figures = bench_batch(
            args.nights, query_subjects=args.query_subjects, query_days=args.query_days, rounds=args.rounds
        )
    elif args.which == "opensearch":
        from sleepstack.bench.opensearch import bench_opensearch

        figures = bench_opensearch(settings, rounds=args.rounds)
    elif args.which == "idle":
        from sleepstack.bench.idle import bench_idle

        figures = bench_idle(rounds=args.rounds, latency_seconds=args.latency_seconds)
    elif args.which == "notify":
        from sleepstack.bench.notify import bench_notify

        if args.episodes < 1:
            raise UsageError("--episodes", f"must be at least 1, not {args.episodes}")
        figures = bench_notify(episodes=args.episodes, seed=args.seed)
    elif args.which == "lambda":
        from sleepstack.bench.lambda_runtime import bench_lambda

        figures = bench_lambda(rounds=args.rounds)
    elif args.which == "dashboard":
        from sleepstack.bench.dashboard import bench_dashboard

        figures = bench_dashboard(
            requests=args.requests,
            loads=args.rounds + 2,
            concurrent_seconds=args.concurrent_seconds,
            clients=args.clients,
            load_seconds=args.load_seconds,
        )
    else:
        from sleepstack.bench.ingest import bench_ingest

        figures = bench_ingest(records=args.records, rounds=args.rounds, synchronous=args.synchronous)
    print_figures(figures, as_json=args.json)
    return 0


def _counts(text: str) -> tuple[int, ...]:
    """``--nights``: positive whole numbers, comma-separated."""
    try:
        counts = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every count must be 1 or more")
    return counts


def register(sub: Any) -> None:
    s = sub.add_parser("bench", help="benchmarks (print figures)")
    which = s.add_subparsers(dest="which", required=True, metavar="BENCHMARK")

    def bench(name: str, help_text: str, *, rounds: int = 3) -> argparse.ArgumentParser:
        b: argparse.ArgumentParser = which.add_parser(name, help=help_text)
        b.add_argument("--rounds", type=int, default=rounds, help="repetitions; figures are medians")
        b.add_argument("--json", action="store_true", help="one JSON object")
        return b

    b = bench("ingest", "collector -> spool -> sender -> stream: records/s, PUT units and bytes per bed-night")
    b.add_argument("--records", type=int, default=20_000, help="records to send")
    b.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="spool durability")
    b = bench("speed", "the Lambda handler's throughput per batch, and end-to-end latency of a real-time replay")
    b.add_argument("--records", type=int, default=10_000, help="records in the timed batch")
    b.add_argument("--latency-seconds", type=float, default=90.0, help="real-time replay length (0: skip)")
    b = bench("batch", "the nightly job's nights/min, and the serving queries' latency on a year of nights")
    b.add_argument(
        "--nights", type=_counts, default=(10, 100, 1000), help="subject-night counts to stage, comma-separated"
    )
    b.add_argument("--query-subjects", type=int, default=100, help="subjects in the query year")
    b.add_argument("--query-days", type=int, default=365, help="nights per subject in the query year")
    b = bench("dashboard", "the dashboard API's latency per route and its pages' load time")
    b.add_argument("--requests", type=int, default=50, help="timed requests per API route")
    b.add_argument(
        "--concurrent-seconds",
        type=float,
        default=10.0,
        help="how long 10 clients poll the live view, alone and beside a slow night reader",
    )
    b.add_argument(
        "--clients", type=int, default=200, help="signed-in users polling once a second in the load run (0: skip)"
    )
    b.add_argument("--load-seconds", type=float, default=10.0, help="how long each load run lasts")
    bench("opensearch", "bulk indexing and live queries against a real OpenSearch node")
    b = bench("idle", "the idle stack's CPU and epoch-end -> queryable latency: fixed 0.2-s polls vs backing off")
    b.add_argument("--latency-seconds", type=float, default=60.0, help="real-time replay length per policy")
    bench("lambda", "the Lambda zip in AWS's runtime emulator: cold start (init), invocations and peak memory")
    b = bench("notify", "episode open -> message accepted by a loopback SMTP server / webhook: p50, p95", rounds=1)
    b.add_argument("--episodes", type=int, default=20, help="episodes written, one at a time")
    b.add_argument("--seed", type=int, default=0, help="seed of the gaps between episodes")
    s.set_defaults(func=_cmd_bench)
