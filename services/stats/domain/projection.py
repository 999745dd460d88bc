"""Applying a batch of input events to the facts it touches, and the counter changes that follow.

Every figure is a sum of contributions: of each tumour (to its hospital, added up to the registry) and
of each child (children are counted once per scope and year, whichever hospitals report them). A batch
notes each touched tumour's footprint (what its contributions depend on) before applying its events and
compares it with the footprint after: the difference is what the counters change by, computed from the
parts that changed only (most events add to one tally of one tumour). Summed over any sequence of batches
this telescopes to the contributions of the final facts, so live consumption, redelivery and a replay all
arrive at the same counters.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import TypeVar

from services.stats.domain.figures import TOTAL, UNCLASSIFIED, M, age_group
from services.stats.domain.model import Diagnosis, FollowUp, Outcome, Reminder, Submission, TallyKey, Tumour
from services.stats.domain.reminders import ReminderPolicy, evaluate, reconcile
from shared.events import (
    DiagnosisForm,
    Finding,
    FollowUpForm,
    FormType,
    ReceiptIssued,
    ReceiptStatus,
    Severity,
    SubmissionRejected,
    SubmissionValidated,
    TreatmentForm,
)
from shared.events.forms import VitalStatus
from shared.events.stats import REGISTRY_SCOPE, ReminderStatus

InputEvent = ReceiptIssued | SubmissionValidated | SubmissionRejected
# Counter keys: (scope, period, metric, key); a scope is a hospital id or "registry".
CounterKey = tuple[str, int, str, str]
_HospitalKey = tuple[str, int, str, str]  # (hospital, period, metric, key), before adding up

_K = TypeVar("_K", bound=tuple[object, ...])
_FORM_TYPES = {form_type.value: form_type for form_type in FormType}
_VERIFIED_BASES = frozenset({5, 6, 7})  # cytology/haematology, histology of a metastasis, of the primary


@dataclass
class BatchState:
    """What a batch touches, loaded before it is applied: submissions by id, and every tumour of each
    child concerned (a child's figures and reminders depend on all its tumours)."""

    submissions: dict[uuid.UUID, Submission]
    children: dict[str, dict[tuple[str, str], Tumour]]
    tz: tzinfo
    touched_submissions: set[uuid.UUID] = field(default_factory=set)
    # Received submissions whose tumour is not known yet count on their hospital and received year.
    unattributed: dict[_HospitalKey, int] = field(default_factory=dict)

    def tumour(self, pseudonym: str, hospital_id: str, tumour_ref: str) -> Tumour:
        tumours = self.children.setdefault(pseudonym, {})
        found = tumours.get((hospital_id, tumour_ref))
        if found is None:
            found = tumours[(hospital_id, tumour_ref)] = Tumour(pseudonym, hospital_id, tumour_ref)
        return found

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()


@dataclass
class Changes:
    tumours: list[Tumour]
    submissions: list[Submission]
    reminders: list[Reminder]  # opened, cleared or moved (the tumours keep them as they are now)
    counters: dict[CounterKey, int]  # non-zero changes


def project(state: BatchState, events: Sequence[InputEvent], today: date, policy: ReminderPolicy) -> Changes:
    """Apply `events` in order to `state` (re-evaluating every loaded child as of `today`)."""
    before = {
        pseudonym: {key: footprint(tumour) for key, tumour in tumours.items()}
        for pseudonym, tumours in state.children.items()
    }
    for event in events:
        if isinstance(event, ReceiptIssued):
            apply_receipt(state, event)
        else:
            apply_outcome(state, event)

    counters = Counter[CounterKey]()
    by_hospital = Counter[_HospitalKey](state.unattributed)
    reminders: list[Reminder] = []
    for pseudonym, tumours in state.children.items():
        owed = evaluate(list(tumours.values()), today, policy)
        for tumour in tumours.values():
            if not tumour.reminders and not owed[tumour.key]:
                continue
            was_open = {key for key, r in tumour.reminders.items() if r.status is ReminderStatus.OPEN}
            for reminder in reconcile(tumour, owed[tumour.key], today):
                reminders.append(reminder)
                opened = reminder.status is ReminderStatus.OPEN
                change = opened - ((reminder.kind, reminder.follow_up_year) in was_open)
                if change:
                    for scope in (reminder.hospital_id, REGISTRY_SCOPE):
                        counters[(scope, TOTAL, M.REMINDERS, reminder.kind.value)] += change
        was = before.get(pseudonym, {})
        now = {tumour_key: footprint(tumour) for tumour_key, tumour in tumours.items()}
        for (hospital, ref), footprint_now in now.items():
            add_changes(by_hospital, hospital, was.get((hospital, ref), NOTHING), footprint_now)
        diagnosed_before = {(hospital, f.year) for (hospital, _), f in was.items() if f.year is not None}
        diagnosed_now = {(hospital, f.year) for (hospital, _), f in now.items() if f.year is not None}
        if diagnosed_now != diagnosed_before:
            counters.update(child_contributions(diagnosed_now))
            counters.subtract(child_contributions(diagnosed_before))

    for (hospital, period, metric, key), change in by_hospital.items():
        if change:
            for scope in (hospital, REGISTRY_SCOPE):
                counters[(scope, period, metric, key)] += change
                counters[(scope, TOTAL, metric, key)] += change
    return Changes(
        tumours=[t for tumours in state.children.values() for t in tumours.values()],
        submissions=[state.submissions[sid] for sid in state.touched_submissions],
        reminders=reminders,
        counters={key: change for key, change in counters.items() if change},
    )


def apply_receipt(state: BatchState, receipt: ReceiptIssued) -> None:
    """A receipt with status `received` counts the submission as received (once, however often sent)."""
    if receipt.status is not ReceiptStatus.RECEIVED:
        return  # accepted/rejected are counted from validation's outcomes, which carry the findings
    received_on = state.local_date(receipt.received_at)
    submission = _submission(state, receipt.submission_id, receipt.hospital_id, receipt.form_type, received_on)
    if submission.receipted:
        return
    submission.receipted = True
    if submission.received_counted:
        return  # its outcome came first and counted it
    year, month = submission.received_year, _month(received_on)
    if submission.pseudonym is None or submission.tumour_ref is None:
        _add(state.unattributed, (submission.hospital_id, year, M.RECEIVED, submission.form_type), 1)
        _add(state.unattributed, (submission.hospital_id, year, M.MONTH_RECEIVED, month), 1)
    else:
        tallies = state.tumour(submission.pseudonym, submission.hospital_id, submission.tumour_ref).tallies
        _add(tallies, (year, M.RECEIVED, submission.form_type), 1)
        _add(tallies, (year, M.MONTH_RECEIVED, month), 1)


def apply_outcome(state: BatchState, event: SubmissionValidated | SubmissionRejected) -> None:
    form = event.form
    form_type = _FORM_TYPES[form.form_type]
    received_on = state.local_date(event.received_at)
    submission = _submission(state, event.submission_id, event.hospital_id, form_type, received_on)
    tumour = state.tumour(event.child.pseudonym, event.hospital_id, form.tumour_ref)
    year, month = submission.received_year, _month(received_on)
    if submission.outcome is not None:
        # Decided again (validation replayed with new coding tables): the new outcome replaces the old.
        _tally_outcome(tumour, submission, month, -1)
    elif not submission.received_counted:
        if submission.receipted:  # counted on its hospital until now: moves to its tumour
            _add(state.unattributed, (submission.hospital_id, year, M.RECEIVED, form_type), -1)
            _add(state.unattributed, (submission.hospital_id, year, M.MONTH_RECEIVED, month), -1)
        _add(tumour.tallies, (year, M.RECEIVED, form_type), 1)
        _add(tumour.tallies, (year, M.MONTH_RECEIVED, month), 1)
        submission.received_counted = True
    accepted = isinstance(event, SubmissionValidated)
    submission.outcome = Outcome.ACCEPTED if accepted else Outcome.REJECTED
    submission.pseudonym, submission.tumour_ref = event.child.pseudonym, form.tumour_ref
    submission.rejection_codes = () if accepted else rejecting_codes(event.findings)
    _tally_outcome(tumour, submission, month, 1)
    if not accepted:
        return
    if isinstance(form, DiagnosisForm):
        current = tumour.diagnosis
        if current is None or (event.received_at, event.submission_id) >= (current.received_at, current.submission_id):
            tumour.diagnosis = Diagnosis(
                submission_id=event.submission_id,
                received_at=event.received_at,
                diagnosis_date=form.diagnosis_date,
                birth_date=event.child.birth_date,
                sex=event.child.sex.value,
                topography=form.topography,
                morphology=form.morphology,
                basis=form.basis,
                main_group=event.iccc.main_group if event.iccc else None,
                subgroup=event.iccc.subgroup if event.iccc else None,
                with_override=any(f.overridden for f in event.findings),
            )
        tumour.diagnosis_reported_on = _earliest(tumour.diagnosis_reported_on, received_on)
    elif isinstance(form, TreatmentForm):
        # Timeliness counts the first accepted treatment report of the tumour, whichever of its reports
        # that is; a later report, or a correction, replaces content, not that date.
        tumour.treatment_reported_on = _earliest(tumour.treatment_reported_on, received_on)
    elif isinstance(form, FollowUpForm):
        died = form.death_date or (form.last_contact_date if form.vital_status is VitalStatus.DEAD else None)
        tumour.follow_ups = [f for f in tumour.follow_ups if f.submission_id != event.submission_id]
        tumour.follow_ups.append(
            FollowUp(event.submission_id, event.report_id, event.received_at, form.last_contact_date, died)
        )


def rejecting_codes(findings: Iterable[Finding]) -> tuple[str, ...]:
    """The codes that rejected a form: its errors, and warnings no coder confirmed."""
    return tuple(
        sorted(
            {
                f.code
                for f in findings
                if f.severity is Severity.ERROR or (f.severity is Severity.WARNING and not f.overridden)
            }
        )
    )


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a tumour's contributions depend on: its diagnosis year (None: not diagnosed), the facts that
    name its cells, and its tallies (submissions by received year, counted on the diagnosis year once
    there is one)."""

    year: int | None
    facts: tuple[Diagnosis | None, date | None, date | None, bool, bool]
    tallies: dict[TallyKey, int]


NOTHING = Footprint(None, (None, None, None, False, False), {})  # a tumour not known before


def footprint(tumour: Tumour) -> Footprint:
    diagnosis = tumour.diagnosis
    return Footprint(
        diagnosis.diagnosis_date.year if diagnosis is not None else None,
        (
            diagnosis,
            tumour.diagnosis_reported_on,
            tumour.treatment_reported_on,
            tumour.follow_up_due,
            tumour.follow_up_reported,
        ),
        dict(tumour.tallies),
    )


def add_changes(cells: Counter[_HospitalKey], hospital: str, before: Footprint, after: Footprint) -> None:
    """Add to `cells` how a tumour's contributions, as (hospital, year, metric, key), change from `before`
    to `after` (from NOTHING: all its contributions)."""
    if before.facts != after.facts:
        cells.subtract(_fact_cells(hospital, *before.facts))
        cells.update(_fact_cells(hospital, *after.facts))
    if before.year == after.year:
        if before.tallies != after.tallies:
            for tally in before.tallies.keys() | after.tallies.keys():
                change = after.tallies.get(tally, 0) - before.tallies.get(tally, 0)
                if change:
                    received_year, metric, key = tally
                    cells[(hospital, after.year or received_year, metric, key)] += change
        return
    # Diagnosed, or its diagnosis year corrected: every submission moves to the new year.
    for (received_year, metric, key), count in before.tallies.items():
        cells[(hospital, before.year or received_year, metric, key)] -= count
    for (received_year, metric, key), count in after.tallies.items():
        cells[(hospital, after.year or received_year, metric, key)] += count


def _fact_cells(
    hospital: str,
    diagnosis: Diagnosis | None,
    diagnosis_reported_on: date | None,
    treatment_reported_on: date | None,
    follow_up_due: bool,
    follow_up_reported: bool,
) -> list[_HospitalKey]:
    """The cells a diagnosed tumour adds one to besides its submissions: case mix, timeliness,
    completeness and data quality, all on the diagnosis year."""
    if diagnosis is None:
        return []
    year = diagnosis.diagnosis_date.year
    cells: list[_HospitalKey] = [
        (hospital, year, M.TUMOURS, ""),
        (hospital, year, M.MAIN_GROUP, diagnosis.main_group or UNCLASSIFIED),
        (hospital, year, M.SUBGROUP, diagnosis.subgroup or UNCLASSIFIED),
        (hospital, year, M.SEX, diagnosis.sex),
        (hospital, year, M.AGE, age_group(diagnosis.birth_date, diagnosis.diagnosis_date)),
    ]
    if diagnosis_reported_on is not None:
        days = (diagnosis_reported_on - diagnosis.diagnosis_date).days
        cells.append((hospital, year, M.DIAGNOSIS_DAYS, str(days)))
    if treatment_reported_on is not None:
        days = (treatment_reported_on - diagnosis.diagnosis_date).days
        cells += [(hospital, year, M.TREATED, ""), (hospital, year, M.TREATMENT_DAYS, str(days))]
    if follow_up_due:
        cells.append((hospital, year, M.FOLLOW_UP_DUE, ""))
        if follow_up_reported:
            cells.append((hospital, year, M.FOLLOW_UP_REPORTED, ""))
    if diagnosis.basis in _VERIFIED_BASES:
        cells.append((hospital, year, M.VERIFIED, ""))
    if "8000" <= diagnosis.morphology <= "8005":  # neoplasm/tumour/cells NOS: morphology unspecified
        cells.append((hospital, year, M.UNSPECIFIED_MORPHOLOGY, ""))
    if diagnosis.topography == "C80.9":
        cells.append((hospital, year, M.UNKNOWN_SITE, ""))
    if diagnosis.with_override:
        cells.append((hospital, year, M.OVERRIDE, ""))
    return cells


def child_contributions(diagnosed: Iterable[tuple[str, int]]) -> set[CounterKey]:
    """A child counts once in every scope and diagnosis year where it has a diagnosed tumour (`diagnosed`:
    the (hospital, diagnosis year) of each of its diagnosed tumours)."""
    cells: set[CounterKey] = set()
    for hospital, year in diagnosed:
        for scope in (hospital, REGISTRY_SCOPE):
            cells.add((scope, year, M.CHILDREN, ""))
            cells.add((scope, TOTAL, M.CHILDREN, ""))
    return cells


def _submission(
    state: BatchState, submission_id: uuid.UUID, hospital_id: str, form_type: FormType, received_on: date
) -> Submission:
    state.touched_submissions.add(submission_id)
    found = state.submissions.get(submission_id)
    if found is None:
        found = state.submissions[submission_id] = Submission(submission_id, hospital_id, form_type, received_on.year)
    return found


def _tally_outcome(tumour: Tumour, submission: Submission, month: str, sign: int) -> None:
    year, form_type = submission.received_year, submission.form_type
    accepted = submission.outcome is Outcome.ACCEPTED
    _add(tumour.tallies, (year, M.ACCEPTED if accepted else M.REJECTED, form_type), sign)
    _add(tumour.tallies, (year, M.MONTH_ACCEPTED if accepted else M.MONTH_REJECTED, month), sign)
    for code in submission.rejection_codes:
        _add(tumour.tallies, (year, M.REJECTION, code), sign)


def _month(received_on: date) -> str:
    """The local month a submission was received, "YYYY-MM". Its receipt and its validation outcome carry
    the same `received_at` (intake's), so either names the month, as `received_year` names the year."""
    return f"{received_on.year:04d}-{received_on.month:02d}"  # strftime's work, at a third of its cost


def _earliest(current: date | None, candidate: date) -> date:
    return candidate if current is None or candidate < current else current


def _add(target: dict[_K, int], key: _K, change: int) -> None:
    value = target.get(key, 0) + change
    if value:
        target[key] = value
    else:
        target.pop(key, None)
