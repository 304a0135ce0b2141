"""The registry's JSON API (``/api/registry``): subjects, devices and assignments.

Create, read and update, behind the same token as every other route. A body the rules
refuse is 422 naming the field, in FastAPI's error shape (``loc``: ``["body", field]``);
an assignment that would overlap another of its device is 409 naming that assignment;
an id not registered is 404. Times are ms UTC. Every change is kept in the registry's
history with the ``why`` given. The store's calls run in the thread pool (DynamoDB on
AWS is a network call).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from core.registry import Assignment, AssignmentIndex, Device, RegistryError, Subject
from registry.store import RegistryStore
from serving.device_health import device_health
from serving.web.access import Who, keep, visible_subjects
from serving.web.api import SUBJECT_PATTERN, Ctx, unprocessable

__all__ = ["router"]

T = TypeVar("T")

router = APIRouter(prefix="/api/registry", tags=["registry"])


class SubjectIn(BaseModel):
    subject_id: str = Field(description="pseudonymous id (letters, digits, :_.-), never a name")
    tz: str = Field("UTC", description="IANA time zone the subject's nights are cut in")
    age_band: str | None = Field(None, description="18-29, 30-39, ... 80+")
    sex: str | None = Field(None, description="female, male or other")
    alert_overrides: dict[str, float] = Field(default_factory=dict, description="alert thresholds for this subject")
    enrolled_ms: int | None = Field(None, description="enrolment time, ms UTC (default now)")
    groups: list[str] = Field(default_factory=list, description="studies or wards the subject is in (who may see them)")
    why: str = Field("", description="a note kept in the registry's history")


class SubjectUpdate(BaseModel):
    tz: str | None = Field(None, description="IANA time zone the subject's nights are cut in")
    age_band: str | None = Field(None, description="18-29, 30-39, ... 80+")
    sex: str | None = Field(None, description="female, male or other")
    alert_overrides: dict[str, float] | None = Field(
        None, description="alert thresholds for this subject (all of them)"
    )
    groups: list[str] | None = Field(None, description="studies or wards the subject is in (all of them)")
    why: str = Field("", description="a note kept in the registry's history")


class SubjectOut(BaseModel):
    subject_id: str = Field(description="pseudonymous subject id")
    enrolled_ms: int = Field(description="enrolment, ms UTC")
    tz: str = Field(description="IANA time zone the subject's nights are cut in")
    status: str = Field(description="enrolled or withdrawn")
    withdrawn_ms: int | None = Field(description="withdrawal, ms UTC (null while enrolled)")
    age_band: str | None = Field(description="18-29, 30-39, ... 80+ (null: not given)")
    sex: str | None = Field(description="female, male or other (null: not given)")
    alert_overrides: dict[str, float] = Field(description="alert thresholds overriding the defaults (AlertRules names)")
    groups: list[str] = Field(description="studies or wards the subject is in (who may see them)")


class Withdrawal(BaseModel):
    at_ms: int | None = Field(None, description="from when, ms UTC (default now)")
    why: str = Field("", description="a note kept in the registry's history")


class DeviceIn(BaseModel):
    address: str = Field(description="BLE address (or a simulated device's name)")
    kind: str = Field(description="strap or bed")
    label: str = Field("", description="what people call it, e.g. bed 12")


class DeviceOut(BaseModel):
    address: str = Field(description="BLE address (or a simulated device's name)")
    kind: str = Field(description="strap or bed")
    label: str = Field(description="what people call it")
    assigned_to: str | None = Field(description="the subject it is assigned to now")
    battery_pct: int | None = Field(description="last Battery Level read, % (null: no Battery Service or no status)")
    connected: bool | None = Field(description="link up at its last status (null: no status yet)")
    worn: bool | None = Field(description="strap skin contact at its last status (null: bed, unsupported, none)")
    last_status_ms: int | None = Field(description="when its collector last reported on it, ms UTC")
    last_seen_ms: int | None = Field(description="its last measurement, ms UTC (null: none yet)")
    low_battery: bool = Field(description="battery at or below the battery_low_pct alert threshold")
    silent: bool = Field(description="assigned now, but no measurement for 5 min (or ever)")
    not_worn: bool = Field(description="a strap whose last status reports no skin contact")
    technical_alerts: list[str] = Field(description="kinds of its open technical alerts")


class AssignmentIn(BaseModel):
    device: str = Field(description="a registered device's address")
    subject_id: str = Field(description="a registered, enrolled subject")
    from_ms: int | None = Field(None, description="start, ms UTC (default now)")
    to_ms: int | None = Field(None, description="end, ms UTC (exclusive; none: until further notice)")
    why: str = Field("", description="a note kept in the registry's history")


class AssignmentOut(BaseModel):
    device: str = Field(description="the device's address")
    subject_id: str = Field(description="who wore it (or slept on it)")
    from_ms: int = Field(description="start, ms UTC (inclusive)")
    to_ms: int | None = Field(description="end, ms UTC (exclusive; null: until further notice)")


def _now() -> int:
    return int(time.time() * 1000)


def _store(ctx: Ctx) -> RegistryStore:
    if ctx.registry is None:
        raise HTTPException(503, detail="this dashboard has no registry")
    return ctx.registry()


async def _call(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run a registry call in the thread pool; its refusals as 422 (a field) or 409 (an overlap)."""
    try:
        return await run_in_threadpool(fn, *args, **kw)
    except RegistryError as exc:
        if exc.what == "assignment":
            raise HTTPException(409, detail=exc.reason) from None
        if "not registered" in exc.reason and exc.what in ("subject", "device"):
            raise HTTPException(404, detail=f"{exc.what}: {exc.reason}") from None
        raise unprocessable(exc.what, "body", exc.reason) from None


def _build(factory: Callable[..., T], **kw: Any) -> T:
    try:
        return factory(**kw)
    except RegistryError as exc:
        raise unprocessable(exc.what, "body", exc.reason) from None


SubjectPath = Annotated[str, Path(pattern=SUBJECT_PATTERN, description="pseudonymous subject id")]


@router.get("/subjects", response_model=list[SubjectOut], summary="Every registered subject")
async def subjects(ctx: Ctx, who: Who) -> list[dict[str, Any]]:
    return [s.to_dict() for s in await _call(_store(ctx).subjects) if who.sees(s.groups)]


@router.post("/subjects", response_model=SubjectOut, status_code=201, summary="Enrol a subject")
async def add_subject(body: SubjectIn, ctx: Ctx) -> dict[str, Any]:
    fields = body.model_dump(exclude={"why", "enrolled_ms"})
    fields["groups"] = tuple(sorted(set(body.groups)))
    subject = _build(Subject, enrolled_ms=body.enrolled_ms or _now(), **fields)
    return (await _call(_store(ctx).add_subject, subject, why=body.why)).to_dict()


@router.get("/subjects/{subject_id}", response_model=SubjectOut, summary="One subject")
async def subject(subject_id: SubjectPath, ctx: Ctx) -> dict[str, Any]:
    found = await _call(_store(ctx).get_subject, subject_id)
    if found is None:
        raise HTTPException(404, detail=f"subject {subject_id} is not registered")
    return found.to_dict()


@router.patch(
    "/subjects/{subject_id}", response_model=SubjectOut, summary="Change a subject's zone, band or thresholds"
)
async def update_subject(subject_id: SubjectPath, body: SubjectUpdate, ctx: Ctx) -> dict[str, Any]:
    store = _store(ctx)
    found = await _call(store.get_subject, subject_id)
    if found is None:
        raise HTTPException(404, detail=f"subject {subject_id} is not registered")
    changes = body.model_dump(exclude={"why"}, exclude_unset=True)
    updated = _build(Subject.from_dict, d={**found.to_dict(), **changes})
    return (await _call(store.update_subject, updated, at_ms=_now(), why=body.why)).to_dict()


@router.post("/subjects/{subject_id}/withdrawal", response_model=SubjectOut, summary="Withdraw a subject")
async def withdraw(subject_id: SubjectPath, body: Withdrawal, ctx: Ctx) -> dict[str, Any]:
    done = await _call(_store(ctx).withdraw, subject_id, at_ms=body.at_ms or _now(), why=body.why)
    return done.to_dict()


@router.get(
    "/devices", response_model=list[DeviceOut], summary="Every device: whom it is assigned to now, and its health"
)
async def devices(ctx: Ctx, who: Who) -> list[dict[str, Any]]:
    store, now = _store(ctx), _now()
    found, index = await _call(lambda: (store.devices(), AssignmentIndex(store.assignments())))
    statuses, opened = await run_in_threadpool(lambda: (ctx.live.device_statuses(), ctx.live.alerts(status="open")))
    rows = device_health(found, index, statuses, opened, now_ms=now)
    allowed = await run_in_threadpool(visible_subjects, ctx, who)
    # a device assigned to someone out of scope is not shown (unassigned ones are: to assign them)
    return rows if allowed is None else [r for r in rows if r["assigned_to"] is None or r["assigned_to"] in allowed]


@router.post("/devices", response_model=DeviceOut, status_code=201, summary="Register a device")
async def add_device(body: DeviceIn, ctx: Ctx) -> dict[str, Any]:
    device = _build(Device, **body.model_dump())
    now = _now()
    done = await _call(_store(ctx).add_device, device, at_ms=now)
    (row,) = device_health([done], AssignmentIndex(()), (), (), now_ms=now)  # new: no status yet, assigned to nobody
    return row


@router.get("/assignments", response_model=list[AssignmentOut], summary="Who wore which device when")
async def assignments(ctx: Ctx, who: Who, device: str | None = None) -> list[dict[str, Any]]:
    allowed = await run_in_threadpool(visible_subjects, ctx, who)
    return keep((a.to_dict() for a in await _call(_store(ctx).assignments, device)), allowed)


@router.post(
    "/assignments",
    response_model=list[AssignmentOut],
    status_code=201,
    summary="Assign a device over [from_ms, to_ms); 409 names an assignment it would overlap",
)
async def assign(body: AssignmentIn, ctx: Ctx) -> list[dict[str, Any]]:
    new = _build(
        Assignment, device=body.device, from_ms=body.from_ms or _now(), subject_id=body.subject_id, to_ms=body.to_ms
    )
    written = await _call(_store(ctx).assign, new, at_ms=_now(), why=body.why)
    return [a.to_dict() for a in written]
