"""Run the packaged Lambda zip as Lambda does: AWS's Runtime Interface Emulator (RIE) and ``awslambdaric``.

* :func:`build_emulator` builds ``aws-lambda-rie`` from the Go module proxy
  (:data:`RIE_MODULE` at :data:`RIE_VERSION`) into ``build/rie/`` once (``go install``).
* :func:`runtime_dir` installs what the python3.11 managed runtime provides besides the
  standard library, for the Lambda platform (manylinux2014 x86_64 wheels), into
  ``build/lambda-runtime/`` once: the runtime interface client and the SDK
  (:data:`RUNTIME_PACKAGES`; the zip leaves boto3/botocore to the runtime).
* :class:`EmulatedFunction` starts the emulator on loopback with the unzipped package as
  the task root and ``python -S -m awslambdaric <handler>`` as the bootstrap: no site
  packages, only the task root and the runtime directory on ``PYTHONPATH``, as on Lambda.
  :meth:`EmulatedFunction.invoke` posts an event over HTTP to the emulator's invoke
  endpoint and returns the function's response.

Figures: the emulator's ``INIT REPORT`` line gives the init phase (runtime start, import of
the handler module; its ``REPORT`` line's ``Init Duration`` stops earlier in this version)
and each ``REPORT`` line an invocation's ``Duration``. Its ``Max Memory Used`` only echoes the
configured memory size (the emulator's source says so), so the memory figure here is the
runtime process's peak resident set (``VmHWM``), read before it stops.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from core.errors import SleepstackError

__all__ = [
    "RIE_MODULE",
    "RIE_VERSION",
    "RUNTIME_PACKAGES",
    "EmulatedFunction",
    "EmulatorError",
    "Report",
    "build_emulator",
    "runtime_dir",
]

RIE_MODULE: Final = "github.com/aws/aws-lambda-runtime-interface-emulator"
#: the version the Go module proxy serves (its newest; there are no tagged releases of the module)
RIE_VERSION: Final = "v0.0.0-20261030222936-bef5c4ba774d"
#: what the python3.11 runtime brings: its runtime interface client, and the SDK the zip leaves out
RUNTIME_PACKAGES: Final = ("awslambdaric==4.2.2", "boto3==1.40.4", "botocore==1.40.4")
_INIT_REPORT: Final = re.compile(r"INIT REPORT\(durationMs: ([\d.]+)\)")
_REPORT: Final = re.compile(r"REPORT RequestId: (\S+)\s+(?:Init Duration: ([\d.]+) ms\s+)?Duration: ([\d.]+) ms")


class EmulatorError(SleepstackError):
    """The emulator could not be built, or the function did not run; the message says what refused."""


def build_emulator(build: Path, *, go: str | None = None) -> Path:
    """``build/rie/aws-lambda-rie``, built by ``go install`` from the module proxy unless already there."""
    out_dir = build / "rie"
    binary = out_dir / "aws-lambda-rie"
    stamp = out_dir / "version"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == RIE_VERSION:
        return binary
    go = go or shutil.which("go")
    if go is None:
        raise EmulatorError("Go is needed to build the Lambda Runtime Interface Emulator: apt-get install golang-go")
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        # env(1) adds GOBIN to the inherited environment (Go's proxy and caches stay as they are)
        ["env", f"GOBIN={out_dir.resolve()}", go, "install", f"{RIE_MODULE}/cmd/aws-lambda-rie@{RIE_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not binary.exists():
        raise EmulatorError(f"go install {RIE_MODULE}@{RIE_VERSION} refused:\n{done.stderr.strip()[-2000:]}")
    stamp.write_text(RIE_VERSION + "\n")
    return binary


def runtime_dir(build: Path) -> Path:
    """``build/lambda-runtime``: :data:`RUNTIME_PACKAGES` as wheels for the Lambda platform (PyPI), once."""
    target = build / "lambda-runtime"
    stamp = target / ".packages"
    wanted = "\n".join(RUNTIME_PACKAGES) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return target
    from sleepstack.package import pip_install_for_lambda

    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    pip_install_for_lambda(RUNTIME_PACKAGES, target)
    stamp.write_text(wanted)
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Report:
    """One invocation as the emulator reported it."""

    request_id: str
    duration_ms: float
    init_ms: float | None  # only on the invocation that started the runtime (the cold start)


@dataclass
class EmulatedFunction:
    """One execution environment: the emulator running ``handler`` from ``task_root`` with ``runtime``."""

    emulator: Path
    task_root: Path
    runtime: Path
    handler: str
    env: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 1024
    timeout_s: int = 120
    log: Path | None = None
    reports: list[Report] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    _proc: subprocess.Popen[bytes] | None = None
    _port: int = 0
    _out: Any = None

    def __enter__(self) -> EmulatedFunction:
        self._port = _free_port()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "LAMBDA_RUNTIME_DIR": str(self.runtime),
            "PYTHONPATH": f"{self.task_root}:{self.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": "sleepstack-emulated",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout_s),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            **self.env,
        }
        python = Path(sys.base_prefix) / "bin" / "python3.11"
        if not python.exists():
            python = Path(sys.executable)
        argv = [
            str(self.emulator),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{self._port}",
            "--runtime-api-address",
            f"127.0.0.1:{_free_port()}",
            # -S: no site packages (neither this venv's nor the system's); PYTHONPATH only
            str(python),
            "-S",
            "-m",
            "awslambdaric",
            self.handler,
        ]
        self._out = (self.log or self.task_root.parent / "rie.log").open("wb")
        self._proc = subprocess.Popen(
            argv, cwd=self.task_root, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmulatorError(f"the emulator exited ({self._proc.returncode}): {self.log_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise EmulatorError("the emulator did not listen within 10 s")

    def log_text(self) -> str:
        if self._out is not None and not self._out.closed:
            self._out.flush()
        path = self.log or self.task_root.parent / "rie.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def invoke(self, event: dict[str, Any]) -> Any:
        """Post ``event`` to the emulator as Lambda's invoke API would; the function's response (JSON)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self._port}/2015-03-31/functions/function/invocations",
            data=json.dumps(event).encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s + 10) as resp:  # noqa: S310
            body = resp.read()
        self._note_memory()
        self._read_reports()
        return json.loads(body) if body else None

    def _runtime_pids(self) -> list[int]:
        if self._proc is None:
            return []
        pids: list[int] = []
        for children in Path(f"/proc/{self._proc.pid}/task").glob("*/children"):
            try:
                pids += [int(p) for p in children.read_text().split()]
            except OSError:
                continue
        return pids

    def _note_memory(self) -> None:
        for pid in self._runtime_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if m:
                self.peak_rss_mb = max(self.peak_rss_mb, int(m.group(1)) / 1024)

    def _read_reports(self) -> None:
        deadline = time.monotonic() + 2.0
        while True:
            found = [
                Report(m.group(1), float(m.group(3)), float(m.group(2)) if m.group(2) else None)
                for m in _REPORT.finditer(self.log_text())
            ]
            if len(found) > len(self.reports) or time.monotonic() > deadline:
                self.reports = found
                return
            time.sleep(0.02)

    @property
    def init_ms(self) -> float | None:
        """The init phase (runtime start to its first request for work), from the emulator's own
        ``INIT REPORT`` line: the ``Init Duration`` of its ``REPORT`` line stops before the runtime
        has imported the handler in this version."""
        m = _INIT_REPORT.search(self.log_text())
        if m:
            return float(m.group(1))
        return next((r.init_ms for r in self.reports if r.init_ms is not None), None)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._out is not None:
            self._out.close()
