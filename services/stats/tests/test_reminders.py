"""Reminders open when reports fall due as time moves, and clear when the reports arrive."""

from __future__ import annotations

from datetime import date

from services.stats.application import StatsApplication
from services.stats.tests.conftest import ManualClock, Published
from services.stats.tests.factories import child, diagnosis, follow_up, treatment
from shared.events import FormType, ReminderChanged
from shared.events.stats import ReminderKind, ReminderStatus

NORA = child("nora", "2015-08-20", "female")


def changes(published: Published) -> list[tuple[str, ReminderKind, int | None, ReminderStatus, date]]:
    out = []
    for message in published:
        assert isinstance(message.event, ReminderChanged)
        assert message.key == message.event.hospital_id
        e = message.event
        out.append((e.tumour_ref, e.kind, e.follow_up_year, e.status, e.due_date))
    published.clear()
    return out


async def test_a_missing_treatment_report_opens_when_due_and_clears_when_it_arrives(
    stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    clock.set_day(date(2024, 9, 5))
    await stats.apply([diagnosis("ous", NORA, "N1", "2024-09-01", "2024-09-04")])
    assert changes(published) == []

    clock.set_day(date(2024, 9, 30))  # 29 days after the diagnosis: not due yet
    assert await stats.sweep() == []
    clock.set_day(date(2024, 10, 1))
    opened = await stats.sweep()

    assert changes(published) == [
        ("N1", ReminderKind.TREATMENT_REPORT_MISSING, None, ReminderStatus.OPEN, date(2024, 10, 1))
    ]
    [outstanding] = await stats.outstanding("ous")
    assert outstanding.reminder_id == opened[0].reminder_id
    assert outstanding.kind is ReminderKind.TREATMENT_REPORT_MISSING
    assert (await stats.current("ous")).reminders_open == 1
    assert await stats.sweep() == []  # an open reminder is announced once

    clock.set_day(date(2024, 10, 8))
    await stats.apply([treatment("ous", NORA, "N1", "2024-09-06", "2024-10-08")])

    assert changes(published) == [
        ("N1", ReminderKind.TREATMENT_REPORT_MISSING, None, ReminderStatus.CLEARED, date(2024, 10, 1))
    ]
    assert await stats.outstanding("ous") == []
    assert (await stats.current("ous")).reminders_open == 0


async def test_follow_ups_fall_due_on_the_anniversaries(
    stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    clock.set_day(date(2024, 1, 10))
    await stats.apply(
        [
            diagnosis("ous", NORA, "N1", "2024-01-02", "2024-01-08"),
            treatment("ous", NORA, "N1", "2024-01-03", "2024-01-09"),
        ]
    )
    clock.set_day(date(2025, 1, 1))
    await stats.sweep()
    assert changes(published) == []
    assert (await stats.current("ous")).total.with_due_follow_up_report.denominator == 0

    clock.set_day(date(2025, 1, 2))
    await stats.sweep()
    assert changes(published) == [("N1", ReminderKind.FOLLOW_UP_DUE, 1, ReminderStatus.OPEN, date(2025, 1, 2))]
    due = (await stats.current("ous")).total.with_due_follow_up_report
    assert (due.numerator, due.denominator) == (0, 1)

    # A check-up a few weeks before the anniversary is that year's follow-up.
    clock.set_day(date(2025, 1, 20))
    await stats.apply([follow_up("ous", NORA, "N1", "2024-12-15", "2025-01-20")])
    assert changes(published) == [("N1", ReminderKind.FOLLOW_UP_DUE, 1, ReminderStatus.CLEARED, date(2025, 1, 2))]
    due = (await stats.current("ous")).total.with_due_follow_up_report
    assert (due.numerator, due.denominator) == (1, 1)

    clock.set_day(date(2027, 1, 2))  # the third year falls due unreported
    await stats.sweep()
    assert changes(published) == [("N1", ReminderKind.FOLLOW_UP_DUE, 3, ReminderStatus.OPEN, date(2027, 1, 2))]
    reminder = (await stats.outstanding(None))[0]
    assert reminder.follow_up_year == 3


async def test_no_follow_up_is_owed_after_a_death(
    stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    clock.set_day(date(2024, 1, 10))
    await stats.apply(
        [
            diagnosis("ous", NORA, "N1", "2024-01-02", "2024-01-08"),
            treatment("ous", NORA, "N1", "2024-01-03", "2024-01-09"),
        ]
    )
    clock.set_day(date(2024, 7, 1))
    await stats.apply([follow_up("ous", NORA, "N1", "2024-06-20", "2024-07-01", dead=True)])
    clock.set_day(date(2030, 1, 1))
    await stats.sweep()

    assert changes(published) == []
    assert await stats.outstanding("ous") == []


async def test_a_rejected_treatment_report_does_not_clear_the_reminder(
    stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    clock.set_day(date(2024, 3, 1))
    await stats.apply([diagnosis("ous", NORA, "N1", "2024-01-02", "2024-01-08")])
    assert [c[3] for c in changes(published)] == [ReminderStatus.OPEN]  # already overdue when it arrives

    await stats.apply([treatment("ous", NORA, "N1", "2024-01-03", "2024-03-01", accepted=False)])

    assert changes(published) == []
    [open_reminder] = await stats.outstanding("ous")
    assert open_reminder.kind is ReminderKind.TREATMENT_REPORT_MISSING


async def test_reminders_carry_no_pseudonym(stats: StatsApplication, clock: ManualClock, published: Published) -> None:
    clock.set_day(date(2024, 3, 1))
    await stats.apply([diagnosis("ous", NORA, "N1", "2024-01-02", "2024-01-08")])

    [message] = published
    assert isinstance(message.event, ReminderChanged)
    assert NORA.pseudonym.encode() not in message.event.to_json()
    assert message.event.missing_form is FormType.TREATMENT


# --- several treatment and follow-up reports per tumour, each corrected on its own ----------------------


async def test_each_follow_up_report_counts_and_a_correction_replaces_only_its_own(
    stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    clock.set_day(date(2024, 1, 10))
    await stats.apply([diagnosis("ous", NORA, "N1", "2024-01-02", "2024-01-08")])
    first_year = follow_up("ous", NORA, "N1", "2024-12-20", "2025-01-05")
    third_year = follow_up("ous", NORA, "N1", "2026-12-28", "2027-01-04")
    clock.set_day(date(2027, 1, 5))
    await stats.apply([first_year, third_year])
    await stats.sweep()
    assert [c for c in changes(published) if c[1] is ReminderKind.FOLLOW_UP_DUE] == []
    due = (await stats.current("ous")).total.with_due_follow_up_report
    assert (due.numerator, due.denominator) == (1, 1)

    # The first year's report corrected after the third year's came: the third year stays reported.
    clock.set_day(date(2027, 2, 1))
    await stats.apply([follow_up("ous", NORA, "N1", "2024-12-21", "2027-02-01", corrects=first_year)])
    assert changes(published) == []
    due = (await stats.current("ous")).total.with_due_follow_up_report
    assert (due.numerator, due.denominator) == (1, 1)

    # A correction of the third year's report that moves its last contact out of the year un-reports it.
    clock.set_day(date(2027, 2, 2))
    await stats.apply([follow_up("ous", NORA, "N1", "2026-06-01", "2027-02-02", corrects=third_year)])
    assert changes(published) == [("N1", ReminderKind.FOLLOW_UP_DUE, 3, ReminderStatus.OPEN, date(2027, 1, 2))]
    due = (await stats.current("ous")).total.with_due_follow_up_report
    assert (due.numerator, due.denominator) == (0, 1)


async def test_a_correction_replaces_its_report_also_when_a_version_in_between_was_rejected(
    stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    clock.set_day(date(2024, 7, 1))
    await stats.apply([diagnosis("ous", NORA, "N1", "2024-01-02", "2024-01-08")])
    wrong = follow_up("ous", NORA, "N1", "2024-06-20", "2024-07-01", dead=True)  # the wrong child's death
    rejected = follow_up("ous", NORA, "N1", "2024-06-21", "2024-07-02", accepted=False, corrects=wrong)
    fixed = follow_up("ous", NORA, "N1", "2024-06-22", "2024-07-03", corrects=rejected)
    await stats.apply([wrong, rejected, fixed])
    changes(published)

    # Alive after all: the first anniversary falls due.
    clock.set_day(date(2025, 1, 2))
    await stats.sweep()
    assert changes(published) == [("N1", ReminderKind.FOLLOW_UP_DUE, 1, ReminderStatus.OPEN, date(2025, 1, 2))]


async def test_timeliness_and_completeness_count_the_first_of_several_treatment_reports(
    stats: StatsApplication, clock: ManualClock, published: Published
) -> None:
    clock.set_day(date(2024, 6, 1))
    chemotherapy = treatment("ous", NORA, "N1", "2024-01-05", "2024-01-20")
    await stats.apply(
        [
            diagnosis("ous", NORA, "N1", "2024-01-02", "2024-01-08"),
            treatment("ous", NORA, "N1", "2024-03-01", "2024-03-10"),  # surgery: a report of its own
            chemotherapy,
            treatment("ous", NORA, "N1", "2024-01-06", "2024-04-01", corrects=chemotherapy),
        ]
    )
    figures = (await stats.current("ous")).total
    assert (figures.with_treatment_report.numerator, figures.with_treatment_report.denominator) == (1, 1)
    assert (figures.days_to_first_treatment_report.count, figures.days_to_first_treatment_report.median_days) == (
        1,
        18.0,
    )
    assert figures.submissions[FormType.TREATMENT].accepted == 3
    assert await stats.outstanding("ous") == []
