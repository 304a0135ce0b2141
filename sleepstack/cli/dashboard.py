"""Commands for whoever reads the nights: ``dashboard`` (serve it alone) and ``report``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sleepstack.cli._helpers import NIGHT_HELP
from sleepstack.settings import Settings

__all__ = ["register"]


def _cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.dashboard import DEFAULT_HOST, Listen, check_listen, serve, token

    listen = Listen(
        host=args.host,
        port=settings.dashboard_port if args.port is None else args.port,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        port_required=args.port is not None,
    )
    check_listen(listen)
    shown = {"done": False}

    def ready(address: str) -> None:
        if not shown["done"]:
            shown["done"] = True
            print(f"dashboard: {address}/?token={token(settings)}", flush=True)
            if args.host != DEFAULT_HOST:
                print(f"listening on {args.host} over HTTPS; anyone with the address above can read the data")

    serve(settings, listen, on_ready=ready)
    return 0


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.report import write_report

    out = Path(args.out or f"sleepstack-night-{args.subject}-{args.night}.html")
    for path in write_report(settings, args.subject, args.night, out, pdf=args.pdf):
        print(f"wrote {path}")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("dashboard", help="serve the web dashboard alone (the stack runs it too)")
    s.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; not loopback needs TLS (default 127.0.0.1)"
    )
    s.add_argument("--port", type=int, help="port (default $SLEEPSTACK_DASHBOARD_PORT or 8787; 0: any free one)")
    s.add_argument("--tls-cert", help="TLS certificate (PEM), required off loopback")
    s.add_argument("--tls-key", help="TLS private key (PEM), required off loopback")
    s.set_defaults(func=_cmd_dashboard)

    s = sub.add_parser("report", help="a night's self-contained HTML report (and PDF) from the curated tables")
    s.add_argument("--subject", required=True, help="the subject's pseudonymous id")
    s.add_argument("--night", required=True, help=NIGHT_HELP)
    s.add_argument("--out", help="HTML file to write (default sleepstack-night-SUBJECT-NIGHT.html)")
    s.add_argument("--pdf", action="store_true", help="also print it to PDF (the same name, .pdf) with Chromium")
    s.set_defaults(func=_cmd_report)
