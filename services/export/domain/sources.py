"""Export's view of the reports it consumed: which record a report is, and which version is current.

A record is what the Nordic side holds as one row: one form type (diagnosis, treatment, follow-up) of
one tumour. Intake makes every form supersede the latest earlier form of the same type for the same
tumour, so each (tumour, form type) is one chain of versions, and keying the record by it keeps a
correction on its record even when the version it corrects was rejected and never reached export.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import SubmissionValidated


@dataclass(frozen=True, slots=True)
class Source:
    """The current version of one record's report."""

    record_key: str
    event: SubmissionValidated


def tumour_of(event: SubmissionValidated) -> str:
    # A tumour reference is the hospital's own and unique within that hospital, for this child.
    return f"{event.child.pseudonym}/{event.hospital_id}/{event.form.tumour_ref}"


def record_key(event: SubmissionValidated) -> str:
    return f"{tumour_of(event)}/{event.form.form_type}"


def replaces(current: SubmissionValidated | None, incoming: SubmissionValidated) -> bool:
    """Whether `incoming` becomes the record's current version: the later report wins, so a replayed old
    version (validation recoding its history) does not undo a correction."""
    return current is None or incoming.received_at >= current.received_at
