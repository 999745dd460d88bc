"""The outbox relay: events written in the same transaction as their change reach Kafka, in order, once
the broker can take them.

A background task reads unsent rows in `seq` order, publishes them as one batch with `publish_all`
(acks=all, idempotent producer), and marks them sent only after every one is acknowledged. It wakes
right after a commit (`notify`) and also polls, for rows a crashed process left behind. A crash between
the publish and the mark republishes the same events (same event ids) after restart; consumers drop the
duplicates.

Kafka away: the producer keeps retrying what it was given until the broker acknowledges it, so the round
simply waits, and new rows wait behind it in the database (`intake_outbox_backlog`). The round is never
cut short by a timeout of ours: its messages would stay queued in the producer, be delivered when the
broker returns, and be sent again by the next round. Rounds that fail outright (e.g. a topic missing)
are retried with back-off and logged. The relay has a producer of its own, so that stopping the service
while Kafka is away waits only a bounded time for it: what it still holds stays unsent in the outbox.

Several intake processes on one PostgreSQL: only one relays at a time. Each round runs in a transaction
that first takes `pg_try_advisory_xact_lock`; a process that does not get it skips the round. The lock
is held from reading the rows until they are marked sent, and released by that commit, so the next
round (in whichever process) sees them sent and starts after them. `SELECT ... FOR UPDATE SKIP LOCKED`
was the alternative, but it lets two relays publish neighbouring ranges at once, and a child's later
event could then overtake an earlier one; a single relay keeps the order per child (and overall).
While Kafka is away that transaction stays open: keep `idle_in_transaction_session_timeout` above the
outages to ride out (if it fires, the round is repeated and consumers drop the duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from faststream.kafka import KafkaBroker
from prometheus_client import Counter, Gauge

from services.intake.storage import Database, OutboxMessage, mark_sent, outbox_backlog, unsent
from shared.events.base import utcnow
from shared.kafka import Outgoing
from shared.kafka.codec import Decoder, decoder_for
from shared.kafka.deadletters import describe_error
from shared.topics import RECEIPTS, RESERVATIONS, SUBMISSIONS_RECEIVED

log = logging.getLogger(__name__)

OUTBOX_BACKLOG = Gauge("intake_outbox_backlog", "Outbox events not yet acknowledged by Kafka.")
OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "intake_outbox_oldest_age_seconds", "Age of the oldest outbox event not yet acknowledged by Kafka."
)
OUTBOX_PUBLISHED_TOTAL = Counter("intake_outbox_published_total", "Outbox events published to Kafka.", ["topic"])
OUTBOX_FAILURES_TOTAL = Counter("intake_outbox_failures_total", "Relay rounds that failed (Kafka or database).")

# What intake publishes; rows are decoded again with the topic's strict decoder before they leave, so
# nothing that does not match its contract reaches a consumer.
DECODERS: dict[str, Decoder] = {spec.name: decoder_for(spec) for spec in (SUBMISSIONS_RECEIVED, RECEIPTS, RESERVATIONS)}

PRODUCER_STOP_TIMEOUT_S = 10.0

Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        publish: Publish,
        topic_name: Callable[[str], str],
        *,
        producer: KafkaBroker | None = None,
        batch: int = 500,
        poll_s: float = 0.5,
        max_backoff_s: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._publish = publish
        self._topic_name = topic_name  # the platform name with this environment's prefix
        self._producer = producer  # the broker behind `publish`, started and stopped with the relay
        self._batch = batch
        self._poll_s = poll_s
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def notify(self) -> None:
        """A transaction with outbox rows committed: relay now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        if self._producer is not None:
            await self._producer.start()
        self._tasks = [
            asyncio.create_task(self._run(), name="intake-outbox-relay"),
            asyncio.create_task(self._observe(), name="intake-outbox-backlog"),
        ]

    async def stop(self) -> None:
        # Rows of an interrupted round stay unsent and go out after the restart.
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), PRODUCER_STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("outbox producer still held unacknowledged events at shutdown; they stay in the outbox")

    async def relay_once(self) -> int:
        """Publish up to one batch of unsent rows; return how many were published."""
        if self._db.is_postgres:
            async with self._db.transaction() as session:
                if not await self._db.try_relay_lock(session):
                    return 0  # another intake process is relaying
                rows = await unsent(session, self._batch)
                if rows:
                    await self._send(rows)
                    await mark_sent(session, [row.seq for row in rows], self._clock())
        else:
            # Not inside the write transaction: SQLite's single writer must not wait for Kafka.
            async with self._db.sessions() as session:
                rows = await unsent(session, self._batch)
            if rows:
                await self._send(rows)
                async with self._db.transaction() as session:
                    await mark_sent(session, [row.seq for row in rows], self._clock())
        for topic, count in Tally(row.topic for row in rows).items():
            OUTBOX_PUBLISHED_TOTAL.labels(topic=topic).inc(count)
        return len(rows)

    async def refresh_backlog(self) -> int:
        async with self._db.sessions() as session:
            count, oldest = await outbox_backlog(session)
        OUTBOX_BACKLOG.set(count)
        OUTBOX_OLDEST_AGE_SECONDS.set((self._clock() - oldest).total_seconds() if oldest else 0)
        return count

    async def _send(self, rows: Sequence[OutboxMessage]) -> None:
        await self._publish(
            [Outgoing(self._topic_name(row.topic), row.key, DECODERS[row.topic](row.payload.encode())) for row in rows]
        )

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                published = await self.relay_once()
            except Exception as exc:  # a failed round keeps its rows; back off and try again
                failures += 1
                OUTBOX_FAILURES_TOTAL.inc()
                delay = min(self._max_backoff_s, self._poll_s * 2 ** min(failures, 10))
                log.warning(
                    "outbox relay failed (%d in a row), retrying in %.1f s: %s", failures, delay, describe_error(exc)
                )
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("outbox relay recovered after %d failed rounds", failures)
                failures = 0
            if published < self._batch:  # a full batch means more are waiting: go on at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def _observe(self) -> None:
        """Keep the backlog gauges current, also while a round waits for Kafka."""
        while True:
            try:
                await self.refresh_backlog()
            except Exception as exc:  # the database is away: the relay logs that; the gauges keep their values
                log.debug("outbox backlog not refreshed: %s", describe_error(exc))
            await asyncio.sleep(self._poll_s)
