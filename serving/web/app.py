"""The dashboard's web application (FastAPI): assembled from its routers, behind the token gate.

| path | what |
|---|---|
| ``/``, ``/subjects/...``, ``/alerts``, ``/nights/...``, ``/reports/...`` | the pages (:mod:`serving.web.views`) |
| ``/api/...`` | the JSON API (:mod:`serving.web.api`); schema at ``/api/openapi.json`` |
| ``/api/registry/...`` | subjects, devices, assignments (:mod:`serving.web.registry_api`) |
| ``/api/alerts/{id}/ack``, ``/ack/{token}`` | acknowledging alerts, a message's link (:mod:`serving.web.acks`) |
| ``/static``, ``/vendor`` | the front-end files and the pinned chart library |

The routers are module-level; what they read (:class:`serving.web.api.ApiContext`) is
the app's state, reached through one dependency (``serving.web.api.Ctx``). Every request
passes :class:`serving.web.auth.Gate` (who it is, CSRF, the audit) and every route
:func:`serving.web.access.authorize` (the route's permission, the subject's groups). The
interactive API docs (Swagger UI, ReDoc) are off: they load their scripts from a CDN.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from serving.web import acks, api, compliance, export_api, registry_api, session, views
from serving.web.access import authorize
from serving.web.api import ApiContext
from serving.web.auth import AccessLog, Gate
from serving.web.pages import load_assets, vendor_dir

__all__ = ["create_app"]


def create_app(ctx: ApiContext, token: str, *, secure_cookie: bool = False) -> Any:
    """The ASGI application: the FastAPI app (every route checked by ``authorize``) behind the
    gate (who the request is, CSRF, the audit) and the access log."""
    load_assets()  # fail at start, naming `make setup`, not at the first page
    if ctx.audit is None:
        raise ValueError("the dashboard serves subject data only with an access audit")
    app = FastAPI(
        title="sleepstack dashboard API",
        version="1",
        description="Live vitals and alerts (the speed layer's documents) and staged nights (the curated tables)."
        " Times are ms UTC. Authenticate with a user's API token (`Authorization: Bearer sst_...`,"
        " `sleepstack users token`) or sign in (`POST /api/session`); what a role may read is in docs/security.md.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        dependencies=[Depends(authorize)],
    )
    app.state.ctx = ctx
    app.include_router(api.router)
    app.include_router(acks.router)
    app.include_router(registry_api.router)
    app.include_router(compliance.router)
    app.include_router(session.router)
    app.include_router(export_api.router)
    app.include_router(views.router)
    app.mount("/static", StaticFiles(packages=[("serving.web", "static")]), name="static")
    app.mount("/vendor", StaticFiles(directory=str(vendor_dir())), name="vendor")
    return AccessLog(Gate(app, token, accounts=ctx.accounts, audit=ctx.audit, secure_cookie=secure_cookie))
