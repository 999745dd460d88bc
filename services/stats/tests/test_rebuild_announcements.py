"""After a replay, only reminders whose state differs from before the rebuild are announced."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.stats.application import StatsApplication
from services.stats.tests.conftest import ManualClock, Published, stats_settings
from services.stats.tests.factories import STORY_TODAY, story
from shared.db import session_factory
from shared.events import ReminderChanged
from shared.events.stats import ReminderStatus


async def test_a_rebuild_announces_only_what_changed(
    engine: AsyncEngine, sqlite_url: str, clock: ManualClock, published: Published
) -> None:
    clock.set_day(STORY_TODAY)
    events = story().events
    live = StatsApplication(session_factory(engine), stats_settings(sqlite_url), clock, published)
    await live.apply(events)
    first = {m.event.event_id for m in published}
    published.clear()

    # The same history replayed under the same policy: nothing to tell the hospitals.
    before = await live.reset()
    await live.apply(events, announce=False)
    assert await live.announce_rebuilt(before) == []
    assert [m for m in published if isinstance(m.event, ReminderChanged)] == []

    # Replayed under a longer treatment deadline (one year), Cleo's and Anna's Haukeland treatment
    # reminders are no longer due: cleared, with event ids never used before.
    patient = StatsApplication(
        session_factory(engine), stats_settings(sqlite_url, treatment_report_due_days=365), clock, published
    )
    before = await patient.reset()
    await patient.apply(events, announce=False)
    announced = await patient.announce_rebuilt(before)

    assert sorted((r.tumour_ref, r.status) for r in announced) == [
        ("C1", ReminderStatus.CLEARED),
        ("H-7", ReminderStatus.CLEARED),
    ]
    messages = [m.event for m in published if isinstance(m.event, ReminderChanged)]
    assert {e.event_id for e in messages}.isdisjoint(first)
    assert {r.tumour_ref for r in await patient.outstanding(None)} == {"E1"}
