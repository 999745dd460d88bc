"""Publishing dead letters: the original bytes, where they came from, and why they could not be handled."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, Literal

from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from shared.events import DeadLetter
from shared.events.base import ServiceName, utcnow
from shared.kafka.producer import Outgoing, publish_all
from shared.observability.metrics import DEAD_LETTERS_TOTAL
from shared.topics import DEAD_LETTERS


def describe_error(exc: BaseException) -> str:
    """A reason fit for a topic and a log: pydantic errors are listed by field *without* their input,
    which might be an identity number."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
    return f"{type(exc).__name__}: {exc}"[:2000]


class DeadLetterPublisher:
    def __init__(
        self,
        broker: KafkaBroker,
        service: ServiceName,
        consumer_group: str,
        topic: str = DEAD_LETTERS.name,
        seal: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._broker = broker
        self._service = service
        self._group = consumer_group
        self._topic = topic
        # Topics that may carry identity numbers (the hospital inbound topic) seal the payload.
        self._seal = seal

    async def publish(self, failures: Sequence[tuple[Any, BaseException, int]]) -> None:
        """Publish `(record, error, attempts)` triples and wait until the broker has them all."""
        letters = []
        for record, exc, attempts in failures:
            value: bytes = record.value or b""
            encoding: Literal["base64", "fernet"] = "base64"
            if self._seal is not None:
                value, encoding = self._seal(value), "fernet"
            letter = DeadLetter(
                producer=self._service,
                source_topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                consumer_group=self._group,
                key_b64=base64.b64encode(record.key).decode() if record.key is not None else None,
                value_b64=base64.b64encode(value).decode(),
                value_encoding=encoding,
                headers=tuple((k, base64.b64encode(v or b"").decode()) for k, v in (record.headers or ())),
                error_type=type(exc).__name__,
                error=describe_error(exc),
                attempts=attempts,
                failed_at=utcnow(),
            )
            letters.append(Outgoing(self._topic, record.key or b"", letter))
            DEAD_LETTERS_TOTAL.labels(service=self._service, topic=record.topic, error=type(exc).__name__).inc()
        await publish_all(self._broker, letters)
