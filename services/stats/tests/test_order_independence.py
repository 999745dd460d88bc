"""Facts merge order-independently: any interleaving of the input topics and any batching give the same
counters (what makes a replay arrive at the live numbers)."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.stats.domain.figures import TOTAL, M
from services.stats.domain.model import Submission, Tumour
from services.stats.domain.projection import (
    NOTHING,
    BatchState,
    CounterKey,
    InputEvent,
    add_changes,
    child_contributions,
    footprint,
    project,
)
from services.stats.domain.reminders import ReminderPolicy
from services.stats.tests.factories import STORY_TODAY, story
from shared.events.stats import REGISTRY_SCOPE

EVENTS = story().events
POLICY = ReminderPolicy()
OSLO = ZoneInfo("Europe/Oslo")


@dataclass
class Store:
    """In memory, what the application keeps in its database."""

    submissions: dict[uuid.UUID, Submission] = field(default_factory=dict)
    children: dict[str, dict[tuple[str, str], Tumour]] = field(default_factory=dict)


def counters_after(batches: list[list[InputEvent]], store: Store | None = None) -> Counter[CounterKey]:
    """Apply batches to `store` (a new one unless given), as the application does to its database."""
    store = store or Store()
    total: Counter[CounterKey] = Counter()
    for batch in batches:
        changes = project(BatchState(store.submissions, store.children, OSLO), batch, STORY_TODAY, POLICY)
        total.update(changes.counters)
    return +total  # without the cells that went back to zero


EXPECTED = counters_after([EVENTS])


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(len(EVENTS))), cuts=st.sets(st.integers(1, len(EVENTS) - 1), max_size=8))
def test_any_order_and_batching_gives_the_same_counters(order: list[int], cuts: set[int]) -> None:
    shuffled = [EVENTS[i] for i in order]
    bounds = [0, *sorted(cuts), len(shuffled)]
    batches = [shuffled[a:b] for a, b in itertools.pairwise(bounds)]
    assert counters_after(batches) == EXPECTED


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(range(len(EVENTS))))
def test_counters_added_up_from_changes_equal_the_contributions_of_the_final_facts(order: list[int]) -> None:
    # One event per batch, in any order: every change (a diagnosis moving submissions to its year, a
    # correction moving them again, a child's second tumour) is applied as a difference.
    store = Store()
    counted = counters_after([[EVENTS[i]] for i in order], store)
    by_hospital: Counter[CounterKey] = Counter()
    expected: Counter[CounterKey] = Counter()
    for tumours in store.children.values():
        for tumour in tumours.values():
            add_changes(by_hospital, tumour.hospital_id, NOTHING, footprint(tumour))
        diagnosed = [(t.hospital_id, t.diagnosis.diagnosis_date.year) for t in tumours.values() if t.diagnosis]
        expected.update(child_contributions(diagnosed))
    received = {e.submission_id: e.received_at for e in EVENTS}
    for s in store.submissions.values():
        if s.receipted and s.outcome is None:  # no tumour known yet: on its hospital and received year
            month = received[s.submission_id].astimezone(OSLO).strftime("%Y-%m")
            by_hospital.update([(s.hospital_id, s.received_year, M.RECEIVED, s.form_type)])
            by_hospital.update([(s.hospital_id, s.received_year, M.MONTH_RECEIVED, month)])
    for (hospital, period, metric, key), count in by_hospital.items():
        for scope in (hospital, REGISTRY_SCOPE):
            expected[(scope, period, metric, key)] += count
            expected[(scope, TOTAL, metric, key)] += count
    open_reminders = Counter({cell: count for cell, count in counted.items() if cell[2] == M.REMINDERS})
    assert counted == +expected + open_reminders


def test_the_expected_counters_are_not_trivial() -> None:
    assert EXPECTED[("registry", 0, "tumours", "")] == 5
    assert EXPECTED[("ous", 2024, "children", "")] == 3


def test_a_receipt_after_its_outcome_changes_nothing_and_needs_no_tumour() -> None:
    told = story()
    outcome, receipt = told.outcomes[0], told.receipts[0]
    store = Store()
    assert counters_after([[outcome]], store)[(REGISTRY_SCOPE, TOTAL, M.RECEIVED, "diagnosis")] == 1

    # The submission alone, as the application loads it for a receipt that comes after its outcome.
    changes = project(BatchState(store.submissions, {}, OSLO), [receipt], STORY_TODAY, POLICY)

    assert (changes.counters, changes.tumours) == ({}, [])
    assert store.submissions[receipt.submission_id].receipted


def test_a_submission_decided_before_received_was_counted_at_the_outcome_counts_at_its_receipt() -> None:
    # Stored by a version that counted a submission received only when its receipt came.
    told = story()
    outcome, receipt = told.outcomes[0], told.receipts[0]
    store = Store()
    before = counters_after([[outcome]], store)
    submission = store.submissions[outcome.submission_id]
    [tumour] = store.children[outcome.child.pseudonym].values()
    submission.received_counted = False
    for tally in [t for t in tumour.tallies if t[1] in (M.RECEIVED, M.MONTH_RECEIVED)]:
        del tumour.tallies[tally]

    changes = project(BatchState(store.submissions, store.children, OSLO), [receipt], STORY_TODAY, POLICY)

    assert changes.counters[(REGISTRY_SCOPE, TOTAL, M.RECEIVED, "diagnosis")] == 1
    assert changes.counters[(REGISTRY_SCOPE, 2024, M.MONTH_RECEIVED, "2024-01")] == 1
    assert before[(REGISTRY_SCOPE, TOTAL, M.RECEIVED, "diagnosis")] == 1  # what the new rule counts at once
