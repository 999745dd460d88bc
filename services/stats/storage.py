"""Stats' own database: per-tumour facts, submissions, reminders, counters, scope versions, daily snapshots.

The hot path (a batch, a replay) reads and writes with set-based statements over these tables' Core
objects: one query per kind of state a batch touches and one upsert per table, never a query per event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    delete,
    event,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.stats.domain.model import Diagnosis, FollowUp, Outcome, Reminder, ReminderState, Submission, Tumour
from shared.db import ProcessedMessageMixin
from shared.db.bulk import insert_rows, is_postgresql, upsert
from shared.events import FormType
from shared.events.stats import ReminderKind, ReminderStatus

CONSUMER = "stats"  # the processed-ids consumer name of the stats subscription (and of a replay)
# Dict lookups: much cheaper than FormType(value) and the like, once per row of every batch.
_FORM_TYPES = {member.value: member for member in FormType}
_OUTCOMES = {member.value: member for member in Outcome}
_KINDS = {member.value: member for member in ReminderKind}
_STATUSES = {member.value: member for member in ReminderStatus}
_CHUNK = 2000  # rows per IN (...) list: well inside SQLite's and PostgreSQL's parameter limits


class Base(DeclarativeBase):
    pass


class ProcessedMessage(ProcessedMessageMixin, Base):
    # Keyed by random ids: SQLite stores the rows in the key's own b-tree instead of a rowid table plus
    # an index (half the writes per claim; a replay claims every event). PostgreSQL ignores the option.
    __table_args__ = ({"sqlite_with_rowid": False},)


class TumourRow(Base):
    """A tumour's facts as one compact JSON document (orjson): a replay rewrites a row for every tumour
    it touches, and the figures are read from the counters, never from these rows."""

    __tablename__ = "tumours"

    # The pseudonym leads the key: a batch loads every tumour of the children it concerns.
    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    hospital_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tumour_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    facts: Mapped[str] = mapped_column(Text)
    diagnosed: Mapped[bool] = mapped_column(Boolean)
    next_due_on: Mapped[date | None] = mapped_column(Date, index=True)  # the reminder sweep's index


class SubmissionRow(Base):
    """A submission's receipt and outcome as one compact JSON list, looked up by id only: each event of
    a replay reads and writes one of these."""

    __tablename__ = "submissions"
    __table_args__ = ({"sqlite_with_rowid": False},)  # looked up by random ids only, as processed ids are

    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # [hospital, form type, received year, receipted, outcome, pseudonym, tumour ref, [rejection codes],
    #  received counted] (rows written before the last field existed have 8 items: not counted)
    facts: Mapped[str] = mapped_column(Text)


class ReminderRow(Base):
    """The reminders as the API and the gauges query them; a batch reads them from their tumours' facts."""

    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_outstanding", "status", "hospital_id", "due_date"),)

    reminder_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64))
    hospital_id: Mapped[str] = mapped_column(String(32))
    tumour_ref: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    follow_up_year: Mapped[int | None] = mapped_column(SmallInteger)
    diagnosis_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8))
    transitions: Mapped[int] = mapped_column(Integer)
    changed_on: Mapped[date] = mapped_column(Date)


class CounterRow(Base):
    __tablename__ = "counters"
    __table_args__ = ({"sqlite_with_rowid": False},)  # read and upserted by key only

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)  # a year, or 0 for all time
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class ScopeRow(Base):
    """Outlives a rebuild: versions only ever increase on the compacted snapshot topic."""

    __tablename__ = "scopes"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    published_version: Mapped[int] = mapped_column(BigInteger, default=0)


class PeriodVersionRow(Base):
    """Which periods (years, and all time) of a scope changed since the publisher last read them: it
    recomputes only those. Outlives a rebuild, as the scope versions do, so versions only increase."""

    __tablename__ = "period_versions"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class DailySnapshotRow(Base):
    """The last snapshot of each scope and day, as the registry's daily statistics were; outlives a rebuild."""

    __tablename__ = "daily_snapshots"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    snapshot: Mapped[str] = mapped_column(Text)  # the StatsSnapshot event as published


# What `registry stats rebuild` empties and fills again from the topics.
PROJECTION_TABLES: tuple[Table, ...] = tuple(
    cast(Table, model.__table__) for model in (ProcessedMessage, TumourRow, SubmissionRow, ReminderRow, CounterRow)
)
_T = cast(Table, TumourRow.__table__)
_S = cast(Table, SubmissionRow.__table__)
_R = cast(Table, ReminderRow.__table__)
_C = cast(Table, CounterRow.__table__)
_V = cast(Table, ScopeRow.__table__)
_P = cast(Table, PeriodVersionRow.__table__)
_COUNTER_KEY = ("scope", "period", "metric", "key")
_D = cast(Table, DailySnapshotRow.__table__)

# The batch's lookups, built once: an expanding parameter takes the list as it is (no per-element
# coercion of a literal IN list) and keeps the statement in SQLAlchemy's compiled cache.
_CHILDREN = (
    select(_T)
    .where(_T.c.pseudonym.in_(bindparam("pseudonyms", expanding=True)))
    .order_by(*_T.primary_key.columns)
    .with_for_update()
)
_SUBMISSIONS = select(_S.c.submission_id, _S.c.facts).where(_S.c.submission_id.in_(bindparam("ids", expanding=True)))


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def with_page_cache(engine: AsyncEngine) -> AsyncEngine:
    """Give SQLite connections a 256 MiB page cache (allocated only as pages are read): the working set
    of processed ids, facts and counters outgrows the 2 MiB default after a few hundred thousand
    events, and then cache misses cost more than the statements. PostgreSQL sizes its own buffers."""
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _page_cache(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA cache_size=-262144")  # in KiB
            cursor.close()

    return engine


# --- tumours ---------------------------------------------------------------------------------------


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


def _tumour_from(row: Any) -> Tumour:
    facts = orjson.loads(row.facts)
    diagnosis = None
    if (d := facts["diagnosis"]) is not None:
        diagnosis = Diagnosis(
            submission_id=uuid.UUID(d[0]),
            received_at=datetime.fromisoformat(d[1]),
            diagnosis_date=date.fromisoformat(d[2]),
            birth_date=date.fromisoformat(d[3]),
            sex=d[4],
            topography=d[5],
            morphology=d[6],
            basis=d[7],
            main_group=d[8],
            subgroup=d[9],
            with_override=d[10],
        )
    return Tumour(
        pseudonym=row.pseudonym,
        hospital_id=row.hospital_id,
        tumour_ref=row.tumour_ref,
        diagnosis=diagnosis,
        diagnosis_reported_on=_day(facts["diagnosis_reported_on"]),
        treatment_reported_on=_day(facts["treatment_reported_on"]),
        follow_ups=[
            FollowUp(
                uuid.UUID(sid),
                uuid.UUID(report_id),
                datetime.fromisoformat(received_at),
                date.fromisoformat(contact),
                _day(death),
            )
            for sid, report_id, received_at, contact, death in facts["follow_ups"]
        ],
        tallies={(year, metric, key): count for year, metric, key, count in facts["tallies"]},
        follow_up_due=facts["follow_up_due"],
        follow_up_reported=facts["follow_up_reported"],
        next_due_on=row.next_due_on,
        reminders={
            (_KINDS[kind], year): ReminderState(
                _STATUSES[status],
                date.fromisoformat(diagnosed),
                date.fromisoformat(due),
                transitions,
                date.fromisoformat(changed),
            )
            for kind, year, status, diagnosed, due, transitions, changed in facts["reminders"]
        },
    )


def _tumour_row(tumour: Tumour) -> dict[str, Any]:
    d = tumour.diagnosis
    facts = {
        "diagnosis": None
        if d is None
        else [
            d.submission_id,
            d.received_at,
            d.diagnosis_date,
            d.birth_date,
            d.sex,
            d.topography,
            d.morphology,
            d.basis,
            d.main_group,
            d.subgroup,
            d.with_override,
        ],
        "diagnosis_reported_on": tumour.diagnosis_reported_on,
        "treatment_reported_on": tumour.treatment_reported_on,
        "follow_ups": [
            [f.submission_id, f.report_id, f.received_at, f.last_contact_date, f.death_date] for f in tumour.follow_ups
        ],
        "tallies": [[*key, count] for key, count in tumour.tallies.items()],
        "follow_up_due": tumour.follow_up_due,
        "follow_up_reported": tumour.follow_up_reported,
        "reminders": [
            [kind, year, r.status, r.diagnosis_date, r.due_date, r.transitions, r.changed_on]
            for (kind, year), r in tumour.reminders.items()
        ],
    }
    return {
        "pseudonym": tumour.pseudonym,
        "hospital_id": tumour.hospital_id,
        "tumour_ref": tumour.tumour_ref,
        "facts": orjson.dumps(facts).decode(),
        "diagnosed": d is not None,
        "next_due_on": tumour.next_due_on,
    }


async def load_children(session: AsyncSession, pseudonyms: Iterable[str]) -> dict[str, dict[tuple[str, str], Tumour]]:
    """Every tumour of these children, locked on PostgreSQL until the batch commits (the sweep and a
    consumer must not both rewrite a child from what each read)."""
    children: dict[str, dict[tuple[str, str], Tumour]] = {}
    for chunk in _chunks(sorted(set(pseudonyms))):
        for row in await session.execute(_CHILDREN, {"pseudonyms": chunk}):
            tumour = _tumour_from(row)
            children.setdefault(tumour.pseudonym, {})[tumour.key] = tumour
    return children


async def save_tumours(session: AsyncSession, tumours: Iterable[Tumour]) -> None:
    await upsert(session, _T, [_tumour_row(t) for t in tumours])


async def children_due(session: AsyncSession, today: date, limit: int) -> list[str]:
    """Children with a tumour whose reminders or follow-up figures change by `today`."""
    statement = select(_T.c.pseudonym).where(_T.c.next_due_on <= today).distinct().limit(limit)
    return list(await session.scalars(statement))


# --- submissions -----------------------------------------------------------------------------------


# A transaction-level advisory lock per submission, taken in key order (so two batches cannot deadlock
# on them): volatile functions in the select list run after the ORDER BY.
_LOCK_SUBMISSIONS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k")


async def lock_submissions(session: AsyncSession, ids: Iterable[uuid.UUID]) -> None:
    """Hold these submissions until the transaction ends. Their receipt (keyed by hospital) and their
    outcome (keyed by child) can reach two instances of the group at once, and a row that does not exist
    yet cannot be locked with FOR UPDATE: without this, each would write its own half of the facts and
    the later commit would erase the other's. SQLite has one writer at a time anyway."""
    if is_postgresql(session):
        # The first 8 bytes of the id as a signed 64-bit key: a collision only makes two batches wait.
        keys = sorted({int.from_bytes(i.bytes[:8], "big", signed=True) for i in ids})
        await session.execute(_LOCK_SUBMISSIONS, {"keys": keys})


async def load_submissions(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Submission]:
    found: dict[uuid.UUID, Submission] = {}
    for chunk in _chunks(list(set(ids))):
        for submission_id, facts in await session.execute(_SUBMISSIONS, {"ids": chunk}):
            hospital, form_type, year, receipted, outcome, pseudonym, ref, codes, *counted = orjson.loads(facts)
            found[submission_id] = Submission(
                submission_id=submission_id,
                hospital_id=hospital,
                form_type=_FORM_TYPES[form_type],
                received_year=year,
                receipted=receipted,
                outcome=_OUTCOMES[outcome] if outcome else None,
                pseudonym=pseudonym,
                tumour_ref=ref,
                rejection_codes=tuple(codes),
                received_counted=bool(counted) and counted[0],
            )
    return found


async def save_submissions(session: AsyncSession, submissions: Iterable[Submission]) -> None:
    rows = [
        {
            "submission_id": s.submission_id,
            "facts": orjson.dumps(
                [
                    s.hospital_id,
                    s.form_type,
                    s.received_year,
                    s.receipted,
                    s.outcome,
                    s.pseudonym,
                    s.tumour_ref,
                    s.rejection_codes,
                    s.received_counted,
                ]
            ).decode(),
        }
        for s in submissions
    ]
    await upsert(session, _S, rows)


# --- reminders -------------------------------------------------------------------------------------


def _reminder_from(row: Any) -> Reminder:
    return Reminder(
        reminder_id=row.reminder_id,
        pseudonym=row.pseudonym,
        hospital_id=row.hospital_id,
        tumour_ref=row.tumour_ref,
        kind=_KINDS[row.kind],
        follow_up_year=row.follow_up_year,
        diagnosis_date=row.diagnosis_date,
        due_date=row.due_date,
        status=_STATUSES[row.status],
        transitions=row.transitions,
        changed_on=row.changed_on,
    )


async def all_reminders(session: AsyncSession) -> list[Reminder]:
    return [_reminder_from(row) for row in await session.execute(select(_R))]


async def save_reminders(session: AsyncSession, reminders: Iterable[Reminder]) -> None:
    rows = [
        {
            "reminder_id": r.reminder_id,
            "pseudonym": r.pseudonym,
            "hospital_id": r.hospital_id,
            "tumour_ref": r.tumour_ref,
            "kind": r.kind.value,
            "follow_up_year": r.follow_up_year,
            "diagnosis_date": r.diagnosis_date,
            "due_date": r.due_date,
            "status": r.status.value,
            "transitions": r.transitions,
            "changed_on": r.changed_on,
        }
        for r in reminders
    ]
    await upsert(session, _R, rows)


async def outstanding_reminders(session: AsyncSession, hospital_id: str | None) -> list[Reminder]:
    statement = select(_R).where(_R.c.status == ReminderStatus.OPEN.value)
    if hospital_id is not None:
        statement = statement.where(_R.c.hospital_id == hospital_id)
    statement = statement.order_by(_R.c.hospital_id, _R.c.due_date, _R.c.tumour_ref, _R.c.kind, _R.c.follow_up_year)
    return [_reminder_from(row) for row in await session.execute(statement)]


async def outstanding_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    statement = (
        select(_R.c.hospital_id, _R.c.kind, func.count())
        .where(_R.c.status == ReminderStatus.OPEN.value)
        .group_by(_R.c.hospital_id, _R.c.kind)
    )
    return {(hospital, kind): count for hospital, kind, count in await session.execute(statement)}


# --- counters and scopes ---------------------------------------------------------------------------


async def add_to_counters(session: AsyncSession, changes: dict[tuple[str, int, str, str], int]) -> None:
    """Add the changes and advance the version of every scope they touch."""
    if not changes:
        return
    rows = [
        {"scope": scope, "period": period, "metric": metric, "key": key, "value": value}
        for (scope, period, metric, key), value in sorted(changes.items())  # sorted: rows locked in one order
    ]
    await insert_rows(session, _C, rows, conflict=_COUNTER_KEY, update={"value": lambda new: _C.c.value + new.value})
    await bump_versions(session, {key[0] for key in changes})
    await _bump_periods(session, {key[:2] for key in changes})


async def bump_versions(session: AsyncSession, scopes: Iterable[str]) -> None:
    # Sorted, so concurrent writers lock scope rows in one order.
    rows = [{"scope": s, "version": 1, "published_version": 0} for s in sorted(set(scopes))]
    await insert_rows(session, _V, rows, conflict=("scope",), update={"version": lambda _: _V.c.version + 1})


async def _bump_periods(session: AsyncSession, periods: Iterable[tuple[str, int]]) -> None:
    rows = [{"scope": scope, "period": period, "version": 1} for scope, period in sorted(periods)]
    await insert_rows(session, _P, rows, conflict=("scope", "period"), update={"version": lambda _: _P.c.version + 1})


async def period_versions(session: AsyncSession, scopes: Iterable[str]) -> dict[str, dict[int, int]]:
    """The period versions of these scopes, by scope then period."""
    statement = select(_P.c.scope, _P.c.period, _P.c.version).where(_P.c.scope.in_(list(scopes)))
    by_scope: dict[str, dict[int, int]] = {}
    for scope, period, version in await session.execute(statement):
        by_scope.setdefault(scope, {})[period] = version
    return by_scope


async def counters_of(
    session: AsyncSession, periods: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], dict[tuple[str, str], int]]:
    """The counters of these (scope, period) pairs, by pair then (metric, key)."""
    wanted = list(periods)
    if not wanted:
        return {}
    statement = select(_C.c.scope, _C.c.period, _C.c.metric, _C.c.key, _C.c.value).where(
        tuple_(_C.c.scope, _C.c.period).in_(wanted), _C.c.value != 0
    )
    by_period: dict[tuple[str, int], dict[tuple[str, str], int]] = {}
    for scope, period, metric, key, value in await session.execute(statement):
        by_period.setdefault((scope, period), {})[(metric, key)] = value
    return by_period


async def scope_version(session: AsyncSession, scope: str) -> int | None:
    return await session.scalar(select(_V.c.version).where(_V.c.scope == scope))


async def scopes(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(_V.c.scope).order_by(_V.c.scope)))


async def dirty_scopes(session: AsyncSession) -> dict[str, int]:
    """The scopes changed since their last published snapshot, with their versions."""
    statement = select(_V.c.scope, _V.c.version).where(_V.c.version > _V.c.published_version).order_by(_V.c.scope)
    return {scope: version for scope, version in await session.execute(statement)}


# Only ever raises the mark: a scope changed while its snapshot was published stays dirty.
_MARK_PUBLISHED = (
    update(_V)
    .where(_V.c.scope == bindparam("b_scope"), _V.c.published_version < bindparam("b_version"))
    .values(published_version=bindparam("b_version"))
)


async def mark_published(session: AsyncSession, versions: dict[str, int]) -> None:
    if versions:  # one executemany (pipelined by asyncpg), scopes in key order
        rows = [{"b_scope": scope, "b_version": version} for scope, version in sorted(versions.items())]
        await session.execute(_MARK_PUBLISHED, rows)


async def save_daily(session: AsyncSession, day: date, snapshots: Iterable[tuple[str, int, str]]) -> None:
    """Keep (scope, version, snapshot JSON) as each scope's snapshot of `day`."""
    rows = [
        {"scope": scope, "day": day, "version": version, "snapshot": snapshot} for scope, version, snapshot in snapshots
    ]
    await upsert(session, _D, rows)


async def daily_snapshots(session: AsyncSession, scope: str, first: date, last: date) -> list[DailySnapshotRow]:
    """The scope's daily rows from the last one on or before `first` up to `last` (to carry forward)."""
    start = await session.scalar(
        select(func.max(DailySnapshotRow.day)).where(DailySnapshotRow.scope == scope, DailySnapshotRow.day <= first)
    )
    statement = (
        select(DailySnapshotRow)
        .where(DailySnapshotRow.scope == scope, DailySnapshotRow.day >= (start or first), DailySnapshotRow.day <= last)
        .order_by(DailySnapshotRow.day)
    )
    return list(await session.scalars(statement))


# --- processed ids and rebuild ---------------------------------------------------------------------


async def reset_projection(session: AsyncSession) -> None:
    """Empty the projection tables (not the scope versions or the daily history)."""
    # Every period's figures are stale now, whatever the replay changes or leaves out.
    await session.execute(update(_P).values(version=_P.c.version + 1))
    if is_postgresql(session):
        names = ", ".join(table.name for table in PROJECTION_TABLES)
        await session.execute(text(f"TRUNCATE {names}"))
    else:
        for table in PROJECTION_TABLES:  # SQLite turns an unconditional DELETE into a fast truncate
            await session.execute(delete(table))


async def count_rows(session: AsyncSession) -> dict[str, int]:
    counts = {}
    for table in (_T, _S, _R):
        counts[table.name] = await session.scalar(select(func.count()).select_from(table)) or 0
    counts["diagnosed tumours"] = await session.scalar(select(func.count()).select_from(_T).where(_T.c.diagnosed)) or 0
    return counts
