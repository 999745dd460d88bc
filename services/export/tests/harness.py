"""Export's real application layer on real files: the consumer's use case, the delivery worker and a
sink, over SQLite databases (or a drop directory) that outlive the objects, so a test can crash and
restart them."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from services.export.application import ExportApplication
from services.export.delivery import DeliveryWorker, PassResult
from services.export.domain.record import ExportIds
from services.export.sinks import FileDropSink, Held, Sink, SinkOperation, SqlSink
from services.export.sinks.filedrop import signing_key
from services.export.storage import MIGRATIONS, Transactions
from services.export.tests.factories import KEY
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade
from shared.kafka import Delivery
from shared.topics import RESERVATIONS, SUBMISSIONS_VALIDATED

SIGNING = signing_key(b"signing-test-key".ljust(32, b"s"))
SinkKind = Literal["sql", "file"]


class Crash(BaseException):
    """The process dies here: nothing after it runs (not an `Exception`, so no handler catches it)."""


@dataclass
class FaultySink:
    """Wraps a sink with one fault for its next delivery: die before or after the sink's write, or have
    the sink refuse the data."""

    inner: Sink
    fault: Literal["before", "after", "refuse"] | None = None
    name: str = "test"
    delivered: list[SinkOperation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    async def deliver(self, operations: Sequence[SinkOperation]) -> str:
        fault, self.fault = self.fault, None
        if fault == "before":
            raise Crash
        if fault == "refuse":
            raise ValueError("the sink refused the batch")
        batch = await self.inner.deliver(operations)
        self.delivered += operations
        if fault == "after":
            raise Crash
        return batch

    async def holdings(self) -> dict[str, Held]:
        return await self.inner.holdings()

    async def close(self) -> None:
        await self.inner.close()


async def migrated_template(directory: Path) -> Path:
    path = directory / "export-template.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine, MIGRATIONS)
    await engine.dispose()
    return path


class Harness:
    """One export instance over files in `directory`; `restart()` replaces every object, as a new process."""

    def __init__(
        self,
        directory: Path,
        template: Path,
        sink: SinkKind = "sql",
        *,
        batch_size: int = 500,
        max_failures: int = 3,
        export_url: str | None = None,
        nordic_url: str | None = None,
    ) -> None:
        self.directory = directory
        if export_url is None:
            shutil.copy(template, directory / "export.db")
            export_url = f"sqlite+aiosqlite:///{directory / 'export.db'}"
        self.export_url = export_url
        self.nordic_url = nordic_url or f"sqlite+aiosqlite:///{directory / 'nordic.db'}"
        self.sink_kind = sink
        self.batch_size = batch_size
        self.max_failures = max_failures
        self.ids = ExportIds(KEY)
        self.offset = 0
        self._open()

    def _open(self) -> None:
        self.engine = create_engine(self.export_url)
        self.sessions = session_factory(self.engine)
        self.transactions = Transactions(self.sessions)
        inner: Sink = (
            SqlSink(self.nordic_url) if self.sink_kind == "sql" else FileDropSink(self.directory / "drop", SIGNING)
        )
        self.sink = FaultySink(inner)
        self.worker = DeliveryWorker(
            self.transactions,
            self.sink,
            owner="test-instance",
            batch_size=self.batch_size,
            max_failures=self.max_failures,
        )
        self.application = ExportApplication(self.transactions, self.ids)

    async def consume(self, *events: Any) -> None:
        """One consumed batch, as `subscribe_batch` hands it over."""
        batch = []
        for event in events:
            spec = RESERVATIONS if event.event_type.startswith("reservation") else SUBMISSIONS_VALIDATED
            batch.append(Delivery(event, b"key", spec.name, 0, self.offset))
            self.offset += 1
        await self.application.handle(batch)

    async def deliver(self) -> PassResult:
        return await self.worker.deliver_all()

    async def holdings(self) -> dict[str, Held]:
        return await self.sink.holdings()

    async def restart(self) -> None:
        await self.close()
        self._open()

    async def close(self) -> None:
        await self.sink.close()
        await self.engine.dispose()
