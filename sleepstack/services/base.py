"""What every service of the local stack has: its name, settings, home, control plane and stop."""

from __future__ import annotations

from typing import ClassVar

from local.control import ControlPlane
from local.home import Home
from sleepstack.services.stop import Stop
from sleepstack.settings import Settings

__all__ = ["Service"]


class Service:
    """One service process; :meth:`run` returns once it is asked to stop."""

    name: ClassVar[str]

    def __init__(self, settings: Settings, stop: Stop) -> None:
        self.settings = settings
        self.home: Home = settings.paths
        self.control = ControlPlane(self.home)
        self.stop = stop

    def run(self) -> None:
        raise NotImplementedError
