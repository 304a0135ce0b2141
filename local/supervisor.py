"""One supervisor for the local stack's services: start, watch, restart with backoff, stop.

Each service is a child process (its command line given by the composition root). The
supervisor restarts a service that exits or is killed, after an exponential backoff
(1 s doubling to 60 s; back to 1 s once it has stayed up a minute), and counts its
restarts. On SIGTERM it stops the services in reverse order of start, each with SIGTERM
(so a consumer checkpoints and the delivery flushes its buffers) and SIGKILL after a
grace period. Its state (``state_path``, :attr:`local.home.Home.supervisor_state`) is
rewritten atomically every half second: per service its pid, state, restarts, last exit
and start time. Each service writes its own heartbeat (:class:`local.control.Heartbeat`).

A child whose supervisor dies (kill -9) notices that its parent is gone and exits
(:func:`orphaned`), so a later ``stack up`` starts from a clean slate.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from local.control import write_json

__all__ = [
    "ServiceSpec",
    "Supervisor",
    "orphaned",
    "pid_alive",
    "wait_gone",
]

BACKOFF_BASE_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0
HEALTHY_AFTER_S: Final = 60.0  # a service up this long starts its backoff afresh
STOP_GRACE_S: Final = 30.0


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs; a child of this process that has exited is reaped, not taken for alive."""
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` has exited; whether it did within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def orphaned(parent_pid: int) -> bool:
    """Whether the supervisor that started this process is gone."""
    return os.getppid() != parent_pid


@dataclass
class ServiceSpec:
    """A service: how to start it, and (optionally) what to do once it is up (e.g. create streams)."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    after_start: Callable[[subprocess.Popen[bytes]], dict[str, Any]] | None = None
    #: the others read or write it (the stream, the live store's node): stopped after them
    backing: bool = False


@dataclass
class _Running:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    attempt: int = 0
    next_start: float = 0.0
    last_exit: int | None = None
    state: str = "starting"
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Supervisor:
    """Runs ``specs`` until SIGTERM/SIGINT; its state goes to ``state_path``."""

    def __init__(
        self, specs: Sequence[ServiceSpec], state_path: Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.services = [_Running(s) for s in specs]
        self.state_path = state_path
        self.clock = clock
        self._stopping = False

    def _start(self, svc: _Running) -> None:
        try:
            svc.proc = svc.spec.start()
            svc.info = svc.spec.after_start(svc.proc) if svc.spec.after_start else {}
            svc.started_at, svc.state, svc.error = self.clock(), "running", None
        except Exception as exc:  # noqa: BLE001 - a service that cannot start is retried, its reason kept
            if svc.proc is not None and svc.proc.poll() is None:
                svc.proc.kill()
            svc.proc, svc.state, svc.error = None, "backoff", f"{type(exc).__name__}: {exc}"
            self._schedule_restart(svc)

    def _schedule_restart(self, svc: _Running) -> None:
        if svc.started_at and self.clock() - svc.started_at >= HEALTHY_AFTER_S:
            svc.attempt = 0
        svc.next_start = self.clock() + min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**svc.attempt)
        svc.attempt += 1

    def _check(self, svc: _Running) -> None:
        if svc.proc is not None and (code := svc.proc.poll()) is not None:
            svc.last_exit, svc.proc, svc.state = code, None, "backoff"
            svc.restarts += 1
            self._schedule_restart(svc)
        if svc.proc is None and self.clock() >= svc.next_start:
            self._start(svc)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "state": "stopping" if self._stopping else "running",
            "updated_ms": int(self.clock() * 1000),
            "services": {
                s.spec.name: {
                    "pid": s.proc.pid if s.proc else None,
                    "state": s.state,
                    "restarts": s.restarts,
                    "last_exit": s.last_exit,
                    "started_ms": int(s.started_at * 1000) if s.started_at else None,
                    "error": s.error,
                    **s.info,
                }
                for s in self.services
            },
        }

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for svc in self.services:  # in order: the stream first, its consumers after it
            self._start(svc)
        while not self._stopping:
            for svc in self.services:
                self._check(svc)
            write_json(self.state_path, self.status())
            time.sleep(0.5)
        self._stop_all()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _stop_all(self) -> None:
        """SIGTERM the consumers together, then the backing services (stream, node) they use."""
        consumers = [svc for svc in self.services if not svc.spec.backing]
        backing = [svc for svc in self.services if svc.spec.backing]
        for group in (consumers, backing):
            running = [(svc, svc.proc) for svc in group if svc.proc is not None]
            for _, proc in running:
                proc.terminate()
            deadline = time.monotonic() + STOP_GRACE_S
            for svc, proc in running:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()  # safe: every service is built to survive kill -9
                    proc.wait()
                svc.last_exit, svc.proc, svc.state = proc.returncode, None, "stopped"
            write_json(self.state_path, self.status())
        status = self.status()
        status["state"] = "stopped"
        write_json(self.state_path, status)
