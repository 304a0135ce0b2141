"""The scheduler service: the nightly batch at ``SLEEPSTACK_BATCH_AT``, and staging on request."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sleepstack.services.base import Service
from sleepstack.services.loop import IdlePoll, run_loop

__all__ = ["SchedulerService"]

#: Runs the scheduler remembers.
KEEP_RUNS = 20


class SchedulerService(Service):
    """Stages each night once it has closed, at ``SLEEPSTACK_BATCH_AT`` in the stack's time
    zone (late data is re-staged by the job itself), and whatever a
    :class:`local.control.StageRequest` asks for, each by running ``sleepstack batch run``
    in a child process (Spark's JVM is freed after). Its runs and the last request it served
    are its :class:`local.control.SchedulerState`.
    """

    name = "scheduler"

    def run(self) -> None:
        self.state = self.control.scheduler_state()
        hour, minute = (int(x) for x in self.settings.batch_at.split(":"))
        self.at = (hour, minute)
        # it reads its requests and the clock: a stage request waits at most settings.idle_poll_s
        run_loop(self.step, self.name, self.control, self.stop, poll=IdlePoll(idle_s=self.settings.idle_poll_s))

    def _run_batch(self, nights: str) -> dict[str, Any]:
        t0 = time.time()
        child = subprocess.Popen(
            [sys.executable, "-m", "sleepstack.cli", "batch", "run", "--night", nights],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while child.poll() is None:
            if self.stop():  # stopping: the job is rerun at the next start (staging is idempotent)
                child.terminate()
                child.wait()
                return {"nights": nights, "exit": None, "seconds": round(time.time() - t0, 1), "said": ["stopped"]}
            self.stop.wait(0.5)
        out_text, err_text = child.communicate()
        out = (out_text.strip() or err_text.strip()).splitlines()
        return {"nights": nights, "exit": child.returncode, "seconds": round(time.time() - t0, 1), "said": out[-1:]}

    def _record(self, run: dict[str, Any], **changes: Any) -> None:
        runs = (*self.state.runs[-(KEEP_RUNS - 1) :], run)
        self.state = dataclasses.replace(self.state, runs=runs, **changes)

    def step(self) -> dict[str, Any]:
        request = self.control.stage_request()
        if request is not None and request.requested_ms > (self.state.served_request_ms or 0):
            self._record(self._run_batch(request.nights), served_request_ms=request.requested_ms)
        local = datetime.now(tz=ZoneInfo(self.settings.tz))
        today = local.date().isoformat()
        if (local.hour, local.minute) >= self.at and self.state.last_scheduled_day != today:
            self._record(self._run_batch("yesterday"), last_scheduled_day=today)
        self.control.save_scheduler_state(self.state)
        nxt = datetime.combine(local.date(), datetime.min.time(), tzinfo=local.tzinfo) + timedelta(
            hours=self.at[0], minutes=self.at[1]
        )
        if self.state.last_scheduled_day == today:
            nxt += timedelta(days=1)
        return {
            "next_run": nxt.astimezone(UTC).isoformat(),
            "served_request_ms": self.state.served_request_ms,
            "last_run": (self.state.runs or (None,))[-1],
        }
