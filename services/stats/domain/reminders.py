"""Which reports a hospital owes on a given day, and how the stored reminders follow.

A diagnosis owes a treatment report `treatment_report_due_days` after the diagnosis date; each follow-up
year owes a follow-up report on the anniversary. A follow-up report covers every year whose due date
its last contact reaches (less the window, for check-ups booked ahead). After a child's death no later
follow-up is owed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field

from services.stats.domain.model import Reminder, ReminderKey, ReminderState, Tumour
from shared.events import FormType
from shared.events.stats import ReminderKind, ReminderStatus

_REMINDER_NAMESPACE = uuid.UUID("0c6f5a9e-3b7d-4d52-9a0b-5e8e7f1c2d43")


class ReminderPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    treatment_report_due_days: int = Field(30, ge=1)
    follow_up_years: tuple[int, ...] = (1, 3, 5)
    follow_up_window_days: int = Field(90, ge=0)


@dataclass(frozen=True, slots=True)
class Due:
    """A report owed for a tumour, as of the day it was evaluated."""

    kind: ReminderKind
    follow_up_year: int | None
    due_date: date


def reminder_id(hospital_id: str, tumour_ref: str, kind: ReminderKind, follow_up_year: int | None) -> uuid.UUID:
    """Stable per owed report; built from what the hospital knows, never from the pseudonym."""
    return uuid.uuid5(_REMINDER_NAMESPACE, f"{hospital_id}\x00{tumour_ref}\x00{kind.value}\x00{follow_up_year or 0}")


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year + years, day=28)


def death_date(tumours: Iterable[Tumour]) -> date | None:
    """The child's death as any hospital's follow-up reports it (it ends follow-up for every tumour)."""
    dates = [f.death_date for t in tumours for f in t.effective_follow_ups() if f.death_date is not None]
    return min(dates, default=None)


def evaluate(tumours: list[Tumour], today: date, policy: ReminderPolicy) -> dict[tuple[str, str], list[Due]]:
    """Set each tumour's follow-up flags and next evaluation day as of `today`; return what each owes."""
    died = death_date(tumours)
    owed: dict[tuple[str, str], list[Due]] = {}
    for tumour in tumours:
        owed[tumour.key] = dues = []
        diagnosis = tumour.diagnosis
        if diagnosis is None:
            tumour.follow_up_due = tumour.follow_up_reported = False
            tumour.next_due_on = None
            continue
        upcoming: list[date] = []
        if tumour.treatment_reported_on is None:
            treatment_due = diagnosis.diagnosis_date + timedelta(days=policy.treatment_report_due_days)
            if treatment_due <= today:
                dues.append(Due(ReminderKind.TREATMENT_REPORT_MISSING, None, treatment_due))
            else:
                upcoming.append(treatment_due)
        last_contact = max((f.last_contact_date for f in tumour.effective_follow_ups()), default=None)
        reported_years: list[bool] = []
        for year in policy.follow_up_years:
            due = add_years(diagnosis.diagnosis_date, year)
            if died is not None and died < due:
                continue
            if due > today:
                upcoming.append(due)
                continue
            reported = last_contact is not None and last_contact >= due - timedelta(days=policy.follow_up_window_days)
            reported_years.append(reported)
            if not reported:
                dues.append(Due(ReminderKind.FOLLOW_UP_DUE, year, due))
        tumour.follow_up_due = bool(reported_years)
        tumour.follow_up_reported = bool(reported_years) and all(reported_years)
        tumour.next_due_on = min(upcoming, default=None)
    return owed


def reconcile(tumour: Tumour, owed: list[Due], today: date) -> list[Reminder]:
    """Bring the tumour's reminders in line with what it owes: open, clear or move them in
    `tumour.reminders`, and return the ones that changed, with their transition counts advanced."""
    changed: list[Reminder] = []
    wanted = {(due.kind, due.follow_up_year): due for due in owed}
    if wanted:
        assert tumour.diagnosis is not None  # only a diagnosed tumour owes reports
        diagnosis_date = tumour.diagnosis.diagnosis_date
    for key, due in wanted.items():
        old = tumour.reminders.get(key)
        announced = old is not None and old.status is ReminderStatus.OPEN
        if announced and old and (old.due_date, old.diagnosis_date) == (due.due_date, diagnosis_date):
            continue  # still owed as announced
        transitions = (old.transitions if old else 0) + 1
        state = ReminderState(ReminderStatus.OPEN, diagnosis_date, due.due_date, transitions, today)
        changed.append(_changed(tumour, key, state))
    for key, old in tumour.reminders.items():
        if old.status is ReminderStatus.OPEN and key not in wanted:
            state = replace(old, status=ReminderStatus.CLEARED, transitions=old.transitions + 1, changed_on=today)
            changed.append(_changed(tumour, key, state))
    return changed


def _changed(tumour: Tumour, key: ReminderKey, state: ReminderState) -> Reminder:
    tumour.reminders[key] = state
    kind, follow_up_year = key
    return Reminder(
        reminder_id=reminder_id(tumour.hospital_id, tumour.tumour_ref, kind, follow_up_year),
        pseudonym=tumour.pseudonym,
        hospital_id=tumour.hospital_id,
        tumour_ref=tumour.tumour_ref,
        kind=kind,
        follow_up_year=follow_up_year,
        diagnosis_date=state.diagnosis_date,
        due_date=state.due_date,
        status=state.status,
        transitions=state.transitions,
        changed_on=state.changed_on,
    )


def state_of(reminder: Reminder) -> tuple[ReminderKey, ReminderState]:
    """A reminder as its tumour keeps it."""
    return (reminder.kind, reminder.follow_up_year), ReminderState(
        reminder.status, reminder.diagnosis_date, reminder.due_date, reminder.transitions, reminder.changed_on
    )


def missing_form(kind: ReminderKind) -> FormType:
    return FormType.TREATMENT if kind is ReminderKind.TREATMENT_REPORT_MISSING else FormType.FOLLOW_UP
