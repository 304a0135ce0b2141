"""An alert's acknowledgement: who acknowledged it, how, and when (issue 28 item 4).

The web layer writes acknowledgements (:class:`local.alert_acks.AlertAcks`) and the
notifier reads them: an acknowledged alert episode stops escalating. The first
acknowledgement of an alert wins; later ones change nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from access.roles import AccessError
from core.errors import SleepstackError

__all__ = ["VIAS", "Ack", "AckStore", "AcksUnavailable", "check_via"]

#: how an alert was acknowledged: the dashboard's button, the HTTP API, a message's signed link
VIAS: Final = ("dashboard", "api", "link")


class AcksUnavailable(SleepstackError):
    """The acknowledgement store cannot be read or written."""


def check_via(via: str) -> str:
    if via not in VIAS:
        raise AccessError("via", f"{via!r} is not one of {', '.join(VIAS)}")
    return via


@dataclass(frozen=True)
class Ack:
    """``alert_id`` acknowledged by user ``by`` via ``via`` at ``at_ms`` (epoch milliseconds, UTC)."""

    alert_id: str
    by: str
    via: str
    at_ms: int

    def to_json(self) -> dict[str, str | int]:
        """What the API and the dashboard show: ``{"by", "via", "at"}`` (``at`` in epoch ms)."""
        return {"by": self.by, "via": self.via, "at": self.at_ms}


class AckStore(ABC):
    """Where acknowledgements are kept (:class:`local.alert_acks.AlertAcks`); the web layer and
    the notifier see only this."""

    @abstractmethod
    def acknowledge(self, alert_id: str, *, by: str, via: str, at_ms: int) -> Ack:
        """Record an acknowledgement; the existing one if the alert was acknowledged before."""

    @abstractmethod
    def get(self, alert_id: str) -> Ack | None: ...

    @abstractmethod
    def acknowledged(self, alert_ids: Iterable[str]) -> dict[str, Ack]:
        """The acknowledgements of those of ``alert_ids`` that have one."""

    @abstractmethod
    def consume_link(self, nonce: str, at_ms: int) -> bool:
        """Mark a one-click link's nonce used; False if it was used before."""

    @abstractmethod
    def link_used(self, nonce: str) -> bool: ...
