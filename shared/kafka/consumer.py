"""Batch consumption with every guarantee on: the one way services consume.

A batch of records is decoded (an undecodable record goes straight to the dead-letter topic), handed to
the service's handler, which applies it in one database transaction together with the processed-ids
insert, and only when the handler has returned does FastStream commit the offsets (NACK_ON_ERROR).

Failures are told apart:
- transient (database or broker unreachable, a lost race on the processed-ids key): the batch is retried
  with backoff and, if it keeps failing, sought back and redelivered — never dead-lettered, so stopping
  PostgreSQL under a service loses nothing;
- anything else: retried a few times, then the batch is split and applied one record at a time, so the
  poison record goes to the dead-letter topic with its error and the others are applied in order.

A well-formed event under another key than its own (`keys`) is poison too: it sits in another partition
than the events it must stay in order with, so it is dead-lettered unapplied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from shared.db.engine import database_unavailable, transaction_conflict
from shared.kafka.codec import Decoder, KeyOf
from shared.kafka.deadletters import DeadLetterPublisher
from shared.observability.metrics import (
    BATCH_RETRIES_TOTAL,
    BATCH_SECONDS,
)
from shared.settings import KafkaSettings

E = TypeVar("E")
log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    IntegrityError,  # two consumers raced on a processed id during a rebalance: retrying sees it done
    KafkaError,
    OSError,
    TimeoutError,
)
UNDECODABLE_ERRORS: tuple[type[BaseException], ...] = (ValidationError, ValueError, UnicodeDecodeError)


class KeyMismatch(ValueError):
    """A record keyed otherwise than its event says it must be."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS) or database_unavailable(exc) or transaction_conflict(exc)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[E]):
    """A decoded event and where it came from."""

    event: E
    key: bytes | None
    topic: str
    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()


BatchHandler = Callable[[Sequence[Delivery[E]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # for errors that are not transient, before the batch is split
    transient_attempts: int = 8  # in-process retries before the batch is sought back and redelivered
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))


async def _no_decode(*_: Any) -> None:
    """FastStream's own JSON decoding is skipped: records are decoded once, strictly, by `decoders`."""
    return None


def subscribe_batch(
    broker: KafkaBroker,
    *,
    service: str,
    group_id: str,
    decoders: Mapping[str, Decoder],
    handler: BatchHandler[Any],
    dead_letters: DeadLetterPublisher,
    settings: KafkaSettings,
    retry: RetryPolicy = RetryPolicy(),
    auto_offset_reset: Literal["earliest", "latest"] = "earliest",
    keys: Mapping[str, KeyOf] | None = None,
    consumers: int = 1,
) -> None:
    """Subscribe `handler` to the topics in `decoders` as `group_id`, with the guarantees above. `keys` names,
    per topic, the key a record must carry given its event (`shared.kafka.codec.key_of`).

    `consumers` members of the group run in this process, each over its own partitions: their batches are
    applied concurrently, one's database round trips overlapping another's work. Per-partition order
    holds as with one; `handler` must be safe to run concurrently with itself."""
    expected_keys = dict(keys or {})

    for member in range(consumers):

        @broker.subscriber(
            *list(decoders),
            group_id=group_id,
            batch=True,
            max_records=settings.max_batch,
            batch_timeout_ms=settings.batch_timeout_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset=auto_offset_reset,
            decoder=_no_decode,
            title=f"{service}:{'+'.join(decoders)}" + (f":{member + 1}" if member else ""),
            include_in_schema=member == 0,  # the others are the same subscription
        )
        async def consume(message: KafkaMessage) -> None:
            records: Sequence[Any] = message.raw_message
            decoded: list[tuple[Delivery[Any], Any]] = []
            undecodable: list[tuple[Any, BaseException, int]] = []
            for record in records:
                try:
                    event = decoders[record.topic](record.value)
                    if (key_of := expected_keys.get(record.topic)) is not None and record.key != key_of(event).encode():
                        raise KeyMismatch(
                            "the record's key is not the one its event must be keyed by (see shared/topics.py)"
                        )
                except UNDECODABLE_ERRORS as exc:
                    undecodable.append((record, exc, 1))
                    continue
                headers = tuple(record.headers or ())
                delivery = Delivery(event, record.key, record.topic, record.partition, record.offset, headers)
                decoded.append((delivery, record))
            if undecodable:
                await dead_letters.publish(undecodable)
            if decoded:
                started = time.perf_counter()
                await _apply(decoded, service, handler, dead_letters, retry)
                BATCH_SECONDS.labels(service=service).observe(time.perf_counter() - started)


async def _apply(
    decoded: Sequence[tuple[Delivery[Any], Any]],
    service: str,
    handler: BatchHandler[Any],
    dead_letters: DeadLetterPublisher,
    retry: RetryPolicy,
) -> None:
    """Apply (delivery, raw record) pairs; the raw record is what a dead letter must carry."""
    failure = await _with_retries([delivery for delivery, _ in decoded], service, handler, retry)
    if failure is None:
        return
    if len(decoded) == 1:
        [(delivery, record)] = decoded
        log.error("dead-lettering %s after %d attempts: %s", _where(delivery), retry.attempts, failure)
        await dead_letters.publish([(record, failure, retry.attempts)])
        return
    log.warning("batch of %d failed (%s); applying one record at a time", len(decoded), failure)
    for pair in decoded:  # in offset order, so per-child order holds around the poison record
        await _apply([pair], service, handler, dead_letters, retry)


async def _with_retries(
    deliveries: Sequence[Delivery[Any]], service: str, handler: BatchHandler[Any], retry: RetryPolicy
) -> BaseException | None:
    """Apply the batch; return the error that kept failing, or raise to get the batch redelivered."""
    attempt = transient = 0
    while True:
        try:
            await handler(deliveries)
            return None
        except Exception as exc:
            if is_transient(exc):
                transient += 1
                BATCH_RETRIES_TOTAL.labels(service=service, kind="transient").inc()
                if transient >= retry.transient_attempts:
                    raise  # NACK: seek back, the batch comes again once the dependency is back
                log.warning("transient failure (attempt %d), retrying: %s", transient, exc)
                await asyncio.sleep(retry.delay(transient))
                continue
            attempt += 1
            BATCH_RETRIES_TOTAL.labels(service=service, kind="error").inc()
            if attempt >= retry.attempts:
                return exc
            await asyncio.sleep(retry.delay(attempt))


def _where(delivery: Delivery[Any]) -> tuple[str, int, int]:
    return delivery.topic, delivery.partition, delivery.offset
