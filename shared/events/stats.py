"""`stats.snapshots` (compacted) and `stats.reminders`: what dashboards and hospitals read from stats.

A dashboard reads `stats.snapshots` from the beginning and keeps the latest snapshot per key (a hospital
id, or "registry"): that is the current state. Snapshots are published when a scope's figures changed,
at most a few times a second per scope; `version` only ever increases per scope (also across a rebuild),
so a consumer may drop a snapshot older than the one it holds.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.events.base import Event, HospitalId, StrictModel, TumourRef
from shared.events.forms import FormType

REGISTRY_SCOPE = "registry"  # the snapshot key of the registry-wide figures
Scope = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]  # a hospital id or "registry"


class Counts(StrictModel):
    received: int = 0
    accepted: int = 0
    rejected: int = 0


class Share(StrictModel):
    """A proportion with its parts, so a dashboard can show "41 of 50" and not only "82 %"."""

    numerator: int = 0
    denominator: int = 0
    ratio: float | None = None
    target: float | None = None  # the registry's quality target, where it has one
    # Which side of the target is good: False, at least `target` (a minimum); True, at most (a maximum,
    # for shares where lower is better, such as unspecified morphology).
    target_is_maximum: bool = False


class Timeliness(StrictModel):
    """Days between two moments of a tumour's reporting."""

    count: int = 0
    median_days: float | None = None
    p90_days: float | None = None
    # How many tumours took how long, by day range: "0-7", "8-14", "15-30", "31-60", "61-90", "91-180",
    # ">180", in that order, every range listed (zeros too) once `count` is non-zero, empty while it is
    # zero; "<0" comes first only when a report predates its diagnosis date.
    buckets: dict[str, int] = Field(default_factory=dict)


class Figures(StrictModel):
    """One scope's figures, all time or for one diagnosis year.

    Tumours count once per hospital that reports them; children once per scope (a child with tumours
    at two hospitals is one child registry-wide). Submissions count on the diagnosis year of the tumour
    they concern once it has an accepted diagnosis, until then on the year they were received.
    Rejections by code count each code that rejected a form once (errors, and warnings no coder
    confirmed). Timeliness is in days from the diagnosis date to the (local) date the first accepted
    diagnosis report and the first accepted treatment report arrived; medians and 90th percentiles are
    linearly interpolated. Follow-up completeness counts tumours with a follow-up due, reported when
    every due follow-up year has a report. Reports by month count every submission (all form types) by
    the registry's local month ("YYYY-MM", Europe/Oslo) it was received, in the same period as
    `submissions` (so a year's figures may hold months of the next year: late reports about its cases).
    """

    submissions: dict[FormType, Counts] = Field(default_factory=dict)
    reports_by_month: dict[str, Counts] = Field(default_factory=dict)  # "2024-03": ..., in month order
    rejections_by_code: dict[str, int] = Field(default_factory=dict)
    children: int = 0
    tumours: int = 0
    case_mix_main_group: dict[str, int] = Field(default_factory=dict)
    case_mix_subgroup: dict[str, int] = Field(default_factory=dict)
    by_sex: dict[str, int] = Field(default_factory=dict)
    by_age_group: dict[str, int] = Field(default_factory=dict)  # "0", "1-4", "5-9", "10-14", "15-17"
    days_to_diagnosis_report: Timeliness = Timeliness()
    days_to_first_treatment_report: Timeliness = Timeliness()
    with_treatment_report: Share = Share()
    with_due_follow_up_report: Share = Share()
    morphologically_verified: Share = Share()
    unspecified_morphology: Share = Share()
    unknown_primary_site: Share = Share()
    accepted_with_override: Share = Share()


class StatsSnapshot(Event):
    event_type: Literal["stats.snapshot"] = "stats.snapshot"
    schema_version: Literal[1] = 1
    producer: Literal["stats"] = "stats"

    scope: Scope
    version: int = Field(ge=0, description="Increases with every change of this scope's projection")
    total: Figures
    by_diagnosis_year: dict[str, Figures] = Field(default_factory=dict)  # "2024": ...
    reminders_open: int = 0  # reports the scope's hospitals owe now


class ReminderKind(StrEnum):
    TREATMENT_REPORT_MISSING = "treatment_report_missing"
    FOLLOW_UP_DUE = "follow_up_due"


class ReminderStatus(StrEnum):
    OPEN = "open"
    CLEARED = "cleared"


class ReminderChanged(Event):
    """A report the hospital owes the registry, opened when due and cleared when the report arrives.

    Addressed by the hospital's own tumour reference: the hospital knows its patient, and the
    registry pseudonym has no business on a topic hospitals read.
    """

    event_type: Literal["reminder.changed"] = "reminder.changed"
    schema_version: Literal[1] = 1
    producer: Literal["stats"] = "stats"

    reminder_id: uuid.UUID
    hospital_id: HospitalId
    tumour_ref: TumourRef
    kind: ReminderKind
    missing_form: FormType
    diagnosis_date: date
    due_date: date
    follow_up_year: int | None = None
    status: ReminderStatus
