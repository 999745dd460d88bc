"""Intake's database: the identity vault, submissions with their receipts, drafts, reservations and the
outbox. SQLAlchemy 2 typed ORM, the same schema on SQLite and PostgreSQL (migrations/versions/).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    and_,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import ProcessedMessageMixin
from shared.db.types import UtcDateTime
from shared.events import Event, ReceiptStatus


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, date: Date, uuid.UUID: Uuid}


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class VaultEntry(Base):
    """The identity vault: the only place the identity number is kept, sealed with the vault key. The
    pseudonym is a keyed HMAC of the number, so the database alone reveals neither."""

    __tablename__ = "identity_vault"

    pseudonym: Mapped[str] = mapped_column(String(52), primary_key=True)
    national_id_sealed: Mapped[str] = mapped_column(Text)
    birth_date: Mapped[date]
    sex: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class Submission(Base):
    """A registered submission and its receipt (the status validation decided, with its findings)."""

    __tablename__ = "submissions"

    submission_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_id: Mapped[str] = mapped_column(String(32))
    form_type: Mapped[str] = mapped_column(String(16))
    form_version: Mapped[int]
    tumour_ref: Mapped[str] = mapped_column(String(64))
    child_pseudonym: Mapped[str] = mapped_column(ForeignKey("identity_vault.pseudonym"))
    form: Mapped[dict[str, Any]] = mapped_column(JSON)  # the clinical form, no identity in it
    made_at: Mapped[datetime]
    received_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(8))
    # Keyed digest of the whole message: the same submission_id with another body is a conflict.
    request_digest: Mapped[str] = mapped_column(String(64))
    # The report this submission is a version of (the first submission of its chain of corrections) and
    # the version it corrects; a version is corrected at most once, so each report is one chain.
    report_id: Mapped[uuid.UUID]
    supersedes: Mapped[uuid.UUID | None]
    draft_id: Mapped[uuid.UUID | None]
    event_id: Mapped[uuid.UUID]  # of its SubmissionReceived
    status: Mapped[str] = mapped_column(String(10), default=ReceiptStatus.RECEIVED.value)
    decided_at: Mapped[datetime | None]
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Never loaded (nor assigned): it tells the unit of work that a flush inserts vault entries before the
    # submissions that refer to them, so a batch can add both and write them in one flush.
    child: Mapped[VaultEntry] = relationship(lazy="raise", viewonly=False)

    __table_args__ = (
        Index("ix_submissions_chain", "hospital_id", "tumour_ref", "received_at"),
        Index("ix_submissions_receipts", "hospital_id", "received_at", "submission_id"),
        Index("ix_submissions_status", "hospital_id", "status", "received_at"),
        Index("ux_submissions_supersedes", "supersedes", unique=True),  # NULLs are distinct in both databases
    )


class Draft(Base):
    __tablename__ = "drafts"

    draft_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_id: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int]
    content_sealed: Mapped[str] = mapped_column(Text)  # may hold the identity number: sealed
    form_type: Mapped[str | None] = mapped_column(String(16))
    tumour_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Reservation(Base):
    __tablename__ = "reservations"

    reservation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    child_pseudonym: Mapped[str] = mapped_column(ForeignKey("identity_vault.pseudonym"))
    status: Mapped[str] = mapped_column(String(10))
    recorded_by: Mapped[str] = mapped_column(String(64))
    effective_at: Mapped[datetime]
    registered_at: Mapped[datetime]
    withdrawn_by: Mapped[str | None] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_reservations_child", "child_pseudonym", "registered_at"),
        # At most one active reservation per child, whichever process registers it.
        Index(
            "ux_reservations_active",
            "child_pseudonym",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )


class OutboxMessage(Base):
    """An event waiting for the relay, written in the transaction of the change it announces. `seq`
    is the publishing order."""

    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    topic: Mapped[str] = mapped_column(String(128))  # the topic's platform name, without the prefix
    key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ix_outbox_unsent", "seq", sqlite_where=text("sent_at IS NULL"), postgresql_where=text("sent_at IS NULL")
        ),
    )


# --- transactions ------------------------------------------------------------------------------------------

# PostgreSQL advisory lock keys (any constant 64-bit numbers, the same in every intake process).
SUBMISSIONS_LOCK = 0x1A7A4E_0001
RELAY_LOCK = 0x1A7A4E_0002


class Database:
    """Transactions for intake's writes, serialised where the database needs it.

    PostgreSQL: a submission's checks (is the id taken, what does it supersede, is the tumour reference
    another child's) and its insert must not interleave with another submission's, also in another
    intake process: `serialised` transactions take one transaction-scoped advisory lock. One lock, not
    one per tumour, because an inbound batch registers many submissions in one transaction and a lock
    per tumour could deadlock against the vault's inserts; intake's volume is far below what one lock
    serialises. SQLite allows one writer per database anyway, and a transaction that read before
    writing would fail when another wrote in between: every write in this process waits its turn.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        bind = sessions.kw["bind"]
        self.is_postgres = bind.dialect.name == "postgresql"
        self._sqlite_writer = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self, *, serialised: bool = False) -> AsyncIterator[AsyncSession]:
        async with nullcontext() if self.is_postgres else self._sqlite_writer, self.sessions.begin() as session:
            if serialised and self.is_postgres:
                await session.execute(select(func.pg_advisory_xact_lock(SUBMISSIONS_LOCK)))
            yield session

    async def try_relay_lock(self, session: AsyncSession) -> bool:
        """Whether this transaction may relay the outbox (PostgreSQL: no other process relays now)."""
        if not self.is_postgres:
            return True
        return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK))))


# --- queries ----------------------------------------------------------------------------------------------


async def add_to_vault(session: AsyncSession, entry: VaultEntry) -> None:
    """Insert the child unless the vault already has them (also when another transaction just did)."""
    values = {c.key: getattr(entry, c.key) for c in VaultEntry.__table__.columns}
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(insert(VaultEntry).values(values).on_conflict_do_nothing(index_elements=["pseudonym"]))


async def vault_entry(session: AsyncSession, pseudonym: str) -> VaultEntry | None:
    return await session.get(VaultEntry, pseudonym)


def add_outbox(session: AsyncSession, topic: str, key: str, event: Event, now: datetime) -> None:
    session.add(
        OutboxMessage(event_id=event.event_id, topic=topic, key=key, payload=event.to_json().decode(), created_at=now)
    )


async def in_outbox(session: AsyncSession, event_id: uuid.UUID) -> bool:
    return await session.scalar(select(OutboxMessage.seq).where(OutboxMessage.event_id == event_id)) is not None


async def tumour_history(session: AsyncSession, hospital_id: str, tumour_ref: str) -> Sequence[Submission]:
    """The hospital's earlier submissions about this tumour, in the order intake received them."""
    result = await session.scalars(
        select(Submission)
        .where(Submission.hospital_id == hospital_id, Submission.tumour_ref == tumour_ref)
        .order_by(Submission.received_at, Submission.submission_id)
    )
    return result.all()


async def receipts_page(
    session: AsyncSession,
    *,
    hospital_id: str | None,
    status: ReceiptStatus | None,
    received_from: datetime | None,
    received_before: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Submission]:
    """Receipts in receipt order, from just after the keyset cursor `after`."""
    query = select(Submission)
    if hospital_id is not None:
        query = query.where(Submission.hospital_id == hospital_id)
    if status is not None:
        query = query.where(Submission.status == status.value)
    if received_from is not None:
        query = query.where(Submission.received_at >= received_from)
    if received_before is not None:
        query = query.where(Submission.received_at < received_before)
    if after is not None:
        at, submission_id = after
        query = query.where(
            or_(
                Submission.received_at > at,
                and_(Submission.received_at == at, Submission.submission_id > submission_id),
            )
        )
    result = await session.scalars(query.order_by(Submission.received_at, Submission.submission_id).limit(limit))
    return result.all()


async def drafts_page(
    session: AsyncSession, *, hospital_id: str | None, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Sequence[Draft]:
    query = select(Draft)
    if hospital_id is not None:
        query = query.where(Draft.hospital_id == hospital_id)
    if after is not None:
        at, draft_id = after
        query = query.where(or_(Draft.created_at > at, and_(Draft.created_at == at, Draft.draft_id > draft_id)))
    result = await session.scalars(query.order_by(Draft.created_at, Draft.draft_id).limit(limit))
    return result.all()


async def active_reservation(session: AsyncSession, pseudonym: str) -> Reservation | None:
    return await session.scalar(
        select(Reservation).where(Reservation.child_pseudonym == pseudonym, Reservation.status == "active")
    )


async def latest_reservation(session: AsyncSession, pseudonym: str) -> Reservation | None:
    return await session.scalar(
        select(Reservation)
        .where(Reservation.child_pseudonym == pseudonym)
        .order_by(Reservation.registered_at.desc())
        .limit(1)
    )


async def unsent(session: AsyncSession, limit: int) -> Sequence[OutboxMessage]:
    result = await session.scalars(
        select(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.seq).limit(limit)
    )
    return result.all()


async def mark_sent(session: AsyncSession, seqs: Sequence[int], at: datetime) -> None:
    await session.execute(update(OutboxMessage).where(OutboxMessage.seq.in_(seqs)).values(sent_at=at))


async def outbox_backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """Unsent rows and when the oldest of them was written."""
    row = (
        await session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(OutboxMessage.sent_at.is_(None))
        )
    ).one()
    return int(row[0]), row[1]
