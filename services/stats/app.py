"""The stats service process: consumer, snapshot publisher, reminder sweep and HTTP API on one Service."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.stats import api, storage
from services.stats.application import Clock, StatsApplication, SystemClock
from services.stats.handlers import subscribe
from services.stats.settings import StatsSettings
from shared.kafka import publish_all
from shared.service import Service

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: StatsSettings, clock: Clock | None = None) -> FastAPI:
    service = Service("stats", settings, MIGRATIONS)
    storage.with_page_cache(service.engine)
    stats = StatsApplication(service.sessions, settings, clock or SystemClock(), partial(publish_all, service.broker))
    subscribe(service, stats)
    tasks: list[asyncio.Task[None]] = []

    async def start_background() -> None:
        tasks.append(asyncio.create_task(stats.run_publisher(), name="stats-publisher"))
        tasks.append(asyncio.create_task(stats.run_sweeper(), name="stats-sweeper"))

    async def stop_background() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        tasks.clear()

    service.on_start.append(start_background)
    service.on_stop.append(stop_background)
    app = service.http_app(
        title="Stats",
        description="Reporting figures per hospital and registry-wide, daily snapshots and reminders.",
        routers=[api.router],
    )
    app.state.stats = stats
    return app
