"""What stats remembers per tumour and per submission: compact facts from which every figure is computed.

Facts merge order-independently (earliest report, latest diagnosis, latest version of each report), so a
replay that reads the input topics in another interleaving arrives at the same facts and figures.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from shared.events import FormType
from shared.events.stats import ReminderKind, ReminderStatus

# Tally keys: (received year, metric, key), e.g. (2024, "accepted", "treatment"); form types are StrEnums,
# equal to (and stored as) their plain string values.
TallyKey = tuple[int, str, str]
# A tumour's reminder: (kind, follow-up year), the year None for the treatment report.
ReminderKey = tuple[ReminderKind, int | None]


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(slots=True)
class Diagnosis:
    """The tumour's current accepted diagnosis (a correction replaces it)."""

    submission_id: uuid.UUID
    received_at: datetime
    diagnosis_date: date
    birth_date: date
    sex: str
    topography: str
    morphology: str
    basis: int
    main_group: str | None
    subgroup: str | None
    with_override: bool


@dataclass(slots=True)
class FollowUp:
    """An accepted version of a follow-up report (`report_id`: intake's, shared by its corrections)."""

    submission_id: uuid.UUID
    report_id: uuid.UUID
    received_at: datetime
    last_contact_date: date
    death_date: date | None


@dataclass(slots=True)
class ReminderState:
    """A reminder of a tumour as last announced (its id is derived from the tumour and its key)."""

    status: ReminderStatus
    diagnosis_date: date
    due_date: date
    transitions: int  # how many times it opened or cleared: names the events it published
    changed_on: date


@dataclass(slots=True)
class Tumour:
    """One tumour as one hospital reports it: (pseudonym, hospital, the hospital's tumour reference)."""

    pseudonym: str
    hospital_id: str
    tumour_ref: str
    diagnosis: Diagnosis | None = None
    # Local dates of the first accepted diagnosis and treatment reports (timeliness, completeness): of
    # whichever report came first, a tumour having any number of treatment reports.
    diagnosis_reported_on: date | None = None
    treatment_reported_on: date | None = None
    follow_ups: list[FollowUp] = field(default_factory=list)
    # Submissions about this tumour, counted by received year: they move to the diagnosis year once
    # the tumour has an accepted diagnosis.
    tallies: dict[TallyKey, int] = field(default_factory=dict)
    # Evaluated against "today" (see reminders.evaluate) and stored, so the figures they feed change
    # only when stats re-evaluates the tumour: on an event about the child, or in the daily sweep.
    follow_up_due: bool = False
    follow_up_reported: bool = False
    next_due_on: date | None = None
    # Every reminder the tumour has had, cleared ones too: their transition counts name the next event.
    reminders: dict[ReminderKey, ReminderState] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.hospital_id, self.tumour_ref

    def effective_follow_ups(self) -> list[FollowUp]:
        """The current version of each follow-up report (a tumour has one per check-up): a correction,
        received later, replaces its report's earlier versions, also when one in between was rejected."""
        current: dict[uuid.UUID, FollowUp] = {}
        for version in self.follow_ups:
            seen = current.get(version.report_id)
            if seen is None or (version.received_at, version.submission_id) > (seen.received_at, seen.submission_id):
                current[version.report_id] = version
        return list(current.values())


@dataclass(slots=True)
class Submission:
    """One submitted message: its receipt and its validation outcome may arrive in either order."""

    submission_id: uuid.UUID
    hospital_id: str
    form_type: FormType
    received_year: int
    receipted: bool = False
    # Its `received` tally is on its tumour. The first outcome puts it there (a decided submission was
    # received, whenever its receipt comes), so a receipt after its outcome need not load the child.
    received_counted: bool = False
    outcome: Outcome | None = None
    pseudonym: str | None = None
    tumour_ref: str | None = None
    rejection_codes: tuple[str, ...] = ()


@dataclass(slots=True)
class Reminder:
    reminder_id: uuid.UUID
    pseudonym: str
    hospital_id: str
    tumour_ref: str
    kind: ReminderKind
    follow_up_year: int | None
    diagnosis_date: date
    due_date: date
    status: ReminderStatus
    transitions: int  # how many times it opened or cleared: names the events it published
    changed_on: date
