"""Local stand-in for Kinesis Data Streams: the Kinesis API served by kinesalite.

kinesalite (npm, pinned in ``infra/local/package-lock.json``) runs on 127.0.0.1 and keeps
its streams on disk under ``$SLEEPSTACK_HOME/stream`` (LevelDB, through kinesalite's
``leveldown`` module), so acknowledged records survive restarts and crashes. Streams are
created with the names, shard counts and retention (``RetentionPeriodHours``: 168 h, as on
AWS) of ``infra/template.yaml``, and a stream an older home created with kinesalite's
default 24 h is brought to the template's retention at start; records older than the
retention are trimmed as they are read, as Kinesis does. The port is
chosen once and remembered (:attr:`local.home.Home.stream_port`), so a collector started
before a restart keeps sending to the same endpoint. The running server's pid and port
are in :attr:`local.home.Home.stream_server`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from core.errors import SleepstackError
from local.home import Home
from local.supervisor import pid_alive
from local.template import TEMPLATE_PATH, StreamSpec, load_template, stream_specs

__all__ = ["LOCAL_REGION", "KinesaliteServer", "StackError", "check_tools", "local_kinesis_client", "set_retention"]

#: The region label of every local stand-in (kinesalite accepts any; ARNs carry it).
LOCAL_REGION: Final = "us-east-1"
_NODE_DIR = Path(str(resources.files("infra") / "local"))
_SERVER_JS = _NODE_DIR / "kinesalite-server.js"


class StackError(SleepstackError):
    """The local stack cannot start or be reached; the message says what to do."""


def local_kinesis_client(endpoint: str, region: str = LOCAL_REGION) -> Any:
    """A boto3 Kinesis client for kinesalite at ``endpoint`` (dummy credentials)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "kinesis",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16),
        aws_access_key_id="local",  # kinesalite accepts any credentials
        aws_secret_access_key="local",  # noqa: S106
    )


def check_tools(*, java: bool = False) -> None:
    """Fail with an install hint when Node (and, for Spark, Java) is missing."""
    if shutil.which("node") is None:
        raise StackError(
            "Node.js is required for the local Kinesis stream (kinesalite): "
            "install Node 20, e.g. `apt-get install nodejs npm`"
        )
    if not (_NODE_DIR / "node_modules" / "kinesalite").is_dir():
        raise StackError("kinesalite is not installed: run `make setup` (npm ci --prefix infra/local)")
    if java and shutil.which("java") is None:
        raise StackError("Java 17 is required by PySpark: install it, e.g. `apt-get install openjdk-17-jre-headless`")


@dataclass
class KinesaliteServer:
    """The kinesalite server of one home, the local stack's stream: on disk when ``durable`` (the default)."""

    home: Home
    region: str = LOCAL_REGION
    durable: bool = True
    #: shifts the server's clock (ms): records' arrival times and the retention cutoff move with it.
    #: Tests use it to stand the stream a day or a week later than it is; 0 everywhere else.
    clock_skew_ms: int = 0

    @property
    def _state_file(self) -> Path:
        return self.home.stream_server

    @property
    def _port_file(self) -> Path:
        return self.home.stream_port

    @property
    def data_dir(self) -> Path:
        return self.home.stream_data

    @property
    def _log(self) -> Path:
        return self.home.log("kinesalite")

    def saved_port(self) -> int:
        """The port this home's stream listened on before (0: none yet)."""
        try:
            return int(json.loads(self._port_file.read_text())["port"])
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    def keep_port(self, port: int) -> None:
        """Pin this home's stream to ``port`` (the next start listens there); refuse another than the kept one."""
        saved = self.saved_port()
        if saved not in (0, port):
            raise StackError(f"this home's stream already listens on {saved}; collectors send there")
        self.home.root.mkdir(parents=True, exist_ok=True)
        self._port_file.write_text(json.dumps({"port": port}))

    def launch(self, port: int = 0, *, timeout_s: float = 15.0) -> tuple[subprocess.Popen[bytes], int]:
        """Start kinesalite on ``port`` (0: the saved one, else any free one); returns (process, port).

        The caller owns the process (the supervisor watches it); :meth:`up` is the
        stand-alone start. Fails with :class:`StackError` naming the cause within ``timeout_s``.
        """
        check_tools()
        port = port or self.saved_port()
        self.home.root.mkdir(parents=True, exist_ok=True)
        argv = ["node", str(_SERVER_JS), str(port)]
        if self.durable:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            argv.append(str(self.data_dir))
        if self.clock_skew_ms:
            argv.append(f"--clock-skew-ms={self.clock_skew_ms}")
        self._log.parent.mkdir(parents=True, exist_ok=True)
        log = self._log.open("ab")
        proc = subprocess.Popen(argv, cwd=_NODE_DIR, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        assert proc.stdout is not None  # noqa: S101 - Popen contract with stdout=PIPE
        deadline = time.monotonic() + timeout_s
        line = b""
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line:
                break
        if not line:
            proc.kill()
            proc.wait()
            err = self._log.read_text(errors="replace").strip().splitlines()
            raise StackError(f"kinesalite did not start on 127.0.0.1:{port}: {err[-1] if err else 'timed out'}")
        actual = int(json.loads(line)["port"])
        self.keep_port(actual)
        self._state_file.write_text(json.dumps({"pid": proc.pid, "port": actual}))
        return proc, actual

    def state(self) -> dict[str, Any] | None:
        if not self._state_file.exists():
            return None
        state: dict[str, Any] = json.loads(self._state_file.read_text())
        return state if pid_alive(int(state["pid"])) else None

    @property
    def endpoint(self) -> str:
        state = self.state()
        if state is None:
            raise StackError("the local stream is not running: start the stack with `sleepstack stack up`")
        return f"http://127.0.0.1:{state['port']}"

    def up(self, *, port: int = 0, environment: str = "dev", timeout_s: float = 15.0) -> str:
        """Start kinesalite alone (``port`` 0: the saved one or any free one) with the template's streams."""
        if (state := self.state()) is not None:
            return f"http://127.0.0.1:{state['port']}"
        _, actual = self.launch(port, timeout_s=timeout_s)
        endpoint = f"http://127.0.0.1:{actual}"
        self.create_streams(stream_specs(load_template(TEMPLATE_PATH), Environment=environment), endpoint)
        return endpoint

    def create_streams(self, specs: list[StreamSpec], endpoint: str) -> None:
        """Create the template's streams that are missing and give every one the template's retention."""
        client = local_kinesis_client(endpoint, self.region)
        existing = set(client.list_streams()["StreamNames"])
        for spec in specs:
            if spec.name not in existing:
                client.create_stream(StreamName=spec.name, ShardCount=spec.shard_count)
        for spec in specs:
            client.get_waiter("stream_exists").wait(
                StreamName=spec.name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
            )
            set_retention(client, spec.name, spec.retention_hours)

    def down(self) -> bool:
        """Stop the server; returns whether one was running."""
        state = self.state()
        self._state_file.unlink(missing_ok=True)
        if state is None:
            return False
        try:
            os.killpg(int(state["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True


def set_retention(client: Any, stream: str, hours: int) -> None:
    """Give ``stream`` a retention of ``hours`` (kinesalite, like Kinesis, creates streams with 24 h)."""
    summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    current = int(summary["RetentionPeriodHours"])
    if current < hours:
        client.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=hours)
    elif current > hours:
        client.decrease_stream_retention_period(StreamName=stream, RetentionPeriodHours=hours)
