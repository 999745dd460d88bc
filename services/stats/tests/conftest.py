"""Fixtures of the stats tests: a clock that tests move, settings on a fresh SQLite file, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stats.app import MIGRATIONS
from services.stats.application import StatsApplication
from services.stats.settings import StatsSettings
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade
from shared.kafka import Outgoing
from shared.settings import KafkaSettings


class ManualClock:
    """Time that stands still until a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def set_day(self, day: date, hour: int = 12) -> None:
        self.moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


class Published(list[Outgoing]):
    """Stands in for the broker where a test only looks at what would be published."""

    async def __call__(self, messages: Sequence[Outgoing]) -> None:
        self.extend(messages)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2025, 2, 1, 12, tzinfo=UTC))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}"


def stats_settings(database_url: str, **overrides: Any) -> StatsSettings:
    return StatsSettings(database_url=database_url, kafka=KafkaSettings(topic_prefix="unit."), **overrides)


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    await upgrade(engine, MIGRATIONS)
    yield engine
    await engine.dispose()


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def stats(engine: AsyncEngine, sqlite_url: str, clock: ManualClock, published: Published) -> StatsApplication:
    return StatsApplication(session_factory(engine), stats_settings(sqlite_url), clock, published)
