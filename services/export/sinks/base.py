"""The sink interface: how export hands operations to the Nordic side, which it does not control.

Every sink is idempotent by the operation's `sequence` (the ledger id, increasing for every record):
an operation that reached the sink before changes nothing when it comes again, which is what makes a
crash between the sink's write and export's ledger commit harmless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.export.domain.ledger import Operation


@dataclass(frozen=True, slots=True)
class SinkOperation:
    sequence: int
    record_id: str
    operation: Operation
    record: bytes | None  # the transfer record's canonical JSON, for an upsert
    record_sha256: str | None

    def record_json(self) -> dict[str, Any]:
        assert self.record is not None, "a delete carries no record"
        parsed: dict[str, Any] = json.loads(self.record)
        return parsed


@dataclass(frozen=True, slots=True)
class Held:
    """A record as the Nordic side holds it."""

    record_id: str
    sequence: int
    record: dict[str, Any]
    record_sha256: str


class SinkUnavailable(Exception):
    """The sink cannot be reached now (network, disk, database down): retry later, nothing was refused."""


class Sink(Protocol):
    name: str

    async def deliver(self, operations: Sequence[SinkOperation]) -> str:
        """Apply the operations (each record at most once, in sequence order) all or nothing, and return
        a reference to where they went, for the ledger and the audit log. Raises `SinkUnavailable` when
        the sink cannot be reached; any other error means the sink refused the data."""
        ...

    async def holdings(self) -> dict[str, Held]:
        """What the Nordic side holds now, by record id (reconciliation and tests)."""
        ...

    async def close(self) -> None: ...
