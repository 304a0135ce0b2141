"""The demo's alert delivery: a loopback SMTP server (aiosmtpd, STARTTLS with a throwaway
certificate, AUTH) and a webhook receiver that verifies signatures, a routes file sending
clinical episodes to both and technical ones by e-mail, and the count of what arrived
against what the demo's episodes call for (docs/alerts.md)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.notify import idempotency_key, transitions
from sleepstack.notify.receivers import SmtpReceiver, WebhookReceiver, self_signed_cert
from sleepstack.notify.routes_file import load_routes

__all__ = ["DeliveryCounts", "DemoDelivery"]

_ROUTES = """\
# the demo's alert routes (docs/alerts.md): clinical episodes to a nurse by e-mail and webhook,
# the devices' technical alerts to the study's technician by e-mail
routes:
  - name: demo-clinical
    category: clinical
    tiers:
      - recipients:
          - email: night-nurse@demo.example.org
          - webhook: {url}
  - name: demo-technical
    category: technical
    tiers:
      - recipients:
          - email: study-tech@demo.example.org
"""


@dataclass
class DeliveryCounts:
    episodes: int = 0
    expected: int = 0
    emails: int = 0
    webhooks: int = 0
    missing: int = 0
    resent: int = 0
    missing_keys: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"alert delivery: {self.emails} e-mails received by a loopback SMTP server (STARTTLS, AUTH) and"
            f" {self.webhooks} signed webhooks verified by a loopback receiver, for {self.episodes} alert episodes"
            f" ({self.expected} messages expected, {self.missing} missing, {self.resent} resent)"
        )


class DemoDelivery:
    """Start the receivers, give the stack its settings, then count what arrived."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.password = secrets.token_hex(16)
        self.cert = self_signed_cert(folder / "tls")
        self.smtp = SmtpReceiver(self.cert, "notifier", self.password).start()
        self.hook = WebhookReceiver(self.password.encode()).start()
        self.routes_file = folder / "alert-routes.yaml"
        self.routes_file.write_text(_ROUTES.format(url=self.hook.url))
        self.routes = load_routes(self.routes_file)

    def env(self) -> dict[str, str]:
        """The settings that point the stack's notifier at the receivers."""
        return {
            "SLEEPSTACK_ALERT_ROUTES": str(self.routes_file),
            "SLEEPSTACK_SMTP_HOST": "127.0.0.1",
            "SLEEPSTACK_SMTP_PORT": str(self.smtp.port),
            "SLEEPSTACK_SMTP_USER": "notifier",
            "SLEEPSTACK_SMTP_PASSWORD": self.password,
            "SLEEPSTACK_SMTP_CAFILE": str(self.cert[0]),
            "SLEEPSTACK_WEBHOOK_SECRET": self.password,
        }

    def expected(self, episodes: list[dict[str, Any]]) -> set[str]:
        """Every tier-0 message the episodes call for (the demo's routes have one tier)."""
        return {
            idempotency_key(tr.alert_id, tr.transition, route.name, r, 0)
            for doc in episodes
            for route in self.routes
            if route.matches(doc, ())
            for tr in transitions(doc)
            if tr.transition == "open" or route.notify_close
            for r in route.tiers[0].recipients
        }

    def wait(self, episodes: list[dict[str, Any]], timeout_s: float = 180.0) -> DeliveryCounts:
        """Wait until every expected message arrived (or the timeout) and count."""
        want = self.expected(episodes)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not want <= set(self.smtp.keys()) | set(self.hook.keys()):
            time.sleep(0.2)
        got = self.smtp.keys() + self.hook.keys()
        missing = sorted(want - set(got))
        return DeliveryCounts(
            episodes=len(episodes),
            expected=len(want),
            emails=len(self.smtp.keys()),
            webhooks=len(self.hook.keys()),
            missing=len(missing),
            resent=sum(n - 1 for n in got.values()),
            missing_keys=missing,
        )

    def stop(self) -> None:
        self.smtp.stop()
        self.hook.stop()
