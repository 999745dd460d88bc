"""The projection on PostgreSQL, the production database: the same hand-computed figures, idempotence,
reminders and daily snapshots as on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import pytest

from services.stats import storage
from services.stats.app import MIGRATIONS
from services.stats.application import StatsApplication
from services.stats.tests.conftest import ManualClock, Published, stats_settings
from services.stats.tests.factories import STORY_TODAY, story
from services.stats.tests.test_projection import OUS_TOTAL
from shared.db import create_engine, session_factory
from shared.db.migrations import upgrade

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_stats(postgres_url: str, clock: ManualClock, published: Published) -> AsyncIterator[StatsApplication]:
    engine = create_engine(postgres_url)
    await upgrade(engine, MIGRATIONS)
    yield StatsApplication(session_factory(engine), stats_settings(postgres_url), clock, published)
    await engine.dispose()


async def test_figures_idempotence_reminders_and_days_on_postgres(
    pg_stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    events = story().events
    clock.set_day(date(2025, 1, 20))
    await pg_stats.apply(events[:9])
    await pg_stats.flush()
    clock.set_day(STORY_TODAY)
    await pg_stats.apply(events)  # the first nine again: duplicates
    await pg_stats.apply(events[::-1])
    assert await pg_stats.sweep() == []
    await pg_stats.flush()

    assert (await pg_stats.current("ous")).total == OUS_TOTAL
    assert {r.tumour_ref for r in await pg_stats.outstanding(None)} == {"C1", "E1", "H-7"}
    days = await pg_stats.daily("ous", date(2025, 1, 20), STORY_TODAY)
    assert len(days) == (STORY_TODAY - date(2025, 1, 20)).days + 1
    assert days[-1][1].total == OUS_TOTAL
    assert days[0][1].total.tumours < OUS_TOTAL.tumours


async def test_two_instances_applying_a_submissions_receipt_and_outcome_at_once_keep_both(
    postgres_url: str, clock: ManualClock, published: Published
) -> None:
    # Receipts are keyed by hospital and outcomes by child: two stats instances in one group can hold the
    # receipt and the outcome of one submission at the same moment. Neither may overwrite the other's facts.
    engine = create_engine(postgres_url)
    await upgrade(engine, MIGRATIONS)
    sessions = session_factory(engine)
    first, second = (StatsApplication(sessions, stats_settings(postgres_url), clock, published) for _ in range(2))
    clock.set_day(STORY_TODAY)
    told = story()
    try:
        await asyncio.gather(first.apply(told.receipts), second.apply(told.outcomes))
        async with sessions() as session:
            submissions = await storage.load_submissions(session, [o.submission_id for o in told.outcomes])
        await first.flush()
        assert (await first.current("ous")).total == OUS_TOTAL
    finally:
        await engine.dispose()
    assert len(submissions) == len(told.outcomes)
    assert all(s.receipted and s.outcome is not None for s in submissions.values())
