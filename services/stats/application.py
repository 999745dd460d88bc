"""Use cases of the stats service: applying a batch (one transaction with its processed-ids claim), the
reminder sweep, publishing changed scopes (coalesced), the queries of the API, and the rebuild steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.stats import storage
from services.stats.domain.figures import TOTAL, M, figures
from services.stats.domain.model import Reminder, Tumour
from services.stats.domain.projection import BatchState, Changes, InputEvent, project
from services.stats.domain.reminders import missing_form, state_of
from services.stats.metrics import (
    REMINDERS_OUTSTANDING,
    SNAPSHOTS_PUBLISHED_TOTAL,
    SUBMISSIONS_ACCEPTED_TOTAL,
    SUBMISSIONS_REJECTED_TOTAL,
)
from services.stats.settings import StatsSettings
from shared.db import claim_new
from shared.events import ReceiptIssued, ReceiptStatus, SubmissionRejected, SubmissionValidated
from shared.events.base import derived_event_id
from shared.events.stats import REGISTRY_SCOPE, Figures, ReminderChanged, ReminderKind, ReminderStatus, StatsSnapshot
from shared.kafka import Delivery, Outgoing
from shared.observability.metrics import count_consumed
from shared.topics import REMINDERS, STATS_SNAPSHOTS

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]
SWEEP_CHUNK = 1000  # children re-evaluated per sweep transaction
PUBLISHING_PAUSE_FACTOR = 9  # a flush that took t waits at least 9 t before the next: a tenth of the time


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Applied:
    applied: list[InputEvent] = field(default_factory=list)
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class _Period:
    """A period's figures as of its version (None: no counters left in it)."""

    version: int
    figures: Figures | None
    reminders_open: int


class StatsApplication:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: StatsSettings,
        clock: Clock,
        publish: Publish,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.publish = publish
        self.tz = ZoneInfo(settings.timezone)
        self.policy = settings.reminder_policy
        self.snapshot_topic = settings.kafka.topic(STATS_SNAPSHOTS)
        self.reminder_topic = settings.kafka.topic(REMINDERS)
        # Set when a scope may have changed; the publisher waits on it, so an idle service does no work.
        self.changed = asyncio.Event()
        # Batches, the sweep and the publisher each read and then write the same rows. PostgreSQL orders
        # them with row and advisory locks, so they overlap; SQLite would refuse a stale writer, so there
        # they take turns.
        sqlite = sessions.kw["bind"].dialect.name == "sqlite"
        self._writing: contextlib.AbstractAsyncContextManager[object] = (
            asyncio.Lock() if sqlite else contextlib.nullcontext()
        )
        self._reminders_changed = True  # gauges start from the database
        self._gauged: set[str] = set()
        self._draining = False  # the last batch was full: a backlog is draining
        # The figures of each (scope, period) as of its period version: a flush recomputes only the
        # periods changed since, not every year of every scope (~8,000 counter rows a flush otherwise).
        self._periods: dict[tuple[str, int], _Period] = {}

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    # --- consuming -------------------------------------------------------------------------------

    async def handle(self, batch: Sequence[Delivery[InputEvent]]) -> None:
        """The batch handler: apply in one transaction, then count what was applied."""
        self._draining = len(batch) >= self.settings.kafka.max_batch
        result = await self.apply([delivery.event for delivery in batch])
        # By identity: a duplicate inside the batch is another object, and ints hash faster than UUIDs.
        applied = {id(event) for event in result.applied}
        count_consumed("stats", [(delivery.topic, id(delivery.event) in applied) for delivery in batch])

    async def apply(self, events: Sequence[InputEvent], *, announce: bool = True) -> Applied:
        """Apply the events not seen before; publish the reminders they open or clear (unless a replay
        says not to) before the transaction commits."""
        now = self.clock.now()
        today = now.astimezone(self.tz).date()
        async with self._writing, self.sessions.begin() as session:
            new = await claim_new(session, storage.ProcessedMessage, storage.CONSUMER, [e.event_id for e in events])
            fresh = []
            for event in events:  # in offset order: per-child order holds
                if event.event_id in new:
                    new.discard(event.event_id)  # a duplicate inside the batch, too
                    fresh.append(event)
            if not fresh:
                return Applied(duplicates=len(events))
            changes = await self._project(session, fresh, (), today)
            if announce:
                await self.publish(self._reminder_messages(changes.reminders, now))
        self._committed(changes)
        outcomes = Counter(
            (isinstance(e, SubmissionValidated), e.hospital_id, e.form.form_type)
            for e in fresh
            if isinstance(e, SubmissionValidated | SubmissionRejected)
        )
        for (accepted, hospital, form_type), count in outcomes.items():
            total = SUBMISSIONS_ACCEPTED_TOTAL if accepted else SUBMISSIONS_REJECTED_TOTAL
            total.labels(hospital=hospital, form_type=form_type).inc(count)
        return Applied(fresh, len(events) - len(fresh))

    async def sweep(self, *, announce: bool = True) -> list[Reminder]:
        """Re-evaluate every child whose reminders or follow-up figures change by today."""
        changed: list[Reminder] = []
        while True:
            now = self.clock.now()
            today = now.astimezone(self.tz).date()
            async with self._writing, self.sessions.begin() as session:
                due = await storage.children_due(session, today, SWEEP_CHUNK)
                if not due:
                    return changed
                changes = await self._project(session, [], due, today)
                if announce:
                    await self.publish(self._reminder_messages(changes.reminders, now))
            self._committed(changes)
            changed += changes.reminders

    async def _project(
        self, session: AsyncSession, events: Sequence[InputEvent], pseudonyms: Sequence[str], today: date
    ) -> Changes:
        events = [e for e in events if not isinstance(e, ReceiptIssued) or e.status is ReceiptStatus.RECEIVED]
        ids = [e.submission_id for e in events]
        await storage.lock_submissions(session, ids)
        submissions = await storage.load_submissions(session, ids)
        wanted = set(pseudonyms)
        wanted.update(e.child.pseudonym for e in events if not isinstance(e, ReceiptIssued))
        # A receipt needs its child only when it adds to a tumour's tallies: an outcome came first, and
        # under the rule before `received_counted` (rows stored before it) did not count it received.
        wanted.update(
            s.pseudonym
            for s in submissions.values()
            if s.pseudonym is not None and not s.receipted and not s.received_counted
        )
        state = BatchState(submissions=submissions, children=await storage.load_children(session, wanted), tz=self.tz)
        changes = project(state, events, today, self.policy)
        await storage.save_submissions(session, changes.submissions)
        await storage.save_tumours(session, changes.tumours)
        await storage.save_reminders(session, changes.reminders)
        await storage.add_to_counters(session, changes.counters)
        return changes

    def _committed(self, changes: Changes) -> None:
        if changes.counters:
            self.changed.set()
        if changes.reminders:
            self._reminders_changed = True

    # --- background tasks ------------------------------------------------------------------------

    async def run_publisher(self) -> None:
        """Publish changed scopes, at most once per `snapshot_interval_s` (the coalescing). While a backlog
        drains (batches come full), with at most a tenth of the process's time: every flush then recomputes
        most periods of every scope, and flushing twice a second took a sixth of the time batches needed.
        Otherwise at the interval, however long a flush took: the snapshot is what dashboards wait for."""
        self.changed.set()  # scopes left unpublished by a previous process
        while True:
            await self.changed.wait()
            self.changed.clear()
            started = time.perf_counter()
            try:
                await self.flush()
                if self._reminders_changed:
                    self._reminders_changed = False
                    await self.refresh_reminder_gauges()
            except Exception as exc:
                # Broker or database away: the scopes stay marked in the database; try again next round.
                # Only the error's type: a database error's text would quote the row, pseudonym included.
                log.warning("publishing stats snapshots failed (%s); retrying", type(exc).__name__)
                self.changed.set()
            pause = self.settings.snapshot_interval_s
            if self._draining:
                pause = max(pause, PUBLISHING_PAUSE_FACTOR * (time.perf_counter() - started))
            await asyncio.sleep(pause)

    async def run_sweeper(self) -> None:
        """Open the reminders that fall due as days pass (the first sweep runs at start-up)."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("reminder sweep failed (%s); retrying at the next interval", type(exc).__name__)
            await asyncio.sleep(self.settings.reminder_sweep_interval_s)

    def _reminder_messages(self, reminders: Sequence[Reminder], now: datetime) -> list[Outgoing]:
        return [Outgoing(self.reminder_topic, r.hospital_id, reminder_event(r, now)) for r in reminders]

    # --- publishing snapshots --------------------------------------------------------------------

    async def flush(self) -> list[StatsSnapshot]:
        """Publish a snapshot of every scope changed since its last one, and keep it as the day's."""
        now = self.clock.now()
        today = now.astimezone(self.tz).date()
        # Reading and computing the figures (most of the work) holds no writer's turn, so batches go on
        # meanwhile: a snapshot is labelled with the version read first and may hold newer counters, and a
        # scope changed since is still dirty afterwards (`mark_published` only raises the mark).
        async with self.sessions() as session:
            snapshots = await self._snapshots(session, await storage.dirty_scopes(session), now)
        if not snapshots:
            return []
        await self.publish([Outgoing(self.snapshot_topic, s.scope, s) for s in snapshots])
        async with self._writing, self.sessions.begin() as session:
            await storage.save_daily(session, today, [(s.scope, s.version, s.to_json().decode()) for s in snapshots])
            await storage.mark_published(session, {s.scope: s.version for s in snapshots})
        for snapshot in snapshots:
            SNAPSHOTS_PUBLISHED_TOTAL.labels(scope=snapshot.scope).inc()
        return snapshots

    async def refresh_reminder_gauges(self) -> None:
        async with self.sessions() as session:
            counts = await storage.outstanding_counts(session)
        self._gauged.update(hospital for hospital, _ in counts)
        for hospital in self._gauged:  # a hospital whose reminders all cleared goes to 0, not stale
            for kind in ReminderKind:
                REMINDERS_OUTSTANDING.labels(hospital=hospital, kind=kind.value).set(
                    counts.get((hospital, kind.value), 0)
                )

    async def _snapshots(self, session: AsyncSession, versions: dict[str, int], now: datetime) -> list[StatsSnapshot]:
        """The snapshots of these scopes at these versions, in three queries whatever their number."""
        # Versions are read first, counters after: the counters are as new as the versions or newer, and
        # a period changed in between is recomputed at the next flush, its version having moved on.
        periods = await storage.period_versions(session, versions)
        stale = [
            (scope, period)
            for scope, by_period in periods.items()
            for period, version in by_period.items()
            if getattr(self._periods.get((scope, period)), "version", None) != version
        ]
        counters = await storage.counters_of(session, stale)
        for scope, period in stale:
            self._periods[(scope, period)] = self._period(periods[scope][period], counters.get((scope, period), {}))
        return [
            self._snapshot(scope, version, sorted(periods.get(scope, ())), now) for scope, version in versions.items()
        ]

    def _snapshot(self, scope: str, version: int, periods: list[int], now: datetime) -> StatsSnapshot:
        total = self._periods.get((scope, TOTAL)) or self._period(0, {})
        years = {p: self._periods[(scope, p)].figures for p in periods if p != TOTAL}
        return StatsSnapshot(
            # The same scope and version name the same snapshot, however often it is published.
            event_id=derived_event_id(f"stats.snapshot:{scope}", str(version)),
            occurred_at=now,
            scope=scope,
            version=version,
            total=total.figures or figures({}, self.settings.treatment_report_target),
            by_diagnosis_year={str(p): f for p, f in years.items() if f is not None},
            reminders_open=total.reminders_open,
        )

    def _period(self, version: int, counters: dict[tuple[str, str], int]) -> _Period:
        return _Period(
            version,
            figures(counters, self.settings.treatment_report_target) if counters else None,
            sum(value for (metric, _), value in counters.items() if metric == M.REMINDERS),
        )

    # --- queries ---------------------------------------------------------------------------------

    async def current(self, scope: str) -> StatsSnapshot:
        """The scope's figures as they are now (not waiting for the next publication)."""
        async with self.sessions() as session:
            version = await storage.scope_version(session, scope) or 0
            [snapshot] = await self._snapshots(session, {scope: version}, self.clock.now())
        return snapshot

    async def for_year(self, scope: str, year: int) -> tuple[int, Figures]:
        async with self.sessions() as session:
            version = await storage.scope_version(session, scope) or 0
            counters = await storage.counters_of(session, [(scope, year)])
            return version, figures(counters.get((scope, year), {}), self.settings.treatment_report_target)

    async def daily(self, scope: str, first: date, last: date) -> list[tuple[date, StatsSnapshot]]:
        """One snapshot per day from `first` to `last`: the day's last, or the one before carried forward
        (a day without changes kept the figures it had)."""
        async with self.sessions() as session:
            rows = await storage.daily_snapshots(session, scope, first, last)
        result: list[tuple[date, StatsSnapshot]] = []
        current: StatsSnapshot | None = None
        pending = list(rows)
        day = first
        while day <= last:
            while pending and pending[0].day <= day:
                current = StatsSnapshot.from_json(pending.pop(0).snapshot)
            if current is not None:
                result.append((day, current))
            day = date.fromordinal(day.toordinal() + 1)
        return result

    async def outstanding(self, hospital_id: str | None) -> list[Reminder]:
        async with self.sessions() as session:
            return await storage.outstanding_reminders(session, hospital_id)

    async def known_scope(self, scope: str) -> bool:
        async with self.sessions() as session:
            return await storage.scope_version(session, scope) is not None

    # --- rebuild ---------------------------------------------------------------------------------

    async def reset(self) -> list[Reminder]:
        """Empty the projection; return the reminders as they were, to announce what a rebuild changes."""
        async with self._writing, self.sessions.begin() as session:
            before = await storage.all_reminders(session)
            await storage.reset_projection(session)
        return before

    async def announce_rebuilt(self, before: Sequence[Reminder]) -> list[Reminder]:
        """After a replay: publish the reminders whose state differs from before the rebuild, continuing
        their transition counts so their event ids stay new; mark every scope for a fresh snapshot."""
        now = self.clock.now()
        old = {r.reminder_id: r for r in before}
        async with self._writing, self.sessions.begin() as session:
            rebuilt = await storage.all_reminders(session)
            announce, renumbered = [], []
            for reminder in rebuilt:
                previous = old.pop(reminder.reminder_id, None)
                if previous is None:
                    if reminder.status is ReminderStatus.OPEN:
                        announce.append(reminder)
                    continue
                reminder.transitions = max(reminder.transitions, previous.transitions)
                if reminder.status is not previous.status:
                    reminder.transitions += 1
                    announce.append(reminder)
                renumbered.append(reminder)
            for gone in old.values():  # never owed in the replay (a changed policy, say): an open one clears
                if gone.status is ReminderStatus.OPEN:
                    gone.status, gone.transitions, gone.changed_on = (
                        ReminderStatus.CLEARED,
                        gone.transitions + 1,
                        self.today(),
                    )
                    announce.append(gone)
                renumbered.append(gone)
            await storage.save_reminders(session, renumbered)
            await storage.save_tumours(session, await self._kept_by_tumours(session, renumbered))
            await storage.bump_versions(session, [*await storage.scopes(session), REGISTRY_SCOPE])
            await self.publish(self._reminder_messages(announce, now))
        self.changed.set()
        return announce

    @staticmethod
    async def _kept_by_tumours(session: AsyncSession, reminders: Sequence[Reminder]) -> list[Tumour]:
        """The tumours of `reminders`, keeping them as they are now. A tumour the replay did not bring
        back (its reports gone from the topics) is kept bare, reminders only, so that a later report
        about it continues their transition counts instead of reusing event ids."""
        children = await storage.load_children(session, {r.pseudonym for r in reminders})
        for reminder in reminders:
            tumours = children.setdefault(reminder.pseudonym, {})
            key = (reminder.hospital_id, reminder.tumour_ref)
            tumour = tumours.get(key)
            if tumour is None:
                tumour = tumours[key] = Tumour(reminder.pseudonym, *key)
            reminder_key, state = state_of(reminder)
            tumour.reminders[reminder_key] = state
        return [tumour for tumours in children.values() for tumour in tumours.values()]


def reminder_event(reminder: Reminder, now: datetime) -> ReminderChanged:
    return ReminderChanged(
        # Derived from the reminder and its transition: a batch redelivered after a crash republishes
        # the same event, which consumers drop as a duplicate.
        event_id=derived_event_id(reminder.reminder_id, f"{reminder.status.value}:{reminder.transitions}"),
        occurred_at=now,
        reminder_id=reminder.reminder_id,
        hospital_id=reminder.hospital_id,
        tumour_ref=reminder.tumour_ref,
        kind=reminder.kind,
        missing_form=missing_form(reminder.kind),
        diagnosis_date=reminder.diagnosis_date,
        due_date=reminder.due_date,
        follow_up_year=reminder.follow_up_year,
        status=reminder.status,
    )
