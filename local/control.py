"""The local stack's control plane: the typed messages its processes exchange, read and written here only.

The processes of a local stack (the supervisor, its services, and the commands a user
runs) coordinate through small JSON files under ``<home>/run`` (:class:`local.home.Home`),
each replaced atomically (write, rename), so a reader never sees half a message and a
``kill -9`` never leaves one:

* :class:`Heartbeat` — each service, every step: its pid, the time, its state
  (``running``, ``stalled`` with the error, ``stopped``), its figures, and for the
  dashboard its address;
* :class:`FlushRequest` — ``stack wait`` asks the delivery to flush what it buffers;
* :class:`StageRequest` — ``stack stage`` asks the scheduler to stage nights now;
* :class:`SchedulerState` — the scheduler's runs, and the last request it served (what
  ``stack stage`` waits for);
* the supervisor's own state (:func:`write_json` of :meth:`local.supervisor.Supervisor.status`).

Every message carries its ``kind`` and a ``version``; a reader refuses another version
with a :class:`ControlError` naming the file (a stack started by another release), and
ignores a file that is missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

from core.errors import SleepstackError
from local.home import Home

__all__ = [
    "CONTROL_VERSION",
    "ControlError",
    "ControlPlane",
    "FlushRequest",
    "Heartbeat",
    "SchedulerState",
    "StageRequest",
    "read_json",
    "write_json",
]

#: Version of every control message this release writes and reads.
CONTROL_VERSION: Final = 1


class ControlError(SleepstackError):
    """A control file under ``<home>/run`` is not a message this release can read."""


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Replace ``path`` with ``obj`` as JSON atomically (write, fsync-free rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` when there is none (yet)."""
    try:
        out: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Heartbeat:
    """A service's report of itself; ``figures`` are its own counters (records, lag, ...)."""

    KIND: ClassVar[str] = "heartbeat"

    service: str
    pid: int
    at_ms: int
    state: str  # running | stalled | stopped
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class FlushRequest:
    """Flush everything buffered that arrived before ``requested_ms``."""

    KIND: ClassVar[str] = "flush-request"

    requested_ms: int


@dataclass(frozen=True)
class StageRequest:
    """Stage ``nights`` (``yesterday`` or ``YYYY-MM-DD[,...]``) now."""

    KIND: ClassVar[str] = "stage-request"

    requested_ms: int
    nights: str


@dataclass(frozen=True)
class SchedulerState:
    """The scheduler's memory: the day it last ran on schedule, the last request it served,
    its last 20 runs (``{"nights", "exit", "seconds", "said"}``)."""

    KIND: ClassVar[str] = "scheduler-state"

    last_scheduled_day: str | None = None
    served_request_ms: int | None = None
    runs: tuple[dict[str, Any], ...] = ()


Message = Heartbeat | FlushRequest | StageRequest | SchedulerState
M = TypeVar("M", Heartbeat, FlushRequest, StageRequest, SchedulerState)


def _save(path: Path, msg: Message) -> None:
    body = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    body = {k: list(v) if isinstance(v, tuple) else v for k, v in body.items()}
    write_json(path, {"kind": msg.KIND, "version": CONTROL_VERSION, **body})


def _load(path: Path, cls: type[M]) -> M | None:
    obj = read_json(path)
    if obj is None:
        return None
    kind, version = obj.pop("kind", None), obj.pop("version", None)
    if kind != cls.KIND or version != CONTROL_VERSION:
        raise ControlError(
            f"{path} is not a {cls.KIND} message of version {CONTROL_VERSION} (kind {kind!r}, version {version!r}):"
            " a stack started by another release? stop it (sleepstack stack down) and start it again"
        )
    names = {f.name for f in dataclasses.fields(cls)}
    if unknown := obj.keys() - names:
        raise ControlError(f"{path}: unknown field {sorted(unknown)[0]!r} in a {cls.KIND}")
    if "runs" in obj:
        obj["runs"] = tuple(obj["runs"])
    return cls(**obj)


@dataclass(frozen=True)
class ControlPlane:
    """The control messages of one home."""

    home: Home

    # heartbeats
    def beat(
        self, service: str, state: str, *, error: str | None = None, url: str | None = None, **figures: Any
    ) -> Heartbeat:
        msg = Heartbeat(service, os.getpid(), _now_ms(), state, figures, error, url)
        _save(self.home.heartbeat(service), msg)
        return msg

    def heartbeat(self, service: str) -> Heartbeat | None:
        return _load(self.home.heartbeat(service), Heartbeat)

    # requests
    def request_flush(self, at_ms: int | None = None) -> FlushRequest:
        msg = FlushRequest(_now_ms() if at_ms is None else at_ms)
        _save(self.home.flush_request, msg)
        return msg

    def flush_request(self) -> FlushRequest | None:
        return _load(self.home.flush_request, FlushRequest)

    def request_stage(self, nights: str, at_ms: int | None = None) -> StageRequest:
        msg = StageRequest(_now_ms() if at_ms is None else at_ms, nights)
        _save(self.home.stage_request, msg)
        return msg

    def stage_request(self) -> StageRequest | None:
        return _load(self.home.stage_request, StageRequest)

    # the scheduler's state
    def scheduler_state(self) -> SchedulerState:
        return _load(self.home.scheduler_state, SchedulerState) or SchedulerState()

    def save_scheduler_state(self, state: SchedulerState) -> None:
        _save(self.home.scheduler_state, state)

    # the supervisor's state (its own shape: :meth:`local.supervisor.Supervisor.status`)
    def supervisor_state(self) -> dict[str, Any] | None:
        return read_json(self.home.supervisor_state)
