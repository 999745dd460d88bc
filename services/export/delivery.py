"""The delivery worker: sends the ledger's waiting operations through the sink and records the outcome.

One pass: (1) in a transaction, take the delivery lease, pick waiting operations in ledger order, drop
those a later operation of the same record supersedes, and claim the rest (`sending`, attempt counted);
(2) hand them to the sink; (3) in a transaction, mark them sent and append the audit log.
A crash after (1) leaves them `sending`: the next pass sends them again and the sink, idempotent by
sequence, ignores what it already has. A crash inside (2) or after it is the same case. The lease keeps
one deliverer at a time, which is what keeps each record's operations in order at the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter, Histogram

from services.export import storage
from services.export.domain.ledger import Operation, Reason, Status, coalesce
from services.export.sinks.base import Sink, SinkOperation, SinkUnavailable
from shared.events.base import utcnow
from shared.kafka.deadletters import describe_error

LEGAL_BASIS = "NOPHO-Care"
log = logging.getLogger(__name__)

TRANSFERS_TOTAL = Counter(
    "export_transfers_total", "Operations the Nordic sink confirmed, by audit action.", ["sink", "action"]
)
DELIVERY_FAILURES_TOTAL = Counter(
    "export_delivery_failures_total",
    "Deliveries that did not go through: the sink was unavailable, or refused the data.",
    ["sink", "kind"],
)
DELIVERY_SECONDS = Histogram(
    "export_delivery_seconds",
    "Time for the sink to take one batch of operations.",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def audit_action(operation: str, reason: str) -> str:
    if operation == Operation.DELETE.value:
        return "retraction"
    return "update" if reason == Reason.UPDATE.value else "transfer"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed operation, detached from the session that claimed it."""

    op: SinkOperation
    child_pseudonym: str
    child_id: str
    reason: str
    revision: int | None


@dataclass(frozen=True, slots=True)
class PassResult:
    delivered: int = 0
    refused: int = 0
    unavailable: bool = False
    more: bool = False  # the pass was full: more may be waiting
    leased: bool = True  # False: another instance holds the delivery lease


class DeliveryWorker:
    def __init__(
        self,
        transactions: storage.Transactions,
        sink: Sink,
        *,
        owner: str,
        batch_size: int = 500,
        max_failures: int = 3,
        lease_s: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._transactions = transactions
        self._sink = sink
        self._owner = owner
        self._actor = f"export delivery worker {owner}"
        self._batch_size = batch_size
        self._max_failures = max_failures
        self._lease_s = lease_s
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def deliver_once(self) -> PassResult:
        async with self._transactions.begin() as session:
            if not await storage.hold_lease(session, self._owner, self._clock(), self._lease_s):
                return PassResult(leased=False)
            candidates = await storage.waiting(session, self._batch_size)
            send, superseded = coalesce([(op.id, op.record_id) for op in candidates])
            await storage.cancel_waiting(session, superseded, (Status.PENDING, Status.SENDING))
            claimed_ids = await storage.claim(session, send)
            claimed = [_detach(op) for op in candidates if op.id in claimed_ids]
        if not claimed:
            return PassResult()
        delivered, refused, unavailable = await self._send(claimed)
        return PassResult(delivered, refused, unavailable, more=len(candidates) >= self._batch_size)

    async def deliver_all(self) -> PassResult:
        """Pass after pass until nothing is waiting, the sink is unavailable or another instance delivers."""
        delivered = refused = 0
        while True:
            result = await self.deliver_once()
            delivered += result.delivered
            refused += result.refused
            if not result.more or result.unavailable or not result.leased:
                return PassResult(delivered, refused, result.unavailable, False, result.leased)

    async def _send(self, claimed: Sequence[Claimed]) -> tuple[int, int, bool]:
        ids = [c.op.sequence for c in claimed]
        started = time.perf_counter()
        try:
            batch = await self._sink.deliver([c.op for c in claimed])
        except SinkUnavailable as exc:
            DELIVERY_FAILURES_TOTAL.labels(sink=self._sink.name, kind="unavailable").inc()
            log.warning("the %s sink is unavailable; %d operations wait: %s", self._sink.name, len(ids), exc)
            async with self._transactions.begin() as session:
                await storage.unclaim(session, ids, describe_error(exc))
            return 0, 0, True
        except Exception as exc:
            by_child: dict[str, list[Claimed]] = defaultdict(list)
            for c in claimed:
                by_child[c.child_pseudonym].append(c)
            if len(by_child) > 1:  # isolate the child whose data the sink refuses; the others go through
                totals = [await self._send(group) for group in by_child.values()]
                return sum(t[0] for t in totals), sum(t[1] for t in totals), any(t[2] for t in totals)
            DELIVERY_FAILURES_TOTAL.labels(sink=self._sink.name, kind="refused").inc()
            async with self._transactions.begin() as session:
                failed = await storage.record_refusal(session, ids, describe_error(exc), self._max_failures)
            log.error("the %s sink refused %d operations (%d now failed): %s", self._sink.name, len(ids), failed, exc)
            return 0, len(ids), False
        DELIVERY_SECONDS.labels(sink=self._sink.name).observe(time.perf_counter() - started)
        now = self._clock()
        async with self._transactions.begin() as session:
            marked = await storage.mark_sent(session, ids, now, batch)
            await storage.append_to_audit_log(
                session,
                [
                    {
                        "at": now,
                        "actor": self._actor,
                        "action": audit_action(c.op.operation.value, c.reason),
                        "reason": c.reason,
                        "legal_basis": LEGAL_BASIS,
                        "record_id": c.op.record_id,
                        "child_id": c.child_id,
                        "revision": c.revision,
                        "record_sha256": c.op.record_sha256,
                        "sink": self._sink.name,
                        "batch": batch,
                        "ledger_id": c.op.sequence,
                    }
                    for c in claimed
                    if c.op.sequence in marked  # another instance that took over may have marked some
                ],
            )
        for c in claimed:
            if c.op.sequence in marked:
                TRANSFERS_TOTAL.labels(sink=self._sink.name, action=audit_action(c.op.operation.value, c.reason)).inc()
        return len(marked), 0, False

    async def run(self, *, interval_s: float | None, poll_s: float) -> None:
        """Deliver until cancelled: continuously (woken by the consumer, else every `poll_s`), or in
        batches every `interval_s`."""
        while True:
            try:
                result = await self.deliver_all()
                pause = poll_s if result.unavailable else (interval_s or poll_s)
            except Exception:
                log.exception("delivery pass failed; retrying in %.1f s", poll_s)
                result, pause = PassResult(unavailable=True), poll_s
            if interval_s is not None or result.unavailable:
                await asyncio.sleep(pause)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=pause)
            self._wake.clear()

    async def release(self) -> None:
        """Give the lease up, so another instance (or this one restarted) delivers without waiting."""
        async with self._transactions.begin() as session:
            await storage.release_lease(session, self._owner)


def _detach(row: storage.LedgerOp) -> Claimed:
    return Claimed(
        SinkOperation(
            sequence=row.id,
            record_id=row.record_id,
            operation=Operation(row.operation),
            record=row.payload.encode() if row.payload is not None else None,
            record_sha256=row.record_sha256,
        ),
        child_pseudonym=row.child_pseudonym,
        child_id=row.child_id,
        reason=row.reason,
        revision=row.revision,
    )
