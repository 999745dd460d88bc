"""Facts merge order-independently: any interleaving of the input topics and any batching give the same
counters (what makes a replay arrive at the live numbers)."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.stats.domain.model import Reminder, Submission, Tumour
from services.stats.domain.projection import BatchState, CounterKey, InputEvent, project
from services.stats.domain.reminders import ReminderPolicy
from services.stats.tests.factories import STORY_TODAY, story

EVENTS = story().events
POLICY = ReminderPolicy()
OSLO = ZoneInfo("Europe/Oslo")


def counters_after(batches: list[list[InputEvent]]) -> Counter[CounterKey]:
    """Apply batches to an in-memory store, as the application does to its database."""
    submissions: dict[uuid.UUID, Submission] = {}
    children: dict[str, dict[tuple[str, str], Tumour]] = {}
    reminders: dict[str, dict[uuid.UUID, Reminder]] = {}
    total: Counter[CounterKey] = Counter()
    for batch in batches:
        changes = project(BatchState(submissions, children, reminders, OSLO), batch, STORY_TODAY, POLICY)
        total.update(changes.counters)
        for reminder in changes.reminders:
            reminders.setdefault(reminder.pseudonym, {})[reminder.reminder_id] = reminder
    return +total  # without the cells that went back to zero


EXPECTED = counters_after([EVENTS])


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(len(EVENTS))), cuts=st.sets(st.integers(1, len(EVENTS) - 1), max_size=8))
def test_any_order_and_batching_gives_the_same_counters(order: list[int], cuts: set[int]) -> None:
    shuffled = [EVENTS[i] for i in order]
    bounds = [0, *sorted(cuts), len(shuffled)]
    batches = [shuffled[a:b] for a, b in itertools.pairwise(bounds)]
    assert counters_after(batches) == EXPECTED


def test_the_expected_counters_are_not_trivial() -> None:
    assert EXPECTED[("registry", 0, "tumours", "")] == 5
    assert EXPECTED[("ous", 2024, "children", "")] == 3
