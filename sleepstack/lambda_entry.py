"""The speed layer's AWS Lambda entry point (``Handler: sleepstack.lambda_entry.lambda_handler``).

It wires the handler from the environment once per execution environment (on the first
invocation) and delegates every event to it; the handler itself is
:class:`speed_layer.handler.SpeedLayerHandler`.
"""

from __future__ import annotations

from typing import Any

from speed_layer.handler import SpeedLayerHandler

__all__ = ["lambda_handler"]

_handler: SpeedLayerHandler | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS entry point: wires the handler from the environment on the first invocation."""
    global _handler  # noqa: PLW0603 - one wiring per Lambda execution environment
    if _handler is None:
        from sleepstack.settings import Settings
        from sleepstack.wiring import speed_layer_handler

        _handler = speed_layer_handler(Settings.from_env())
    return _handler(event, context)
