"""The dashboard's web application (FastAPI): assembled from its routers, behind the token gate.

| path | what |
|---|---|
| ``/``, ``/subjects/...``, ``/alerts``, ``/nights/...``, ``/reports/...`` | the pages (:mod:`serving.web.views`) |
| ``/api/...`` | the JSON API (:mod:`serving.web.api`); schema at ``/api/openapi.json`` |
| ``/api/registry/...`` | subjects, devices, assignments (:mod:`serving.web.registry_api`) |
| ``/static``, ``/vendor`` | the front-end files and the pinned chart library |

The routers are module-level; what they read (:class:`serving.web.api.ApiContext`) is
the app's state, reached through one dependency (``serving.web.api.Ctx``). Every path is
behind :class:`serving.web.auth.TokenGate`. The interactive API docs (Swagger UI, ReDoc)
are off: they load their scripts from a CDN.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from serving.web import api, compliance, registry_api, views
from serving.web.api import ApiContext
from serving.web.auth import AccessLog, TokenGate
from serving.web.pages import load_assets, vendor_dir

__all__ = ["create_app"]


def create_app(ctx: ApiContext, token: str, *, secure_cookie: bool = False) -> Any:
    """The ASGI application: the FastAPI app behind the token gate and the access log."""
    load_assets()  # fail at start, naming `make setup`, not at the first page
    app = FastAPI(
        title="sleepstack dashboard API",
        version="1",
        description="Live vitals and alerts (the speed layer's documents) and staged nights (the curated tables)."
        " Times are ms UTC. Authenticate with the dashboard token: `Authorization: Bearer <token>` or the cookie"
        " the dashboard's address sets.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.ctx = ctx
    app.include_router(api.router)
    app.include_router(registry_api.router)
    app.include_router(compliance.router)
    app.include_router(views.router)
    app.mount("/static", StaticFiles(packages=[("serving.web", "static")]), name="static")
    app.mount("/vendor", StaticFiles(directory=str(vendor_dir())), name="vendor")
    return AccessLog(TokenGate(app, token, secure_cookie=secure_cookie))
