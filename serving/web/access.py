"""Every route's role check, in one declared place, and each principal's subject scope.

:data:`POLICY` names, for every route the app serves, the permission it needs
(:class:`access.roles.Permission`, granted by role in :data:`access.roles.GRANTS`) and whether
a request to it is written to the access audit (it returns or changes subject data).
:func:`authorize` — a dependency of the whole app — refuses a route the principal's role
lacks (403), a route the policy does not name (403: a new route must be declared here;
``tests/test_access.py`` fails first), and a subject outside the principal's groups
(404, as an unknown subject is: a user learns nothing of subjects they may not see).
List routes narrow their rows with :func:`visible_subjects`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from access.roles import Permission, Principal

if TYPE_CHECKING:  # the API's context reads this module's scope helpers
    from serving.web.api import ApiContext

__all__ = [
    "POLICY",
    "PUBLIC",
    "Rule",
    "Who",
    "authorize",
    "keep",
    "principal_of",
    "rule_of",
    "visible",
    "visible_subjects",
]


@dataclass(frozen=True)
class Rule:
    permission: Permission | None  # None: public (no sign-in)
    audited: bool = False


PUBLIC: Final = Rule(None)
_P = Permission

#: (method, route template) -> what the route needs. HEAD is checked as GET.
POLICY: Final[dict[tuple[str, str], Rule]] = {
    # sign-in and the signed-in user
    ("GET", "/login"): PUBLIC,
    ("POST", "/api/session"): PUBLIC,
    ("DELETE", "/api/session"): Rule(_P.SIGNED_IN),
    ("GET", "/api/me"): Rule(_P.SIGNED_IN),
    ("GET", "/api/openapi.json"): Rule(_P.SIGNED_IN),
    # live views
    ("GET", "/"): Rule(_P.LIVE),
    ("GET", "/subjects/{subject_id}"): Rule(_P.LIVE, audited=True),
    ("GET", "/alerts"): Rule(_P.LIVE),
    ("GET", "/api/subjects"): Rule(_P.LIVE, audited=True),
    ("GET", "/api/subjects/{subject_id}"): Rule(_P.LIVE, audited=True),
    ("GET", "/api/subjects/{subject_id}/vitals"): Rule(_P.LIVE, audited=True),
    ("GET", "/api/subjects/{subject_id}/samples"): Rule(_P.LIVE, audited=True),
    ("GET", "/api/alerts"): Rule(_P.LIVE, audited=True),
    ("GET", "/api/alerts/counts"): Rule(_P.LIVE),
    # acknowledging alerts (serving/web/acks.py); the alert's subject is checked there (404)
    ("POST", "/api/alerts/{alert_id}/ack"): Rule(_P.ACKNOWLEDGE, audited=True),
    # a message's link: any signed-in user reaches it, one whose role may not acknowledge
    # is sent to sign in as someone who may (the route redirects)
    ("GET", "/ack/{token}"): Rule(_P.SIGNED_IN, audited=True),
    ("POST", "/ack/{token}"): Rule(_P.ACKNOWLEDGE, audited=True),
    # staged nights and reports
    ("GET", "/nights"): Rule(_P.NIGHTS),
    ("GET", "/nights/{subject_id}/{night}"): Rule(_P.NIGHTS, audited=True),
    ("GET", "/reports/{subject_id}/{night}.html"): Rule(_P.NIGHTS, audited=True),
    ("GET", "/api/nights"): Rule(_P.NIGHTS, audited=True),
    ("GET", "/api/nights/{subject_id}/{night}"): Rule(_P.NIGHTS, audited=True),
    ("GET", "/api/nights/{subject_id}/{night}/epochs"): Rule(_P.NIGHTS, audited=True),
    # the coordinator's views and the registry
    ("GET", "/compliance"): Rule(_P.COMPLIANCE),
    ("GET", "/api/compliance"): Rule(_P.COMPLIANCE, audited=True),
    ("GET", "/registry"): Rule(_P.REGISTRY_READ),
    ("GET", "/api/registry/subjects"): Rule(_P.REGISTRY_READ, audited=True),
    ("GET", "/api/registry/subjects/{subject_id}"): Rule(_P.REGISTRY_READ, audited=True),
    ("GET", "/api/registry/devices"): Rule(_P.REGISTRY_READ, audited=True),
    ("GET", "/api/registry/assignments"): Rule(_P.REGISTRY_READ, audited=True),
    ("POST", "/api/registry/subjects"): Rule(_P.REGISTRY_EDIT, audited=True),
    ("PATCH", "/api/registry/subjects/{subject_id}"): Rule(_P.REGISTRY_EDIT, audited=True),
    ("POST", "/api/registry/subjects/{subject_id}/withdrawal"): Rule(_P.REGISTRY_EDIT, audited=True),
    ("POST", "/api/registry/devices"): Rule(_P.REGISTRY_EDIT, audited=True),
    ("POST", "/api/registry/assignments"): Rule(_P.REGISTRY_EDIT, audited=True),
    # a subject's data as files
    ("GET", "/api/export/{subject_id}"): Rule(_P.EXPORT, audited=True),
    # who looked at which patient
    ("GET", "/audit"): Rule(_P.AUDIT),
    ("GET", "/api/audit"): Rule(_P.AUDIT, audited=True),
}


def rule_of(method: str, template: str) -> Rule | None:
    return POLICY.get(("GET" if method == "HEAD" else method, template))


def principal_of(request: Request) -> Principal:
    """The request's principal (the gate put it there); 401 if there is none."""
    who: Principal | None = getattr(request.state, "principal", None)
    if who is None:
        raise HTTPException(401, detail="not signed in")
    return who


Who = Annotated[Principal, Depends(principal_of)]


def visible(ctx: ApiContext, who: Principal, subject_id: str) -> bool:
    """Whether ``who`` may see ``subject_id`` (a subject the registry does not know: only ``*``)."""
    if who.sees_all:
        return True
    if ctx.registry is None:
        return False
    subject = ctx.registry().get_subject(subject_id)
    return subject is not None and who.sees(subject.groups)


def visible_subjects(ctx: ApiContext, who: Principal) -> set[str] | None:
    """The ids ``who`` may see (None: every subject)."""
    if who.sees_all:
        return None
    if ctx.registry is None:
        return set()
    return {s.subject_id for s in ctx.registry().subjects() if who.sees(s.groups)}


def keep(rows: Iterable[dict[str, Any]], allowed: set[str] | None, key: str = "subject_id") -> list[dict[str, Any]]:
    """The rows whose ``key`` is an allowed subject (all of them when ``allowed`` is None)."""
    return list(rows) if allowed is None else [r for r in rows if r.get(key) in allowed]


async def authorize(request: Request) -> None:
    """The app-wide check (see the module's doc)."""
    route = request.scope.get("route")
    template = getattr(route, "path", "")
    rule = rule_of(request.method, template)
    if rule is None:
        raise HTTPException(403, detail=f"{request.method} {template} is not in the access policy")
    if rule.permission is None:
        return
    who = principal_of(request)
    if not who.may(rule.permission):
        raise HTTPException(403, detail=f"your role ({who.role}) may not use this route")
    subject = request.path_params.get("subject_id") or request.query_params.get("subject_id")
    ctx = request.app.state.ctx
    if subject and not await run_in_threadpool(visible, ctx, who, subject):
        raise HTTPException(404, detail="no such subject in your groups")
