"""Export's view of the reports it consumed: which record a report is, and which version is current.

A record is what the Nordic side holds as one row: one report about one tumour. A tumour has one
diagnosis report (intake makes a later diagnosis form for the same tumour correct the current one), so
its diagnosis record is keyed by the tumour. It has any number of treatment reports (chemotherapy, then
surgery, ...) and follow-up reports (at 1, 3, 5 years, ...), each a record of its own, keyed by the
report: intake's `report_id`, the first submission of the report's chain of corrections, which every
correction carries on. Either key keeps a correction on its record even when the version it corrects was
rejected and never reached export.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events import DiagnosisForm, SubmissionValidated


@dataclass(frozen=True, slots=True)
class Source:
    """The current version of one record's report."""

    record_key: str
    event: SubmissionValidated


def tumour_of(event: SubmissionValidated) -> str:
    # A tumour reference is the hospital's own and unique within that hospital, for this child.
    return f"{event.child.pseudonym}/{event.hospital_id}/{event.form.tumour_ref}"


def record_key(event: SubmissionValidated) -> str:
    """At most 197 characters (pseudonym 52, hospital 32, tumour reference 64, form type, report id)."""
    if isinstance(event.form, DiagnosisForm):
        return f"{tumour_of(event)}/diagnosis"
    return f"{tumour_of(event)}/{event.form.form_type}/{event.report_id}"


def replaces(current_received_at: datetime | None, incoming: SubmissionValidated) -> bool:
    """Whether `incoming` becomes the record's current version (received at `current_received_at`, None if
    there is none): the later report wins, so a replayed old version (validation recoding its history) does
    not undo a correction."""
    return current_received_at is None or incoming.received_at >= current_received_at
