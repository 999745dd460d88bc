"""Snapshots, reminders and tokens for the dashboard's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from shared.auth import Principal, Role, TokenEntry, digest
from shared.events import FormType
from shared.events.stats import (
    Counts,
    Figures,
    ReminderChanged,
    ReminderKind,
    ReminderStatus,
    Share,
    StatsSnapshot,
)

TOKENS = {
    "ous-token": TokenEntry(name="ous-portal", role=Role.HOSPITAL, hospital_id="ous", sha256=digest("ous-token")),
    "unn-token": TokenEntry(name="unn-portal", role=Role.HOSPITAL, hospital_id="unn", sha256=digest("unn-token")),
    "staff-token": TokenEntry(name="coder.anna", role=Role.STAFF, sha256=digest("staff-token")),
}
STAFF = Principal("coder.anna", Role.STAFF, None)
OUS = Principal("ous-portal", Role.HOSPITAL, "ous")


def figures(received: int = 0, accepted: int = 0, rejected: int = 0, **more: object) -> Figures:
    counts = Counts(received=received, accepted=accepted, rejected=rejected)
    return Figures.model_validate({"submissions": {FormType.DIAGNOSIS: counts} if counts != Counts() else {}, **more})


def snapshot(
    scope: str,
    version: int,
    received: int = 0,
    accepted: int = 0,
    rejected: int = 0,
    at: datetime | None = None,
    year: str = "2025",
) -> StatsSnapshot:
    total = figures(
        received,
        accepted,
        rejected,
        tumours=accepted,
        case_mix_main_group={"III": accepted} if accepted else {},
        with_treatment_report=Share(numerator=0, denominator=accepted, target=0.8),
    )
    return StatsSnapshot(
        scope=scope,
        version=version,
        total=total,
        by_diagnosis_year={year: total} if received else {},
        occurred_at=at or datetime(2025, 3, 10, 12, tzinfo=UTC),
    )


def reminder(
    hospital: str,
    status: ReminderStatus = ReminderStatus.OPEN,
    reminder_id: uuid.UUID | None = None,
    tumour_ref: str = "T-1",
) -> ReminderChanged:
    return ReminderChanged(
        reminder_id=reminder_id or uuid.uuid4(),
        hospital_id=hospital,
        tumour_ref=tumour_ref,
        kind=ReminderKind.TREATMENT_REPORT_MISSING,
        missing_form=FormType.TREATMENT,
        diagnosis_date=date(2025, 1, 5),
        due_date=date(2025, 2, 4),
        status=status,
    )
