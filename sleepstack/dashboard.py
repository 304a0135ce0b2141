"""The dashboard server: its token, where it may listen, and uvicorn serving the app.

* **Token.** One random token per ``SLEEPSTACK_HOME`` (``dashboard/token``, owner-only),
  made at first start; the address the stack prints carries it once, then a cookie does
  (:mod:`serving.web.auth`).
* **Where.** 127.0.0.1 by default. Any other address needs an explicit ``--host`` and a
  TLS certificate and key, or the server refuses to start and says why.
* **What it reads.** The live store's queries and the SQL engine from :mod:`sleepstack.wiring`
  (the embedded stores locally, OpenSearch at ``OPENSEARCH_URL``, Athena on AWS). The local
  DuckDB engine is reopened when the curated tables change, so a night staged while the
  dashboard runs shows without a restart.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import ipaddress
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from batch_layer.stage_models import model_cards
from core.errors import ConfigError
from local.control import ControlPlane
from serving.live_queries import LiveQueries
from serving.sql_engine import SqlEngine
from sleepstack import wiring
from sleepstack.settings import Settings

__all__ = [
    "DEFAULT_HOST",
    "Listen",
    "ack_key",
    "build_app",
    "check_listen",
    "dashboard_url",
    "read_token",
    "serve",
    "serving",
    "token",
]

log = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
_CURATED: Final = ("night_summary", "epoch_stages")


@dataclass(frozen=True)
class Listen:
    """Where the server listens: host, port (0: any free one), TLS files (both or neither)."""

    host: str = DEFAULT_HOST
    port: int = 8787
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: the port was asked for explicitly: taken is an error (otherwise a free one is used)
    port_required: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def _token_path(settings: Settings) -> Path:
    return settings.paths.dashboard_token


def read_token(settings: Settings) -> str | None:
    return _read_secret(_token_path(settings))


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _secret(path: Path, new: str) -> str:
    """The secret in ``path``, written owner-only with ``new`` if there is none yet."""
    if (found := _read_secret(path)) is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):  # two starting at once: the first one's secret wins
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new + "\n")
    return _read_secret(path) or new


def token(settings: Settings, *, keep: str | None = None) -> str:
    """This home's dashboard token, made (owner-only) at first use; ``keep``: the value to make it with."""
    return _secret(_token_path(settings), keep or secrets.token_urlsafe(32))


def ack_key(settings: Settings) -> bytes:
    """This home's key for signing one-click acknowledgement links (:mod:`access.ack_links`):
    256 random bits, made owner-only (``dashboard/ack-key``) at first use and kept, so links
    sent before a restart still verify. Deleting the file invalidates every link sent."""
    return bytes.fromhex(_secret(settings.paths.ack_key, secrets.token_hex(32)))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(listen: Listen) -> None:
    """Refuse a non-loopback address without TLS, and TLS files that are missing or unpaired."""
    if (listen.tls_cert is None) != (listen.tls_key is None):
        raise ConfigError("--tls-cert/--tls-key", "must be given together")
    for arg, path in (("--tls-cert", listen.tls_cert), ("--tls-key", listen.tls_key)):
        if path is not None and not path.is_file():
            raise ConfigError(arg, f"{path} is not a file")
    if not _loopback(listen.host) and not listen.tls:
        raise ConfigError(
            "--host",
            f"{listen.host} is reachable from other machines and the dashboard serves health data:"
            " give --tls-cert and --tls-key to serve it over HTTPS, or keep the default 127.0.0.1",
        )


class _FreshSql:
    """The local SQL engine, reopened when the curated tables change (it reads a snapshot)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: SqlEngine | None = None
        self._signature: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> SqlEngine:
        from local.duckdb_sql import lake_signature

        with self._lock:
            now = lake_signature(self.settings.lake, _CURATED)
            if self._engine is None or now != self._signature:
                self._engine, self._signature = wiring.sql_engine(self.settings), now
            return self._engine


def build_app(settings: Settings, *, secure_cookie: bool = False, live: LiveQueries | None = None) -> Any:
    """The dashboard's ASGI app over the settings' live store (or ``live``) and lake."""
    from serving.web.api import ApiContext
    from serving.web.app import create_app

    if settings.target == "aws":
        engine = wiring.sql_engine(settings)
        sql: Callable[[], SqlEngine] = lambda: engine  # noqa: E731 - Athena reads the live catalog
    else:
        sql = _FreshSql(settings)
    registry = wiring.registry(settings)  # one store for the app's life (SQLite: one connection)
    ctx = ApiContext(
        live or wiring.live_queries(settings),
        sql,
        settings.tz,
        model_cards(),
        lambda: registry,
        accounts=wiring.accounts(settings),
        audit=wiring.audit_log(settings),
        acks=wiring.alert_acks(settings),
        ack_key=ack_key(settings),
    )
    return create_app(ctx, token(settings), secure_cookie=secure_cookie)


def _bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or listen.port_required or listen.port == 0:
            sock.close()
            raise ConfigError("--port", f"cannot listen on {listen.host}:{listen.port}: {exc.strerror}") from None
        log.warning("port %d is taken; the dashboard listens on a free port instead", listen.port)
        sock.bind((listen.host, 0))
    except socket.gaierror as exc:
        sock.close()
        raise ConfigError("--host", f"{listen.host!r} is not an address of this machine: {exc}") from None
    sock.listen(128)
    return sock


def _address(listen: Listen, port: int) -> str:
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    return f"{listen.scheme}://{host}:{port}"


def serve(
    settings: Settings,
    listen: Listen,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Serve the dashboard until SIGTERM/SIGINT or ``stop()``; ``on_ready(address)`` once listening
    (the address without the token) and again every second while it serves."""
    import uvicorn

    check_listen(listen)
    app = build_app(settings, secure_cookie=listen.tls)
    sock = _bind(listen)
    address = _address(listen, sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # our access log names routes, never ids or the token
        lifespan="off",
        ssl_certfile=str(listen.tls_cert) if listen.tls_cert else None,
        ssl_keyfile=str(listen.tls_key) if listen.tls_key else None,
        server_header=False,
    )
    server = uvicorn.Server(config)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(1.0 if server.started else 0.05):
            if server.started and on_ready is not None:
                on_ready(address)
            if stop is not None and stop():
                server.should_exit = True

    watcher = threading.Thread(target=watch, name="dashboard-watch", daemon=True)
    watcher.start()
    # the imported libraries (pandas, DuckDB, FastAPI) are millions of long-lived objects: out of
    # the collector's sight, a full collection no longer walks them (it stalled a request by ~70 ms)
    gc.freeze()
    log.info("dashboard listening on %s", address)
    try:
        server.run(sockets=[sock])
    finally:
        done.set()
        sock.close()


@contextlib.contextmanager
def serving(settings: Settings, listen: Listen, *, timeout_s: float = 30.0) -> Iterator[str]:
    """The dashboard served from a thread of this process (tests, benchmarks); yields its address."""
    ready, stop = threading.Event(), threading.Event()
    where: dict[str, str] = {}

    def on_ready(address: str) -> None:
        where["address"] = address
        ready.set()

    failed: list[BaseException] = []

    def run() -> None:
        try:
            serve(settings, listen, on_ready=on_ready, stop=stop.is_set)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="dashboard", daemon=True)
    thread.start()
    if not ready.wait(timeout_s) or failed:
        stop.set()
        raise failed[0] if failed else ConfigError("the dashboard", f"did not start within {timeout_s:.0f} s")
    try:
        yield where["address"]
    finally:
        stop.set()
        thread.join(timeout_s)


def dashboard_url(settings: Settings) -> str | None:
    """The running stack's dashboard address with its token (what a person opens), if it serves."""
    beat = ControlPlane(settings.paths).heartbeat("dashboard")
    address, tok = beat.url if beat else None, read_token(settings)
    if not address or not tok:
        return None
    return f"{address}/?token={tok}"
