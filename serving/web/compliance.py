"""The compliance view's data: every subject x the last nights, each night's completeness.

``GET /api/compliance?nights=14&until=YYYY-MM-DD`` answers, per subject (the registry's,
and any subject with staged nights the registry does not know), one cell per night:

* ``complete`` / ``partial`` / ``insufficient``: the night's verdict
  (``night_summary.completeness``, :func:`core.nights.nightly.completeness`) with its
  reason and coverage;
* ``pending``: the current night, or one not staged yet while it is within the last day
  (the nightly batch stages a night after it closes);
* ``missing``: an enrolled subject's closed night with nothing staged: the night a
  coordinator has to chase;
* ``not enrolled``: before the subject's enrolment or after their withdrawal.

``silent`` flags a subject whose devices are assigned now but whose newest live document
is older than 5 minutes; ``devices`` lists the devices assigned to the subject now with
their health (:func:`serving.device_health.device_health`: battery, last heard, and the
``low_battery``, ``silent`` and ``not_worn`` flags), and ``low_battery`` says whether any
of them reads low.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from core.contract.epochs import night_of
from core.registry import AssignmentIndex, Subject
from serving.device_health import SILENT_MS, device_health
from serving.web.access import Who, keep, visible_subjects
from serving.web.api import NIGHT_PATTERN, ApiContext, Ctx, check_night, query_rows

__all__ = ["compliance_grid", "router"]

router = APIRouter(prefix="/api", tags=["compliance"])


class Cell(BaseModel):
    night: str = Field(description="YYYY-MM-DD of the night's evening")
    state: str = Field(description="complete, partial, insufficient, pending, missing or not enrolled")
    coverage_pct: float | None = Field(None, description="heart rate in this share of the night in bed")
    reason: str | None = Field(None, description="why a night is partial or insufficient")


class DeviceFlag(BaseModel):
    address: str = Field(description="the device's address")
    kind: str = Field(description="strap or bed")
    label: str = Field(description="what people call it")
    battery_pct: int | None = Field(description="last Battery Level read, % (null: none)")
    last_seen_ms: int | None = Field(description="its last measurement, ms UTC")
    low_battery: bool = Field(description="battery at or below the alert threshold")
    silent: bool = Field(description="no measurement for 5 min (or ever)")
    not_worn: bool = Field(description="a strap reporting no skin contact")


class ComplianceRow(BaseModel):
    subject_id: str = Field(description="pseudonymous subject id")
    status: str = Field(description="enrolled, withdrawn, or unregistered (staged nights, no registry entry)")
    last_seen_ms: int | None = Field(description="newest live document, ms UTC")
    silent: bool = Field(description="assigned devices, but nothing live for 5 min")
    low_battery: bool = Field(description="a device assigned now reads a low battery")
    devices: list[DeviceFlag] = Field(description="the devices assigned to the subject now, with their health")
    cells: list[Cell] = Field(description="one per night, oldest first")


class Compliance(BaseModel):
    nights: list[str] = Field(description="the nights shown, oldest first")
    subjects: list[ComplianceRow] = Field(description="one per subject, by id")


def _enrolled_on(subject: Subject | None, night: str, tz: str) -> bool:
    if subject is None:
        return True
    first = night_of(subject.enrolled_ms, tz)
    last = night_of(subject.withdrawn_ms, tz) if subject.withdrawn_ms is not None else None
    return first <= night and (last is None or night <= last)


def compliance_grid(
    nights: list[str],
    rows: list[dict[str, Any]],
    subjects: list[Subject],
    last_seen: dict[str, int],
    assigned_now: set[str],
    *,
    current: str,
    tz: str,
    now_ms: int,
    devices: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The grid (see the module's doc) from the ``night_completeness`` rows, the registry and the live store."""
    by_key = {(r["subject_id"], r["night"]): r for r in rows}
    known = {s.subject_id: s for s in subjects}
    ids = sorted(set(known) | {r["subject_id"] for r in rows if r["night"] in nights})
    yesterday = (date.fromisoformat(current) - timedelta(days=1)).isoformat()
    out = []
    for sid in ids:
        subject = known.get(sid)
        cells: list[dict[str, Any]] = []
        for night in nights:
            row = by_key.get((sid, night))
            if not _enrolled_on(subject, night, tz):
                cells.append({"night": night, "state": "not enrolled"})
            elif row is not None:
                state = row.get("completeness") or "insufficient"
                cells.append(
                    {
                        "night": night,
                        "state": state,
                        "coverage_pct": row.get("coverage_pct"),
                        "reason": row.get("completeness_reason"),
                    }
                )
            elif night >= yesterday:  # in progress, or closed and waiting for the nightly batch
                cells.append({"night": night, "state": "pending"})
            else:
                cells.append({"night": night, "state": "missing"})
        seen = last_seen.get(sid)
        mine = [d for d in devices if d["assigned_to"] == sid]
        out.append(
            {
                "subject_id": sid,
                "status": subject.status if subject is not None else "unregistered",
                "last_seen_ms": seen,
                "silent": sid in assigned_now and (seen is None or now_ms - seen > SILENT_MS),
                "low_battery": any(d["low_battery"] for d in mine),
                "devices": mine,
                "cells": cells,
            }
        )
    return {"nights": nights, "subjects": out}


def _gather(
    ctx: ApiContext, nights: list[str], now_ms: int
) -> tuple[list[dict[str, Any]], list[Subject], set[str], list[dict[str, Any]]]:
    rows = query_rows(ctx.sql(), "night_completeness", {"subject": "", "limit": 100_000})
    rows = [r for r in rows if r["night"] in nights]
    if ctx.registry is None:
        return rows, [], set(), []
    registry = ctx.registry()
    assignments = registry.assignments()
    assigned = {a.subject_id for a in assignments if a.covers(now_ms)}
    statuses, opened = ctx.live.device_statuses(), ctx.live.alerts(status="open")
    health = device_health(registry.devices(), AssignmentIndex(assignments), statuses, opened, now_ms=now_ms)
    return rows, registry.subjects(), assigned, health


@router.get("/compliance", response_model=Compliance, summary="Every subject x the last nights: completeness")
async def compliance(
    ctx: Ctx,
    who: Who,
    nights: Annotated[int, Query(ge=1, le=31, description="how many nights")] = 14,
    until: Annotated[
        str | None, Query(pattern=NIGHT_PATTERN, description="the last night shown (default: now's)")
    ] = None,
) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    current = night_of(now_ms, ctx.tz)
    if until is not None:
        check_night(until)
    last = date.fromisoformat(until or current)
    shown = [(last - timedelta(days=k)).isoformat() for k in range(nights - 1, -1, -1)]
    rows, subjects, assigned, health = await run_in_threadpool(_gather, ctx, shown, now_ms)
    last_seen = {s["subject_id"]: int(s["last_seen_ms"]) for s in ctx.live.subjects()}
    grid = compliance_grid(
        shown, rows, subjects, last_seen, assigned, current=current, tz=ctx.tz, now_ms=now_ms, devices=health
    )
    allowed = await run_in_threadpool(visible_subjects, ctx, who)
    return {**grid, "subjects": keep(grid["subjects"], allowed)}
