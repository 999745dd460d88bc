"""The batch-consumption runtime on FastStream's in-memory broker: what happens to each record of a batch.

These are unit tests of the handler logic; delivery and commit semantics are tested on the real broker in
tests/integration/test_batch_consumer.py.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    DeadlockDetectedError,
    SerializationError,
    UniqueViolationError,
)
from faststream.kafka import KafkaBroker, TestKafkaBroker
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.events import DeadLetter, ReservationRegistered
from shared.kafka import Delivery, subscribe_batch
from shared.kafka.codec import KeyOf, key_of
from shared.kafka.consumer import RetryPolicy, is_transient
from shared.kafka.deadletters import DeadLetterPublisher
from shared.settings import KafkaSettings
from shared.topics import DEAD_LETTERS, RESERVATIONS

FAST = RetryPolicy(attempts=2, transient_attempts=3, backoff_s=0.001)


def reservation(n: int) -> ReservationRegistered:
    return ReservationRegistered(
        reservation_id=uuid.UUID(int=n),
        child_pseudonym="c" * 32,
        recorded_by="coder.anna",
        effective_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def database_away() -> Exception:
    return OperationalError("select 1", {}, ConnectionRefusedError("database away"))


class Harness:
    def __init__(
        self,
        fail_on: set[int] | None = None,
        transient_failures: int = 0,
        *,
        transient_error: Callable[[], Exception] = database_away,
        retry: RetryPolicy = FAST,
        keys: dict[str, KeyOf] | None = None,
    ) -> None:
        self.broker = KafkaBroker()
        self.applied: list[int] = []
        self.calls: list[list[int]] = []
        self.dead: list[DeadLetter] = []
        self.fail_on = fail_on or set()
        self.transient_failures = transient_failures

        async def handler(batch: Sequence[Delivery[ReservationRegistered]]) -> None:
            ids = [d.event.reservation_id.int for d in batch]
            self.calls.append(ids)
            if self.transient_failures:
                self.transient_failures -= 1
                raise transient_error()
            if self.fail_on & set(ids):
                raise ValueError("cannot apply")
            self.applied.extend(ids)

        subscribe_batch(
            self.broker,
            service="export",
            group_id="export",
            decoders={RESERVATIONS.name: ReservationRegistered.from_json},
            handler=handler,
            dead_letters=DeadLetterPublisher(self.broker, "export", "export"),
            settings=KafkaSettings(),
            retry=retry,
            keys=keys,
        )

        @self.broker.subscriber(DEAD_LETTERS.name)
        async def collect(body: dict[str, Any]) -> None:
            self.dead.append(DeadLetter.model_validate(body))

    async def send(self, *values: bytes) -> Any:
        async with TestKafkaBroker(self.broker) as broker:
            return await broker.publish_batch(*values, topic=RESERVATIONS.name)

    async def send_keyed(self, *records: tuple[bytes, bytes]) -> None:
        """(value, key) records, one publish each."""
        async with TestKafkaBroker(self.broker) as broker:
            for value, key in records:
                await broker.publish(value, RESERVATIONS.name, key=key)


async def test_undecodable_records_are_dead_lettered_and_the_rest_applied() -> None:
    harness = Harness()
    await harness.send(
        reservation(1).to_json(), b"not json", b'{"event_type": "reservation.registered"}', reservation(2).to_json()
    )
    assert harness.applied == [1, 2]
    assert [d.error_type for d in harness.dead] == ["ValidationError", "ValidationError"]
    assert "Invalid JSON" in harness.dead[0].error
    assert "reservation_id: Field required" in harness.dead[1].error


async def test_a_poison_record_is_isolated_in_order_after_bounded_retries() -> None:
    harness = Harness(fail_on={2})
    await harness.send(*(reservation(n).to_json() for n in (1, 2, 3)))
    assert harness.applied == [1, 3]
    assert harness.calls[: FAST.attempts] == [[1, 2, 3]] * FAST.attempts  # the whole batch, retried
    [letter] = harness.dead
    assert (letter.error, letter.attempts, letter.source_topic) == ("ValueError: cannot apply", 2, RESERVATIONS.name)
    assert ReservationRegistered.from_json(base64.b64decode(letter.value_b64)).reservation_id.int == 2


async def test_transient_failures_are_retried_and_never_dead_lettered() -> None:
    harness = Harness(transient_failures=FAST.transient_attempts - 1)
    await harness.send(reservation(1).to_json())
    assert harness.applied == [1]
    assert harness.dead == []


async def test_persistent_transient_failure_fails_the_batch_for_redelivery() -> None:
    harness = Harness(transient_failures=100)
    with pytest.raises(OperationalError):
        await harness.send(reservation(1).to_json())
    assert harness.applied == [] and harness.dead == []


async def test_a_record_keyed_otherwise_than_its_event_is_dead_lettered_unapplied() -> None:
    harness = Harness(keys={RESERVATIONS.name: key_of(RESERVATIONS)})
    # The child's pseudonym is the key; another key would put the event in another partition.
    await harness.send_keyed((reservation(1).to_json(), b"c" * 32), (reservation(2).to_json(), b"ous"))
    assert harness.applied == [1]
    [letter] = harness.dead
    assert letter.error_type == "KeyMismatch"
    assert base64.b64decode(letter.key_b64 or "") == b"ous"


def test_a_transaction_that_collided_with_a_concurrent_one_is_retried() -> None:
    # Concurrent batches (several consumers of a group in one process) can deadlock or fail to serialize;
    # SQLAlchemy wraps these asyncpg errors in a plain DBAPIError.
    for error in (DeadlockDetectedError("deadlock detected"), SerializationError("could not serialize access")):
        assert is_transient(DBAPIError("UPDATE counters ...", {}, error))
    assert not is_transient(DBAPIError("INSERT ...", {}, UniqueViolationError("duplicate key value")))


async def test_a_database_starting_up_or_shutting_down_is_retried_never_dead_lettered() -> None:
    """asyncpg raises CannotConnectNowError (SQLSTATE 57P03) unwrapped while PostgreSQL starts or stops:
    an outage, not a poison record."""
    assert is_transient(AdminShutdownError("terminating connection due to administrator command"))
    assert not is_transient(UniqueViolationError("duplicate key value"))
    harness = Harness(
        transient_failures=FAST.attempts + 1,  # more failures in a row than a poison record gets attempts
        transient_error=lambda: CannotConnectNowError("the database system is starting up"),
        retry=RetryPolicy(attempts=2, transient_attempts=10, backoff_s=0.001),
    )
    await harness.send(reservation(1).to_json())
    assert harness.applied == [1] and harness.dead == []
