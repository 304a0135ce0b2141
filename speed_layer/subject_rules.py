"""Each subject's alert thresholds: the defaults with the registry's overrides, cached.

The registry (:mod:`registry.store`) keeps per-subject overrides of
:class:`core.live.alerts.AlertRules` (e.g. a higher ``hr_high_bpm`` for a patient whose
resting rate runs high). The speed layer reads them through an injected ``overrides``
function (subject id -> its overrides, or None), so this module needs no registry
client: the composition root wires one in. Each subject's rules are kept for
``ttl_s`` (60 s), so a change reaches a warm Lambda or the always-on service within a
minute; when the registry cannot be read, the defaults apply to subjects never read and
the last rules read to the rest, and the failure is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.live.alerts import AlertRules

__all__ = ["SubjectRules"]

log = logging.getLogger(__name__)

#: Subjects whose rules are kept at once (a warm Lambda sees a ward's or a study's subjects).
MAX_SUBJECTS = 10_000


@dataclass
class SubjectRules:
    """Callable: subject id -> the alert rules of that subject."""

    defaults: AlertRules
    overrides: Callable[[str], Mapping[str, float] | None]
    ttl_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    _cache: dict[str, tuple[float, AlertRules]] = field(default_factory=dict)

    def __call__(self, subject_id: str) -> AlertRules:
        now = self.clock()
        hit = self._cache.get(subject_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        try:
            found = self.overrides(subject_id)
            rules = self.defaults.with_overrides(found) if found else self.defaults
        except Exception as exc:  # noqa: BLE001 - an unreachable registry must not stop the vitals
            self.failures += 1
            log.warning("subject rules unreadable (%s); keeping the last ones", type(exc).__name__)
            return hit[1] if hit is not None else self.defaults
        if len(self._cache) >= MAX_SUBJECTS:
            self._cache.clear()
        self._cache[subject_id] = (now, rules)
        return rules
