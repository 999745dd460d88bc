"""`create_app`: the export service: consumer, delivery worker, and the staff API."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from services.export import api, handlers
from services.export.application import ExportApplication
from services.export.delivery import DeliveryWorker
from services.export.domain.record import ExportIds
from services.export.settings import ExportSettings
from services.export.sinks import open_sink
from services.export.storage import MIGRATIONS, Transactions
from shared.service import Service
from shared.settings import key_bytes

log = logging.getLogger(__name__)


def create_app(settings: ExportSettings) -> FastAPI:
    service = Service("export", settings, MIGRATIONS)
    sink = open_sink(settings)
    transactions = Transactions(service.sessions)
    worker = DeliveryWorker(
        transactions,
        sink,
        owner=settings.lease_owner,
        batch_size=settings.delivery_batch,
        max_failures=settings.max_failures,
        lease_s=settings.lease_s,
    )
    application = ExportApplication(transactions, ExportIds(key_bytes(settings.pseudonym_key)), on_queued=worker.wake)
    handlers.subscribe(service, application, consumers=settings.consumers)
    running: list[asyncio.Task[None]] = []

    async def start_delivery() -> None:
        running.append(
            asyncio.create_task(
                worker.run(interval_s=settings.batch_interval_s, poll_s=settings.poll_interval_s),
                name="export-delivery",
            )
        )

    async def stop_delivery() -> None:
        # Stopping mid-delivery is a crash the ledger is built for: the next start re-sends what is unconfirmed.
        for task in running:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await worker.release()
        except Exception:  # the database is away: the lease lapses by itself after EXPORT_LEASE_S
            log.warning("could not release the delivery lease", exc_info=True)
        await sink.close()

    service.on_start.append(start_delivery)
    service.on_stop.append(stop_delivery)
    app = service.http_app(
        title="Export",
        description="NOPHO-Care transfers to the Nordic research database: status and audit log.",
        routers=[api.router],
    )
    app.state.export_sessions = service.sessions
    return app
