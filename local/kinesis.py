"""Start and stop the local embedded stack: the Kinesis API served by kinesalite.

kinesalite (npm, pinned in ``infra/local/package-lock.json``) runs in memory on
127.0.0.1; streams are created with the names and shard counts of
``infra/template.yaml``. The running stack's endpoint is kept in ``$SLEEPSTACK_HOME/stack.json``.
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
from local.template import TEMPLATE_PATH, StreamSpec, load_template, stream_specs

__all__ = ["LOCAL_REGION", "LocalStack", "StackError", "check_tools", "local_kinesis_client"]

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
class LocalStack:
    home: Path
    region: str = LOCAL_REGION

    @property
    def _state_file(self) -> Path:
        return self.home / "stack.json"

    def state(self) -> dict[str, Any] | None:
        if not self._state_file.exists():
            return None
        state: dict[str, Any] = json.loads(self._state_file.read_text())
        try:
            os.kill(int(state["pid"]), 0)
        except (ProcessLookupError, PermissionError):
            return None
        return state

    @property
    def endpoint(self) -> str:
        state = self.state()
        if state is None:
            raise StackError("the local stack is not running: start it with `sleepstack stack up`")
        return f"http://127.0.0.1:{state['port']}"

    def up(self, *, port: int = 0, environment: str = "dev", timeout_s: float = 15.0) -> str:
        """Start kinesalite (``port`` 0: any free port) and create the template's streams."""
        check_tools()
        if (state := self.state()) is not None:
            return f"http://127.0.0.1:{state['port']}"
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / "kinesalite.log").open("wb")
        proc = subprocess.Popen(
            ["node", str(_SERVER_JS), str(port)],
            cwd=_NODE_DIR,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        assert proc.stdout is not None  # noqa: S101 - Popen contract with stdout=PIPE
        deadline = time.monotonic() + timeout_s
        line = b""
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line:
                break
        if not line:
            proc.kill()
            err = (self.home / "kinesalite.log").read_text(errors="replace").strip()
            raise StackError(f"kinesalite did not start on 127.0.0.1:{port}: {err or 'timed out'}")
        actual = int(json.loads(line)["port"])
        self._state_file.write_text(json.dumps({"pid": proc.pid, "port": actual}))
        endpoint = f"http://127.0.0.1:{actual}"
        self.create_streams(stream_specs(load_template(TEMPLATE_PATH), Environment=environment), endpoint)
        return endpoint

    def create_streams(self, specs: list[StreamSpec], endpoint: str) -> None:
        client = local_kinesis_client(endpoint, self.region)
        existing = set(client.list_streams()["StreamNames"])
        for spec in specs:
            if spec.name not in existing:
                client.create_stream(StreamName=spec.name, ShardCount=spec.shard_count)
        for spec in specs:
            client.get_waiter("stream_exists").wait(
                StreamName=spec.name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
            )

    def down(self) -> bool:
        """Stop the stack; returns whether one was running."""
        state = self.state()
        self._state_file.unlink(missing_ok=True)
        if state is None:
            return False
        try:
            os.killpg(int(state["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True
