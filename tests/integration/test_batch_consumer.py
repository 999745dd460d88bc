"""Batch consumption on a real broker: offsets follow durable effects, failures never lose a record.

The handler records applied events in SQLite through `claim_new`, the way every service does, so the
test can tell "applied once" from "delivered once".
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase

from shared.db import ProcessedMessageMixin, claim_new, create_engine, session_factory
from shared.events import DeadLetter, ReservationRegistered
from shared.kafka import Delivery, create_broker, subscribe_batch
from shared.kafka.consumer import RetryPolicy
from shared.kafka.deadletters import DeadLetterPublisher
from shared.settings import KafkaSettings
from shared.topics import DEAD_LETTERS, RESERVATIONS

pytestmark = pytest.mark.kafka


class Base(DeclarativeBase):
    pass


class Processed(ProcessedMessageMixin, Base):
    pass


def reservation(n: int) -> ReservationRegistered:
    return ReservationRegistered(
        reservation_id=uuid.UUID(int=n),
        child_pseudonym=base64.b32encode(n.to_bytes(20, "big")).decode().lower(),
        recorded_by="coder.anna",
        effective_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


class Consumer:
    """One consumer process: its own broker connection, the shared database."""

    def __init__(self, settings: KafkaSettings, db: Path, transient_failures: int = 0) -> None:
        self.engine = create_engine(f"sqlite+aiosqlite:///{db}")
        self.sessions = session_factory(self.engine)
        self.broker = create_broker(settings, "test-consumer")
        self.delivered: Counter[int] = Counter()
        self.transient_failures = transient_failures
        subscribe_batch(
            self.broker,
            service="export",
            group_id="export",
            decoders={settings.topic(RESERVATIONS): ReservationRegistered.from_json},
            handler=self.handle,
            dead_letters=DeadLetterPublisher(self.broker, "export", "export", settings.topic(DEAD_LETTERS)),
            settings=settings,
            retry=RetryPolicy(transient_attempts=2, backoff_s=0.01),
        )

    async def handle(self, batch: Sequence[Delivery[ReservationRegistered]]) -> None:
        self.delivered.update(d.event.reservation_id.int for d in batch)
        async with self.sessions.begin() as session:
            await claim_new(session, Processed, "export", [d.event.event_id for d in batch])
            if self.transient_failures:  # the database goes away after the claim, before the commit
                self.transient_failures -= 1
                raise OperationalError("commit", {}, ConnectionResetError("database away"))

    async def applied(self) -> int:
        async with self.sessions() as session:
            return await session.scalar(select(func.count()).select_from(Processed)) or 0

    async def __aenter__(self) -> Consumer:
        async with self.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        await self.broker.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.broker.stop()
        await self.engine.dispose()


async def produce(settings: KafkaSettings, *values: bytes) -> None:
    broker = create_broker(settings, "test-producer")
    async with broker:
        for value in values:
            await broker.publish(value, settings.topic(RESERVATIONS), key=b"k")


async def eventually(probe: Callable[[], Awaitable[int]], expected: int, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (value := await probe()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{value} after {within} s, expected {expected}"
        await asyncio.sleep(0.05)


async def test_transient_failures_redeliver_and_offsets_follow_effects(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    events = [reservation(n) for n in range(1, 201)]
    await produce(kafka_settings, *(e.to_json() for e in events))
    db = tmp_path / "effects.db"

    # More transient failures than in-process retries: the batch is sought back and comes again.
    async with Consumer(kafka_settings, db, transient_failures=3) as first:
        await eventually(first.applied, 200)
        assert set(first.delivered) == set(range(1, 201))
        assert max(first.delivered.values()) >= 2  # some records were redelivered ...
    # ... yet each was applied once, and the committed offsets leave nothing to a restarted consumer.
    await produce(kafka_settings, *(reservation(n).to_json() for n in range(201, 211)))
    async with Consumer(kafka_settings, db) as second:
        await eventually(second.applied, 210)
        await asyncio.sleep(0.5)
        assert sorted(second.delivered) == list(range(201, 211))


async def test_undecodable_record_goes_to_dead_letters_and_the_next_is_applied(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await produce(kafka_settings, b"\x00not json", reservation(1).to_json())
    async with Consumer(kafka_settings, tmp_path / "effects.db") as consumer:
        await eventually(consumer.applied, 1)

    letters = AIOKafkaConsumer(
        kafka_settings.topic(DEAD_LETTERS),
        bootstrap_servers=kafka_settings.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await letters.start()
    try:
        record = await asyncio.wait_for(letters.getone(), 15)
    finally:
        await letters.stop()
    letter = DeadLetter.from_json(record.value)
    assert letter.source_topic == kafka_settings.topic(RESERVATIONS)
    assert (letter.offset, letter.consumer_group, letter.error_type) == (0, "export", "ValidationError")
    assert "Invalid JSON" in letter.error
