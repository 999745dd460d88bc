"""Export's HTTP API, for registry staff: transfer status and the audit log (JSON pages and CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.export import application
from services.export.storage import AuditEntry
from shared.auth import StaffPrincipal

router = APIRouter(prefix="/export", tags=["export"])
CSV_PAGE = 1000
ExportId = Annotated[str | None, Query(pattern=r"^[a-z2-7]{32}$")]


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.export_sessions
    return sessions


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]


class TransferStatus(BaseModel):
    pending: int
    sent: int
    retracted: int
    failed: int
    cancelled: int
    reserved_children: int
    held_reports: int


class AuditRecord(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    reason: str
    legal_basis: str
    record_id: str
    child_id: str
    revision: int | None
    record_sha256: str | None
    sink: str
    batch: str | None
    ledger_id: int


class AuditPage(BaseModel):
    entries: list[AuditRecord]
    next_after: int | None  # pass as `after` for the next page; null when this was the last


FIELDS = list(AuditRecord.model_fields)


def _record(entry: AuditEntry) -> AuditRecord:
    return AuditRecord.model_validate({name: getattr(entry, name) for name in FIELDS})


@router.get("/status", summary="Transfer operations by outcome")
async def status(_: StaffPrincipal, sessions: Sessions) -> TransferStatus:
    counts = await application.status(sessions)
    return TransferStatus.model_validate(counts, from_attributes=True)


@router.get("/audit", summary="The audit log of transfers and retractions, oldest first")
async def audit(
    _: StaffPrincipal,
    sessions: Sessions,
    after: Annotated[int, Query(ge=0, description="Entries after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    record_id: ExportId = None,
    child_id: ExportId = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> AuditPage:
    entries = await application.audit(
        sessions, after_id=after, limit=limit, record_id=record_id, child_id=child_id, since=since, until=until
    )
    return AuditPage(
        entries=[_record(e) for e in entries], next_after=entries[-1].id if len(entries) == limit else None
    )


@router.get(
    "/audit.csv",
    summary="The audit log as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def audit_csv(
    _: StaffPrincipal,
    sessions: Sessions,
    record_id: ExportId = None,
    child_id: ExportId = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> StreamingResponse:
    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(FIELDS)
        after = 0
        while True:
            page = await application.audit(
                sessions,
                after_id=after,
                limit=CSV_PAGE,
                record_id=record_id,
                child_id=child_id,
                since=since,
                until=until,
            )
            for entry in page:
                record = _record(entry).model_dump(mode="json")
                writer.writerow(["" if record[name] is None else record[name] for name in FIELDS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(page) < CSV_PAGE:
                return
            after = page[-1].id

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="nopho-care-audit.csv"'},
    )
