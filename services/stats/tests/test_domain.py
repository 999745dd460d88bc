"""Pure domain functions: percentiles, age groups, anniversaries, rejection codes, reconciliation."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from services.stats.domain.figures import age_group, day_buckets, quantile, share, timeliness
from services.stats.domain.model import Diagnosis, Tumour
from services.stats.domain.projection import rejecting_codes
from services.stats.domain.reminders import Due, ReminderPolicy, add_years, evaluate, reconcile
from services.stats.tests.factories import at, finding
from shared.events.stats import ReminderKind, ReminderStatus


@pytest.mark.parametrize(
    ("values", "median", "p90"),
    [
        ([7], 7, 7),
        ([4, 10, 10, 30], 10, 24),
        ([1, 2, 3, 4], 2.5, 3.7),
        (list(range(1, 11)), 5.5, 9.1),
    ],
)
def test_quantiles_interpolate_between_ranks(values: list[int], median: float, p90: float) -> None:
    histogram: dict[int, int] = {}
    for value in values:
        histogram[value] = histogram.get(value, 0) + 1
    assert quantile(histogram, 0.5) == pytest.approx(median)
    assert quantile(histogram, 0.9) == pytest.approx(p90)


def test_quantile_of_nothing_is_none() -> None:
    assert quantile({}, 0.5) is None
    assert quantile({3: 0}, 0.5) is None


@pytest.mark.parametrize(
    ("birth", "diagnosed", "group"),
    [
        ("2024-01-10", "2024-12-31", "0"),
        ("2023-01-10", "2024-01-10", "1-4"),
        ("2019-06-01", "2024-05-31", "1-4"),
        ("2019-06-01", "2024-06-01", "5-9"),
        ("2010-03-03", "2024-03-02", "10-14"),
        ("2007-01-01", "2024-12-31", "15-17"),
        ("2006-01-01", "2024-01-01", "18+"),
    ],
)
def test_age_groups_use_completed_years(birth: str, diagnosed: str, group: str) -> None:
    assert age_group(date.fromisoformat(birth), date.fromisoformat(diagnosed)) == group


def test_anniversary_of_a_leap_day() -> None:
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)


def test_shares_show_their_parts() -> None:
    assert share(41, 50, 0.8).model_dump() == {
        "numerator": 41,
        "denominator": 50,
        "ratio": 0.82,
        "target": 0.8,
        "target_is_maximum": False,
    }
    assert share(0, 0).ratio is None
    assert share(1, 40, 0.05, maximum=True).target_is_maximum is True
    assert share(1, 40, maximum=True).target_is_maximum is False  # no target, no direction


def test_timeliness_buckets_days_by_range_with_inclusive_upper_bounds() -> None:
    # Two per range, on its bounds (30 twice): 0 and 7, 8 and 14, 31 and 60, ..., 181 and 400.
    histogram = {0: 1, 7: 1, 8: 1, 14: 1, 30: 2, 31: 1, 60: 1, 61: 1, 90: 1, 91: 1, 180: 1, 181: 1, 400: 1}
    assert day_buckets(histogram) == {
        "0-7": 2,
        "8-14": 2,
        "15-30": 2,
        "31-60": 2,
        "61-90": 2,
        "91-180": 2,
        ">180": 2,
    }
    assert list(timeliness({-2: 1, 3: 1}).buckets) == ["<0", "0-7", "8-14", "15-30", "31-60", "61-90", "91-180", ">180"]
    assert timeliness({-2: 1, 3: 1}).buckets["<0"] == 1
    assert timeliness({}).buckets == {}


def test_errors_and_unconfirmed_warnings_reject_queries_do_not() -> None:
    findings = [
        finding("E_SEX_SITE"),
        finding("W_AGE_SITE", "warning"),
        finding("W_GRADE", "warning", overridden=True),
        finding("Q_LATERALITY", "query"),
        finding("E_SEX_SITE"),
    ]
    assert rejecting_codes(findings) == ("E_SEX_SITE", "W_AGE_SITE")


def _diagnosed(day: str) -> Tumour:
    tumour = Tumour("a" * 32, "ous", "T1")
    tumour.diagnosis = Diagnosis(
        submission_id=uuid.uuid4(),
        received_at=at(day),
        diagnosis_date=date.fromisoformat(day),
        birth_date=date(2015, 1, 1),
        sex="male",
        topography="C71.6",
        morphology="9470",
        basis=7,
        main_group="III",
        subgroup="IIIc",
        with_override=False,
    )
    return tumour


def test_evaluation_names_the_next_day_anything_changes() -> None:
    tumour = _diagnosed("2024-01-02")
    policy = ReminderPolicy(treatment_report_due_days=30, follow_up_years=(1, 3))

    owed = evaluate([tumour], date(2024, 1, 15), policy)

    assert owed[tumour.key] == []
    assert tumour.next_due_on == date(2024, 2, 1)
    owed = evaluate([tumour], date(2024, 2, 1), policy)
    assert owed[tumour.key] == [Due(ReminderKind.TREATMENT_REPORT_MISSING, None, date(2024, 2, 1))]
    assert tumour.next_due_on == date(2025, 1, 2)


def test_a_reminder_whose_due_date_moves_is_announced_again() -> None:
    tumour = _diagnosed("2024-01-02")
    policy = ReminderPolicy()
    today = date(2024, 6, 1)
    [opened] = reconcile(tumour, evaluate([tumour], today, policy)[tumour.key], today)
    assert opened.status is ReminderStatus.OPEN and opened.transitions == 1
    assert tumour.reminders[(ReminderKind.TREATMENT_REPORT_MISSING, None)].due_date == opened.due_date

    assert reconcile(tumour, evaluate([tumour], today, policy)[tumour.key], today) == []
    assert tumour.diagnosis is not None
    tumour.diagnosis.diagnosis_date = date(2024, 1, 20)  # a corrected diagnosis date
    [moved] = reconcile(tumour, evaluate([tumour], today, policy)[tumour.key], today)

    assert moved.reminder_id == opened.reminder_id
    assert (moved.status, moved.due_date, moved.transitions) == (ReminderStatus.OPEN, date(2024, 2, 19), 2)


def test_a_cleared_reminder_that_falls_due_again_continues_its_transitions() -> None:
    tumour = _diagnosed("2024-01-02")
    policy = ReminderPolicy()
    today = date(2024, 6, 1)
    [opened] = reconcile(tumour, evaluate([tumour], today, policy)[tumour.key], today)
    tumour.treatment_reported_on = date(2024, 6, 1)
    [cleared] = reconcile(tumour, evaluate([tumour], today, policy)[tumour.key], today)
    tumour.treatment_reported_on = None  # the treatment report withdrawn by a correction, say
    [reopened] = reconcile(tumour, evaluate([tumour], today, policy)[tumour.key], today)

    assert opened.reminder_id == cleared.reminder_id == reopened.reminder_id
    assert [(r.status, r.transitions) for r in (opened, cleared, reopened)] == [
        (ReminderStatus.OPEN, 1),
        (ReminderStatus.CLEARED, 2),
        (ReminderStatus.OPEN, 3),
    ]
