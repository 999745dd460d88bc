"""Domain metrics: accepted/rejected totals by hospital and form type, outstanding reminders."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.stats.application import StatsApplication
from services.stats.tests.conftest import ManualClock
from services.stats.tests.factories import STORY_TODAY, story, treatment


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_totals_count_applied_outcomes_once(stats: StatsApplication, clock: ManualClock) -> None:
    clock.set_day(STORY_TODAY)
    accepted = sample("stats_submissions_accepted_total", hospital="ous", form_type="treatment")
    rejected = sample("stats_submissions_rejected_total", hospital="ous", form_type="diagnosis")
    events = story().events

    await stats.apply(events)
    await stats.apply(events)  # redelivered: not counted again

    assert sample("stats_submissions_accepted_total", hospital="ous", form_type="treatment") == accepted + 3
    assert sample("stats_submissions_rejected_total", hospital="ous", form_type="diagnosis") == rejected + 1


async def test_outstanding_reminders_gauge_follows_the_database(stats: StatsApplication, clock: ManualClock) -> None:
    clock.set_day(STORY_TODAY)
    s = story()
    await stats.apply(s.events)
    await stats.refresh_reminder_gauges()
    assert sample("stats_reminders_outstanding", hospital="ous", kind="treatment_report_missing") == 1
    assert sample("stats_reminders_outstanding", hospital="ous", kind="follow_up_due") == 1
    assert sample("stats_reminders_outstanding", hospital="haukeland", kind="treatment_report_missing") == 1

    [anna_haukeland] = [o for o in s.outcomes if o.hospital_id == "haukeland"]
    await stats.apply([treatment("haukeland", anna_haukeland.child, "H-7", "2024-06-05", "2025-02-01")])
    await stats.refresh_reminder_gauges()
    assert sample("stats_reminders_outstanding", hospital="haukeland", kind="treatment_report_missing") == 0
