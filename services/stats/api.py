"""HTTP API of the stats service: figures per scope (now, per diagnosis year, per day) and reminders.

Hospital tokens see their own hospital; registry staff see every hospital and the registry-wide scope.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel

from services.stats.application import StatsApplication
from services.stats.domain.reminders import missing_form
from shared.auth import CurrentPrincipal, Principal, Role, require_hospital_access
from shared.events import FormType
from shared.events.stats import REGISTRY_SCOPE, Figures, ReminderKind, StatsSnapshot
from shared.hospitals import BY_ID

router = APIRouter(tags=["stats"])

ScopePath = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9-]{1,31}$", description="A hospital id, or 'registry' for registry-wide")
]
MAX_DAYS = 3660  # ten years of daily snapshots in one answer


class YearFigures(BaseModel):
    scope: str
    diagnosis_year: int
    version: int
    figures: Figures


class DailyFigures(BaseModel):
    day: date
    version: int
    figures: Figures


class OutstandingReminder(BaseModel):
    reminder_id: uuid.UUID
    hospital_id: str
    tumour_ref: str
    kind: ReminderKind
    missing_form: FormType
    diagnosis_date: date
    due_date: date
    follow_up_year: int | None
    open_since: date


def _stats(request: Request) -> StatsApplication:
    stats: StatsApplication = request.app.state.stats
    return stats


def _authorize(principal: Principal, scope: str) -> None:
    if scope == REGISTRY_SCOPE:
        if principal.role is not Role.STAFF:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "registry-wide figures are for registry staff")
    else:
        require_hospital_access(principal, scope)


async def _known(stats: StatsApplication, scope: str) -> None:
    # Hospitals the registry knows, and the registry itself, have figures even before their first report.
    if scope not in BY_ID and scope != REGISTRY_SCOPE and not await stats.known_scope(scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no figures for {scope!r}")


@router.get("/stats/{scope}", summary="Current figures of a hospital or the registry")
async def current(scope: ScopePath, principal: CurrentPrincipal, request: Request) -> StatsSnapshot:
    _authorize(principal, scope)
    stats = _stats(request)
    await _known(stats, scope)
    return await stats.current(scope)


@router.get("/stats/{scope}/years/{year}", summary="Figures of one diagnosis year")
async def for_year(
    scope: ScopePath, year: Annotated[int, Path(ge=1900, le=2999)], principal: CurrentPrincipal, request: Request
) -> YearFigures:
    _authorize(principal, scope)
    stats = _stats(request)
    await _known(stats, scope)
    version, figures = await stats.for_year(scope, year)
    return YearFigures(scope=scope, diagnosis_year=year, version=version, figures=figures)


@router.get("/stats/{scope}/daily", summary="One snapshot per day over a date range")
async def daily(
    scope: ScopePath,
    principal: CurrentPrincipal,
    request: Request,
    first: Annotated[date, Query(alias="from", description="First day (inclusive)")],
    last: Annotated[date, Query(alias="to", description="Last day (inclusive)")],
    diagnosis_year: Annotated[int | None, Query(ge=1900, le=2999, description="That year's figures")] = None,
) -> list[DailyFigures]:
    """Each day's last snapshot; a day without changes repeats the figures of the day before."""
    _authorize(principal, scope)
    if last < first:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "'to' is before 'from'")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"at most {MAX_DAYS} days per request")
    stats = _stats(request)
    await _known(stats, scope)
    result = []
    for day, snapshot in await stats.daily(scope, first, last):
        figures = snapshot.total if diagnosis_year is None else snapshot.by_diagnosis_year.get(str(diagnosis_year))
        result.append(DailyFigures(day=day, version=snapshot.version, figures=figures or Figures()))
    return result


@router.get("/reminders", summary="Outstanding reminders: reports hospitals owe")
async def outstanding(
    principal: CurrentPrincipal,
    request: Request,
    hospital: Annotated[str | None, Query(description="Only this hospital's (hospital tokens: their own)")] = None,
) -> list[OutstandingReminder]:
    if principal.role is not Role.STAFF:
        hospital = hospital or principal.hospital_id
    if hospital is not None:
        require_hospital_access(principal, hospital)
    return [
        OutstandingReminder(
            reminder_id=r.reminder_id,
            hospital_id=r.hospital_id,
            tumour_ref=r.tumour_ref,
            kind=r.kind,
            missing_form=missing_form(r.kind),
            diagnosis_date=r.diagnosis_date,
            due_date=r.due_date,
            follow_up_year=r.follow_up_year,
            open_since=r.changed_on,
        )
        for r in await _stats(request).outstanding(hospital)
    ]
