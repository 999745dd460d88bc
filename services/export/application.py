"""Export's use cases: consuming validated reports and reservations (one transaction per batch, with
the ledger operations they call for), and what the API and the CLI read and re-drive."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.export import storage
from services.export.domain import ledger
from services.export.domain.record import ExportIds, build_records, depending_on
from services.export.domain.sources import Source, record_key, replaces, tumour_of
from services.export.storage import BatchState, ProcessedMessage, RecordsState
from shared.db import claim_new
from shared.events import DiagnosisForm, ReservationRegistered, ReservationWithdrawn, SubmissionValidated
from shared.events.base import utcnow
from shared.events.forms import FormType
from shared.kafka import Delivery
from shared.observability.metrics import count_consumed

CONSUMER = "export"
log = logging.getLogger(__name__)

ConsumedEvent = SubmissionValidated | ReservationRegistered | ReservationWithdrawn


@functools.lru_cache(maxsize=4096)
def stored_report(event_json: str) -> SubmissionValidated:
    """A stored source's report, decoded. Every batch reads all the sources of the children it touches,
    so the same few thousand reports come back again and again while a backlog drains: decoding was a
    third of the handler's time (docs/benchmarks.md). The events are immutable (frozen models), so one
    decoded copy serves every batch; 4,096 of them take some 20 MB."""
    return SubmissionValidated.from_json(event_json)


def _child_of(event: ConsumedEvent) -> str:
    return event.child.pseudonym if isinstance(event, SubmissionValidated) else event.child_pseudonym


def _sources_by_child(
    state: BatchState, taken: dict[str, SubmissionValidated], whole: set[str]
) -> dict[str, list[Source]]:
    """The current reports planning needs, decoded: the batch's new records and, of the stored ones, those
    of the `whole` children, every one of the tumours whose diagnosis the batch changed and the other
    touched tumours' diagnoses (`depending_on`: nothing else of theirs depends on the batch)."""
    rediagnosed = {tumour_of(e) for e in taken.values() if isinstance(e.form, DiagnosisForm)}
    by_child: dict[str, list[Source]] = defaultdict(list)
    for key, stored in state.sources.items():
        event = taken.get(key)
        if event is None:
            if not (
                stored.form_type == FormType.DIAGNOSIS
                or stored.tumour_key in rediagnosed
                or stored.child_pseudonym in whole
            ):
                continue
            event = stored_report(stored.event)
        by_child[stored.child_pseudonym].append(Source(key, event))
    for key, event in taken.items():
        if key not in state.sources:
            by_child[event.child.pseudonym].append(Source(key, event))
    return by_child


def _source_row(key: str, event: SubmissionValidated) -> dict[str, Any]:
    return {
        "record_key": key,
        "child_pseudonym": event.child.pseudonym,
        "tumour_key": tumour_of(event),
        "form_type": event.form.form_type,
        "submission_id": event.submission_id,
        "received_at": event.received_at,
        # Delivery does not carry the record's bytes, so the decoded event is encoded again.
        "event": event.to_json().decode(),
    }


class ExportApplication:
    def __init__(
        self,
        transactions: storage.Transactions,
        ids: ExportIds,
        *,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._transactions = transactions
        self._ids = ids
        self._on_queued = on_queued  # wakes the delivery worker once operations are committed
        self._clock = clock

    async def handle(self, batch: Sequence[Delivery[Any]]) -> None:
        """Apply a consumed batch and queue the ledger operations it calls for, in one transaction."""
        queued = False
        async with self._transactions.begin() as session:
            new = await claim_new(session, ProcessedMessage, CONSUMER, [d.event.event_id for d in batch])
            fresh: list[ConsumedEvent] = []
            outcomes = []
            for delivery in batch:  # in offset order: per-child order
                applied = delivery.event.event_id in new
                outcomes.append((delivery.topic, applied))
                if applied:
                    new.discard(delivery.event.event_id)  # a duplicate inside one batch, too
                    fresh.append(delivery.event)
            if fresh:
                queued = await self._apply(session, fresh)
        count_consumed(CONSUMER, outcomes)
        if queued:
            self._on_queued()

    async def _apply(self, session: AsyncSession, events: list[ConsumedEvent]) -> bool:
        pseudonyms = sorted({_child_of(e) for e in events})
        # A reservation changes what the Nordic side should hold of its child whole; a report only records of
        # its own tumour (`depending_on`), so only those are loaded and planned.
        whole = {e.child_pseudonym for e in events if not isinstance(e, SubmissionValidated)}
        reports = [e for e in events if isinstance(e, SubmissionValidated)]
        tumours = {tumour_of(e) for e in reports if e.child.pseudonym not in whole}
        state = await storage.load_batch_state(session, pseudonyms, whole, tumours)
        # What the batch changes, keyed so that the last change wins; written at its end, a statement per table.
        taken: dict[str, SubmissionValidated] = {}  # record key -> its new current version
        reservations: dict[str, dict[str, Any]] = {}  # child pseudonym -> its `children` row
        revisions: dict[str, dict[str, Any]] = {}  # record id -> its `record_states` row
        for event in events:
            if isinstance(event, SubmissionValidated):
                self._take_report(state, taken, event)
            else:
                # The topic is compacted by child: the latest event is the child's state.
                reserved = isinstance(event, ReservationRegistered)
                state.reserved[event.child_pseudonym] = reserved
                reservations[event.child_pseudonym] = {
                    "pseudonym": event.child_pseudonym,
                    "reserved": reserved,
                    "reservation_changed_at": event.effective_at,
                }
        by_child = _sources_by_child(state, taken, whole)
        changed: dict[str, list[Source]] = defaultdict(list)
        for key, event in taken.items():
            changed[event.child.pseudonym].append(Source(key, event))
        # Per child, the record keys to plan: None for all of them.
        scopes: dict[str, set[str] | None] = {
            pseudonym: None if pseudonym in whole else depending_on(changed[pseudonym], by_child[pseudonym])
            for pseudonym in pseudonyms
        }
        records = await storage.load_records(session, pseudonyms)
        queue: list[dict[str, Any]] = []
        cancel: list[int] = []
        now = self._clock()
        for pseudonym in pseudonyms:
            scope = scopes[pseudonym]
            if scope is None or scope:
                self._plan(state, records, pseudonym, by_child[pseudonym], scope, now, queue, cancel, revisions)
        await storage.cancel_waiting(session, cancel, (ledger.Status.PENDING, ledger.Status.FAILED))
        await storage.save_reservations(session, list(reservations.values()))
        await storage.save_sources(session, [_source_row(key, event) for key, event in taken.items()])
        await storage.save_revisions(session, list(revisions.values()))
        await storage.append_to_ledger(session, queue)
        return bool(queue)

    @staticmethod
    def _take_report(state: BatchState, taken: dict[str, SubmissionValidated], event: SubmissionValidated) -> None:
        key = record_key(event)
        before = taken.get(key)
        stored = state.sources.get(key)
        if replaces(before.received_at if before else stored.received_at if stored else None, event):
            taken[key] = event

    def _plan(
        self,
        state: BatchState,
        records: RecordsState,
        pseudonym: str,
        sources: list[Source],
        scope: set[str] | None,
        now: datetime,
        queue: list[dict[str, Any]],
        cancel: list[int],
        revisions: dict[str, dict[str, Any]],
    ) -> None:
        """Decide the operations for the child's records in `scope` (None: all of them): the ids to cancel
        go to `cancel`, new operations to `queue`, and the revisions that changed to `revisions`."""
        built = build_records(sources, self._ids, scope)
        wanted, changed = ledger.assign_revisions(built.records, records.revisions)
        for record_id, revision in changed.items():
            revisions[record_id] = {
                "record_id": record_id,
                "child_pseudonym": pseudonym,
                "revision": revision.revision,
                "content_sha256": revision.content_sha256,
            }
        reserved = state.reserved[pseudonym]
        entries = records.ledger[pseudonym]
        if scope is not None and entries:
            # Only the records in scope: any other is not built, so it would look unwanted. One in scope but
            # not built (out of NOPHO-Care now) is planned through its entries.
            in_scope = {self._ids.record(key) for key in scope}
            entries = [e for e in entries if e.record_id in in_scope]
        decided = ledger.plan({} if reserved else wanted, entries, reserved)
        if not decided:
            return
        cancel += decided.cancel
        common = {
            "child_pseudonym": pseudonym,
            "child_id": self._ids.child(pseudonym),
            "status": ledger.Status.PENDING.value,
            "created_at": now,
            "attempts": 0,
            "failures": 0,
        }
        queue += [
            {
                **common,
                "record_id": upsert.record.record_id,
                "operation": ledger.Operation.UPSERT.value,
                "reason": upsert.reason.value,
                "revision": upsert.record.revision,
                "record_sha256": upsert.sha256,
                "payload": upsert.payload.decode(),
            }
            for upsert in decided.upserts
        ]
        queue += [
            {
                **common,
                "record_id": delete.record_id,
                "operation": ledger.Operation.DELETE.value,
                "reason": delete.reason.value,
                "revision": None,
                "record_sha256": delete.retracted_sha256,
                "payload": None,
            }
            for delete in decided.deletes
        ]


# --- what the API and the CLI use ------------------------------------------------------------------------


async def status(sessions: async_sessionmaker[AsyncSession]) -> storage.Counts:
    async with sessions() as session:
        return await storage.counts(session)


async def failures(sessions: async_sessionmaker[AsyncSession]) -> list[storage.Failure]:
    async with sessions() as session:
        return await storage.failures(session)


async def audit(sessions: async_sessionmaker[AsyncSession], **filters: Any) -> list[storage.AuditEntry]:
    async with sessions() as session:
        return await storage.audit_entries(session, **filters)


async def retry_failed(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Put every failed operation back in the queue; the delivery worker sends them in ledger order."""
    async with sessions.begin() as session:
        count = await storage.retry_failed(session)
    log.info("re-queued %d failed transfer operations", count)
    return count
