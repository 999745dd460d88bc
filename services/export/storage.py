"""Export's database: reservations, the reports it holds, record revisions, the transfer ledger, the
append-only audit log, the delivery lease and the processed-message ids. Queries live here too."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from services.export.domain.ledger import LedgerEntry, Operation, RevisionState, Status
from shared.db import ProcessedMessageMixin
from shared.db.bulk import insert_rows, is_postgresql, upsert
from shared.db.types import UtcDateTime

MIGRATIONS = Path(__file__).parent / "migrations"
LEASE_NAME = "nopho-care-delivery"
# Ledger ids: BIGINT on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
LedgerId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime}  # noqa: RUF012 - SQLAlchemy reads it as a class attribute


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class ChildRow(Base):
    """A child export has heard of, by registry pseudonym, and whether the family reserved."""

    __tablename__ = "children"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    reserved: Mapped[bool] = mapped_column(default=False)
    reservation_changed_at: Mapped[datetime | None]


class Source(Base):
    """The current accepted version of each record's report (the validated event, as consumed)."""

    __tablename__ = "sources"

    record_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    child_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    tumour_key: Mapped[str] = mapped_column(String(180), index=True)
    form_type: Mapped[str] = mapped_column(String(16))
    submission_id: Mapped[uuid.UUID]
    received_at: Mapped[datetime]
    event: Mapped[str] = mapped_column(Text)


class RecordState(Base):
    """The revision of each transfer record, kept across retractions so a re-transfer continues it."""

    __tablename__ = "record_states"

    record_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    child_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    revision: Mapped[int]
    content_sha256: Mapped[str] = mapped_column(String(64))


class LedgerOp(Base):
    """One operation for the Nordic side: what, why, its hash, and its outcome. The id is the sequence
    number the sink orders and deduplicates by."""

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(LedgerId, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(32), index=True)
    child_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    child_id: Mapped[str] = mapped_column(String(32))  # the export pseudonym, for the audit log
    operation: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int | None]
    record_sha256: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str | None] = mapped_column(Text)  # the canonical JSON sent, for upserts
    status: Mapped[str] = mapped_column(String(10), default=Status.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)  # > 0: it may have reached the sink
    failures: Mapped[int] = mapped_column(default=0)  # refusals since the last retry
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    batch: Mapped[str | None] = mapped_column(String(160))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_ledger_status_id", "status", "id"),)


class AuditEntry(Base):
    """Append-only (triggers refuse UPDATE and DELETE): every transfer and retraction that reached the sink."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(LedgerId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(16))  # transfer, update, retraction
    reason: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(32), index=True)
    child_id: Mapped[str] = mapped_column(String(32), index=True)
    revision: Mapped[int | None]
    record_sha256: Mapped[str | None] = mapped_column(String(64))
    sink: Mapped[str] = mapped_column(String(16))
    batch: Mapped[str | None] = mapped_column(String(160))
    ledger_id: Mapped[int] = mapped_column(BigInteger)


class DeliveryLease(Base):
    """One row: which export instance may deliver, until when (one deliverer keeps per-child order)."""

    __tablename__ = "delivery_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime]


class Transactions:
    """Export's write transactions. On SQLite one at a time in this process: a transaction that read
    before writing fails outright when another wrote in between, and the consumer and the delivery
    worker share the file. PostgreSQL needs no such gate: the queries lock the rows they decide on."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._gate = None if sessions.kw["bind"].dialect.name == "postgresql" else asyncio.Lock()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        async with self._gate or nullcontext(), self.sessions.begin() as session:
            yield session


# --- consumption --------------------------------------------------------------------------------------------

# The consumer reads and writes these as plain rows, never as ORM objects: building, tracking and flushing
# an object per report was half of the batch handler's CPU.
_CHILDREN = cast(Table, ChildRow.__table__)
_SOURCES = cast(Table, Source.__table__)
_RECORD_STATES = cast(Table, RecordState.__table__)
_LEDGER = cast(Table, LedgerOp.__table__)


@dataclass(frozen=True, slots=True)
class StoredSource:
    """A `sources` row as planning needs it: whose and which tumour's report it is, when it was received,
    and the validated event as stored (JSON, decoded only if planning needs it)."""

    child_pseudonym: str
    tumour_key: str
    form_type: str
    received_at: datetime
    event: str


@dataclass(slots=True)
class BatchState:
    """What a batch needs about its children: whether they are reserved, and the stored reports of the
    tumours (or whole children) it touches, by record key."""

    reserved: dict[str, bool]  # by child pseudonym
    sources: dict[str, StoredSource]  # by record key


@dataclass(slots=True)
class RecordsState:
    """The revisions and ledger entries of the records of a batch's children."""

    revisions: dict[str, RevisionState]  # by record id
    ledger: dict[str, list[LedgerEntry]]  # by child pseudonym, in ledger order


async def load_batch_state(
    session: AsyncSession, pseudonyms: Sequence[str], whole: Collection[str], tumours: Collection[str]
) -> BatchState:
    """Lock (on PostgreSQL) the children's rows, and load the stored reports of the `whole` children and of
    the `tumours` (keys)."""
    await insert_rows(
        session, _CHILDREN, [{"pseudonym": p, "reserved": False} for p in pseudonyms], conflict=["pseudonym"]
    )
    children = _CHILDREN.c
    reserved = {
        pseudonym: is_reserved
        for pseudonym, is_reserved in await session.execute(
            select(children.pseudonym, children.reserved)
            .where(children.pseudonym.in_(pseudonyms))
            .order_by(children.pseudonym)
            .with_for_update()
        )
    }
    sources = _SOURCES.c
    stored = {
        key: StoredSource(*row)
        for key, *row in await session.execute(
            select(
                sources.record_key,
                sources.child_pseudonym,
                sources.tumour_key,
                sources.form_type,
                sources.received_at,
                sources.event,
            ).where(_any(session, sources.child_pseudonym, whole, sources.tumour_key, tumours))
        )
    }
    return BatchState(reserved, stored)


async def load_records(session: AsyncSession, pseudonyms: Sequence[str]) -> RecordsState:
    """Load the revisions and (on PostgreSQL locked) ledger entries of the children's records: the delivery
    worker's claims of them wait for this transaction, so planning never races a claim."""
    states = _RECORD_STATES.c
    revisions = {
        record_id: RevisionState(revision, sha256)
        for record_id, revision, sha256 in await session.execute(
            select(states.record_id, states.revision, states.content_sha256).where(
                _in(session, states.child_pseudonym, pseudonyms)
            )
        )
    }
    ops = _LEDGER.c
    rows = await session.execute(
        select(
            ops.id,
            ops.child_pseudonym,
            ops.record_id,
            ops.operation,
            ops.status,
            ops.attempts,
            ops.record_sha256,
        )
        .where(_in(session, ops.child_pseudonym, pseudonyms))
        .order_by(ops.id)
        .with_for_update()
    )
    ledger: dict[str, list[LedgerEntry]] = {p: [] for p in pseudonyms}
    for row in rows:
        ledger[row.child_pseudonym].append(
            LedgerEntry(
                row.id, row.record_id, Operation(row.operation), Status(row.status), row.attempts, row.record_sha256
            )
        )
    return RecordsState(revisions, ledger)


def _any(
    session: AsyncSession,
    child: ColumnElement[str],
    children: Collection[str],
    key: ColumnElement[str],
    keys: Collection[str],
) -> ColumnElement[bool]:
    """The rows of the `children`, and those with one of the `keys`."""
    pairs = ((child, children), (key, keys))
    return or_(false(), *(_in(session, column, values) for column, values in pairs if values))


def _in(session: AsyncSession, column: ColumnElement[str], values: Collection[str]) -> ColumnElement[bool]:
    """On PostgreSQL one array parameter (`= ANY(:values)`): an IN list is rendered anew for every batch,
    a bound parameter per value, which cost a tenth of the handler's time."""
    if is_postgresql(session):
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(String)))
    return column.in_(list(values))


async def save_reservations(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """`children` rows (pseudonym, reserved, reservation_changed_at), one per child."""
    await upsert(session, _CHILDREN, rows)


async def save_sources(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """`sources` rows (every column), one per record key."""
    await upsert(session, _SOURCES, rows)


async def save_revisions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """`record_states` rows (every column), one per record id."""
    await upsert(session, _RECORD_STATES, rows)


async def append_to_ledger(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert in one statement, in list order, which is the ids' (the sequence's) order."""
    if rows:
        await session.execute(insert(_LEDGER), rows)


async def cancel_waiting(session: AsyncSession, ids: Iterable[int], statuses: Iterable[Status]) -> list[int]:
    """Cancel those of `ids` still in one of `statuses`; returns the ids cancelled."""
    ids = list(ids)
    if not ids:
        return []
    ops = _LEDGER.c
    result = await session.execute(
        update(_LEDGER)
        .where(ops.id.in_(ids), ops.status.in_([s.value for s in statuses]))
        .values(status=Status.CANCELLED.value)
        .returning(ops.id)
    )
    return list(result.scalars())


# --- delivery -----------------------------------------------------------------------------------------------


async def hold_lease(session: AsyncSession, owner: str, now: datetime, seconds: float) -> bool:
    """Take or renew the delivery lease. As the first write of a transaction it also takes SQLite's write
    lock, so what the transaction reads next is current."""
    result = await session.execute(
        update(DeliveryLease)
        .where(
            DeliveryLease.name == LEASE_NAME,
            or_(DeliveryLease.owner == owner, DeliveryLease.owner.is_(None), DeliveryLease.expires_at < now),
        )
        .values(owner=owner, expires_at=now + timedelta(seconds=seconds))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release_lease(session: AsyncSession, owner: str) -> None:
    await session.execute(update(DeliveryLease).where(DeliveryLease.owner == owner).values(owner=None))


async def waiting(session: AsyncSession, limit: int) -> list[LedgerOp]:
    """About `limit` operations to deliver, in ledger order: pending ones, and those a crashed delivery
    left claimed, plus the later waiting operations of the same records, which may supersede them.
    A child with a failed operation waits whole until it is retried: its order must hold."""
    statuses = [Status.PENDING.value, Status.SENDING.value]
    blocked = aliased(LedgerOp)
    query = (
        select(LedgerOp)
        .where(
            LedgerOp.status.in_(statuses),
            ~exists().where(
                and_(blocked.child_pseudonym == LedgerOp.child_pseudonym, blocked.status == Status.FAILED.value)
            ),
        )
        .order_by(LedgerOp.id)
        .limit(limit)
        # PostgreSQL: a child the consumer is planning right now is skipped this pass, never waited for.
        .with_for_update(of=LedgerOp, skip_locked=True)
    )
    first = list(await session.scalars(query))
    if not first:
        return first
    later = await session.scalars(
        select(LedgerOp)
        .where(
            LedgerOp.record_id.in_({op.record_id for op in first}),
            LedgerOp.status.in_(statuses),
            LedgerOp.id > first[-1].id,
        )
        .order_by(LedgerOp.id)
        .with_for_update(skip_locked=True)
    )
    return first + list(later)


async def claim(session: AsyncSession, ids: Sequence[int]) -> set[int]:
    """Mark as being sent (counting the attempt) those of `ids` nobody cancelled meanwhile."""
    if not ids:
        return set()
    result = await session.execute(
        update(LedgerOp)
        .where(LedgerOp.id.in_(ids), LedgerOp.status.in_([Status.PENDING.value, Status.SENDING.value]))
        .values(status=Status.SENDING.value, attempts=LedgerOp.attempts + 1)
        .returning(LedgerOp.id)
    )
    return set(result.scalars())


async def mark_sent(session: AsyncSession, ids: Sequence[int], now: datetime, batch: str) -> set[int]:
    """Record the sink's confirmation; returns the ids marked (not those another instance marked first)."""
    result = await session.execute(
        update(LedgerOp)
        .where(LedgerOp.id.in_(ids), LedgerOp.status == Status.SENDING.value)
        .values(status=Status.SENT.value, sent_at=now, batch=batch, last_error=None)
        .returning(LedgerOp.id)
    )
    return set(result.scalars())


async def unclaim(session: AsyncSession, ids: Sequence[int], error: str) -> None:
    """The sink was unavailable: back to pending, not counted as a refusal."""
    await session.execute(
        update(LedgerOp)
        .where(LedgerOp.id.in_(ids), LedgerOp.status == Status.SENDING.value)
        .values(status=Status.PENDING.value, last_error=error)
    )


async def record_refusal(session: AsyncSession, ids: Sequence[int], error: str, max_failures: int) -> int:
    """The sink refused: count it, and fail the operations that reached `max_failures`. Returns how many failed."""
    await session.execute(
        update(LedgerOp)
        .where(LedgerOp.id.in_(ids), LedgerOp.status == Status.SENDING.value)
        .values(failures=LedgerOp.failures + 1, last_error=error, status=Status.PENDING.value)
    )
    failed = await session.execute(
        update(LedgerOp)
        .where(LedgerOp.id.in_(ids), LedgerOp.status == Status.PENDING.value, LedgerOp.failures >= max_failures)
        .values(status=Status.FAILED.value)
        .returning(LedgerOp.id)
    )
    return len(failed.scalars().all())


async def append_to_audit_log(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(AuditEntry), rows)


async def retry_failed(session: AsyncSession) -> int:
    result = await session.execute(
        update(LedgerOp)
        .where(LedgerOp.status == Status.FAILED.value)
        .values(status=Status.PENDING.value, failures=0)
        .returning(LedgerOp.id)
    )
    return len(result.scalars().all())


# --- reading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    pending: int
    sent: int
    retracted: int
    failed: int
    cancelled: int
    reserved_children: int
    held_reports: int


async def counts(session: AsyncSession) -> Counts:
    by: dict[tuple[str, str], int] = {}
    for operation, status, n in await session.execute(
        select(LedgerOp.operation, LedgerOp.status, func.count()).group_by(LedgerOp.operation, LedgerOp.status)
    ):
        by[(operation, status)] = n

    def total(statuses: Iterable[Status], operations: Iterable[Operation] = tuple(Operation)) -> int:
        return sum(by.get((o.value, s.value), 0) for o in operations for s in statuses)

    diagnosis = aliased(Source)
    held = await session.scalar(
        select(func.count())
        .select_from(Source)
        .where(
            Source.form_type != "diagnosis",
            ~exists().where(and_(diagnosis.tumour_key == Source.tumour_key, diagnosis.form_type == "diagnosis")),
        )
    )
    reserved = await session.scalar(select(func.count()).select_from(ChildRow).where(ChildRow.reserved.is_(True)))
    return Counts(
        pending=total((Status.PENDING, Status.SENDING)),
        sent=total((Status.SENT,), (Operation.UPSERT,)),
        retracted=total((Status.SENT,), (Operation.DELETE,)),
        failed=total((Status.FAILED,)),
        cancelled=total((Status.CANCELLED,)),
        reserved_children=reserved or 0,
        held_reports=held or 0,
    )


@dataclass(frozen=True, slots=True)
class Failure:
    ledger_id: int
    record_id: str
    operation: str
    failures: int
    last_error: str | None


async def failures(session: AsyncSession, limit: int = 20) -> list[Failure]:
    """The failed operations, oldest first: what `registry export retry` would re-queue, and why they failed."""
    rows = await session.execute(
        select(LedgerOp.id, LedgerOp.record_id, LedgerOp.operation, LedgerOp.failures, LedgerOp.last_error)
        .where(LedgerOp.status == Status.FAILED.value)
        .order_by(LedgerOp.id)
        .limit(limit)
    )
    return [Failure(*row) for row in rows]


async def audit_entries(
    session: AsyncSession,
    *,
    after_id: int = 0,
    limit: int = 100,
    record_id: str | None = None,
    child_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.id > after_id)
    if record_id is not None:
        query = query.where(AuditEntry.record_id == record_id)
    if child_id is not None:
        query = query.where(AuditEntry.child_id == child_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return list(await session.scalars(query.order_by(AuditEntry.id).limit(limit)))
