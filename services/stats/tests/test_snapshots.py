"""Snapshots: published for changed scopes only, coalesced, versioned, and kept one per day."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stats import application, storage
from services.stats.application import StatsApplication
from services.stats.domain.figures import TOTAL
from services.stats.tests.conftest import ManualClock, Published, stats_settings
from services.stats.tests.factories import STORY_TODAY, child, diagnosis, pseudonym, story
from shared.db import session_factory
from shared.events import StatsSnapshot


def snapshots(published: Published) -> dict[str, StatsSnapshot]:
    found = {}
    for message in published:
        if isinstance(message.event, StatsSnapshot):
            assert message.key == message.event.scope
            assert message.topic == "unit.stats.snapshots"
            found[message.event.scope] = message.event
    published.clear()
    return found


async def test_only_changed_scopes_are_published_and_many_batches_coalesce(
    stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    clock.set_day(STORY_TODAY)
    for event in story().events:  # one batch per event
        await stats.apply([event])
    published.clear()  # reminders

    await stats.flush()
    first = snapshots(published)
    assert set(first) == {"ous", "haukeland", "registry"}
    assert first["ous"] == (await stats.current("ous")).model_copy(update={"occurred_at": first["ous"].occurred_at})

    await stats.flush()
    assert snapshots(published) == {}  # nothing changed

    await stats.apply([diagnosis("haukeland", child("ivar", "2019-01-01", "male"), "H-9", "2025-01-20", "2025-01-30")])
    await stats.flush()
    second = snapshots(published)
    assert set(second) == {"haukeland", "registry"}
    assert second["haukeland"].version > first["haukeland"].version
    assert second["haukeland"].total.tumours == 2


async def as_computed_afresh(snapshot: StatsSnapshot, engine: AsyncEngine, sqlite_url: str) -> StatsSnapshot:
    """The scope's snapshot from an application that has computed nothing before (no period cached)."""
    fresh = StatsApplication(
        session_factory(engine), stats_settings(sqlite_url), ManualClock(snapshot.occurred_at), Published()
    )
    return await fresh.current(snapshot.scope)


async def test_a_flush_recomputes_only_the_changed_periods_and_equals_computing_all(
    stats: StatsApplication,
    clock: ManualClock,
    published: Published,
    engine: AsyncEngine,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.set_day(STORY_TODAY)
    await stats.apply(story().events)
    await stats.flush()
    published.clear()
    read: list[list[tuple[str, int]]] = []
    counters_of = storage.counters_of

    async def spy(session, periods):  # type: ignore[no-untyped-def]
        read.append(sorted(periods))
        return await counters_of(session, periods)

    monkeypatch.setattr(storage, "counters_of", spy)

    await stats.apply([diagnosis("haukeland", child("ivar", "2019-01-01", "male"), "H-9", "2025-01-20", "2025-01-30")])
    await stats.flush()

    # In one query, haukeland's and the registry's; not 2023 or 2024.
    assert read == [[("haukeland", TOTAL), ("haukeland", 2025), ("registry", TOTAL), ("registry", 2025)]]
    for snapshot in snapshots(published).values():
        assert set(snapshot.by_diagnosis_year) >= {"2024", "2025"}
        assert snapshot == await as_computed_afresh(snapshot, engine, sqlite_url)


async def test_after_a_reset_a_period_left_out_of_the_replay_is_gone_from_the_snapshot(
    stats: StatsApplication, clock: ManualClock, published: Published, engine: AsyncEngine, sqlite_url: str
) -> None:
    clock.set_day(STORY_TODAY)
    s = story()
    await stats.apply(s.events)
    await stats.flush()
    assert "2023" in snapshots(published)["ous"].by_diagnosis_year  # Emil's tumour, his reports

    emil = {o.submission_id for o in s.outcomes if o.child.pseudonym == pseudonym("emil")}
    await stats.reset()
    await stats.apply([e for e in s.events if e.submission_id not in emil])
    await stats.announce_rebuilt([])
    await stats.flush()

    again = snapshots(published)["ous"]
    assert "2023" not in again.by_diagnosis_year
    assert again == await as_computed_afresh(again, engine, sqlite_url)


async def test_a_snapshot_names_no_child(stats: StatsApplication, clock: ManualClock, published: Published) -> None:
    clock.set_day(STORY_TODAY)
    s = story()
    await stats.apply(s.events)
    await stats.flush()
    for message in published:
        payload = message.event.to_json()
        assert all(outcome.child.pseudonym.encode() not in payload for outcome in s.outcomes)


async def test_a_day_keeps_its_last_snapshot_and_quiet_days_carry_it_forward(
    stats: StatsApplication, clock: ManualClock
) -> None:
    events = story().events
    clock.set_day(date(2025, 1, 10))
    await stats.apply(events[:5])
    await stats.flush()
    await stats.apply(events[5:10])
    await stats.flush()  # the 10th's last state
    clock.set_day(date(2025, 1, 13))
    await stats.apply(events[10:])
    await stats.flush()

    days = await stats.daily("ous", date(2025, 1, 9), date(2025, 1, 14))

    assert [day for day, _ in days] == [date(2025, 1, d) for d in range(10, 15)]
    tenth, eleventh, _, thirteenth, fourteenth = (snapshot for _, snapshot in days)
    assert eleventh == tenth
    assert tenth.total.submissions != thirteenth.total.submissions
    assert fourteenth == thirteenth
    assert thirteenth.total == (await stats.current("ous")).total
    assert await stats.daily("ous", date(2024, 1, 1), date(2024, 1, 31)) == []


@pytest.mark.parametrize("draining", [True, False])
async def test_while_a_backlog_drains_publishing_takes_at_most_a_tenth_of_the_time(
    stats: StatsApplication, monkeypatch: pytest.MonkeyPatch, draining: bool
) -> None:
    now = [100.0]
    waits: list[float] = []

    async def slow_flush() -> list[StatsSnapshot]:
        now[0] += 0.2  # a flush that recomputed many periods
        return []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise asyncio.CancelledError  # one round is enough

    monkeypatch.setattr(stats, "flush", slow_flush)
    monkeypatch.setattr(application.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(application.asyncio, "sleep", sleep)
    stats._reminders_changed = False
    stats._draining = draining

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(stats.run_publisher(), timeout=5)

    # Otherwise at the interval, however long the flush took: dashboards wait for the snapshots.
    assert waits == [pytest.approx(9 * 0.2) if draining else stats.settings.snapshot_interval_s]
