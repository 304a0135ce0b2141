"""The dashboard service: the web dashboard and its JSON API, its address in its heartbeat."""

from __future__ import annotations

from sleepstack.services.base import Service

__all__ = ["DashboardService"]


class DashboardService(Service):
    """Serves :mod:`sleepstack.dashboard` on 127.0.0.1 (``SLEEPSTACK_DASHBOARD_PORT``) until stopped."""

    name = "dashboard"

    def run(self) -> None:
        from sleepstack.dashboard import Listen, serve

        def ready(address: str) -> None:
            self.control.beat(self.name, "running", url=address)

        serve(self.settings, Listen(port=self.settings.dashboard_port), on_ready=ready, stop=self.stop)
        self.control.beat(self.name, "stopped")
