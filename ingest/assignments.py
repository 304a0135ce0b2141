"""Which subject a device's notification belongs to, from the registry, cached for the collector.

The collector resolves every notification's subject at receive time (its device time on
the collector's clock) through :class:`AssignmentCache`: the registry's assignments are
read once and then again every ``refresh_s`` seconds (30 by default, so a change reaches
a running collector within a minute). When the registry cannot be read, the last
assignments read are kept and the failure is counted: an offline collector keeps
recording. A notification of a device with no assignment at that time is not collected
(the collector counts it per device as ``unassigned``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.errors import SleepstackError
from core.registry import Assignment, AssignmentIndex

__all__ = ["AssignmentCache"]

log = logging.getLogger(__name__)


@dataclass
class AssignmentCache:
    """``load`` reads every assignment (e.g. ``RegistryStore.assignments``)."""

    load: Callable[[], Sequence[Assignment]]
    refresh_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    refresh_failures: int = 0
    _index: AssignmentIndex | None = field(default=None, init=False)
    _read_at: float = field(default=float("-inf"), init=False)

    def refresh(self) -> None:
        """Read the assignments now; on failure keep the last ones (counted, logged by type)."""
        self._read_at = self.clock()
        try:
            self._index = AssignmentIndex(self.load())
        except (SleepstackError, OSError) as exc:
            self.refresh_failures += 1
            log.warning("registry unreadable (%s); keeping the assignments read before", type(exc).__name__)
            if self._index is None:
                raise

    def _current(self) -> AssignmentIndex:
        if self._index is None or self.clock() - self._read_at >= self.refresh_s:
            self.refresh()
        assert self._index is not None  # noqa: S101 - refresh() either sets it or raises
        return self._index

    def subject_at(self, device: str, t_ms: int) -> str | None:
        return self._current().subject_at(device, t_ms)

    def ever_assigned(self, device: str) -> bool:
        """Whether the registry has any assignment of ``device`` (a replay's device may be played at any time)."""
        return device in self._current().devices()
