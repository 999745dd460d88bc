"""`registry.dead-letters`: a message a consumer could not process, with why, so it can be redriven."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from shared.events.base import Event, ServiceName


class DeadLetter(Event):
    event_type: Literal["dead_letter"] = "dead_letter"
    schema_version: Literal[1] = 1
    producer: ServiceName

    source_topic: str
    partition: int
    offset: int
    consumer_group: str
    key_b64: str | None
    # The original bytes, base64; `fernet` when the source topic may carry identity numbers.
    value_b64: str
    value_encoding: Literal["base64", "fernet"] = "base64"
    headers: tuple[tuple[str, str], ...] = ()
    error_type: str
    error: str  # never includes the input values: pydantic errors are rendered without them
    attempts: int
    failed_at: AwareDatetime
