"""Intake's rules as plain functions: corrections, the receipt state machine, drafts, staff ids."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.intake.domain.drafts import DraftContent, assemble, draft_labels
from services.intake.domain.identity import IdentityKind, NationalIdentity
from services.intake.domain.receipts import ReceiptState, refused_receipt, should_apply
from services.intake.domain.reservations import staff_id
from services.intake.domain.submissions import (
    Issue,
    Precedent,
    Refused,
    canonical,
    check_submission,
    parse_submission,
    supersession,
)
from services.intake.tests.factories import CHILD, diagnosis, encode, submission, treatment
from shared.events import ReceiptStatus
from shared.events.forms import FormType, Sex
from shared.events.submissions import HospitalSubmission

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
IDENTITY = NationalIdentity(CHILD, date(2015, 6, 1), Sex.FEMALE, IdentityKind.FODSELSNUMMER)
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def parsed(**kwargs: object) -> HospitalSubmission:
    return parse_submission(encode(submission(**kwargs)))  # type: ignore[arg-type]


def check(message: HospitalSubmission) -> list[Issue]:
    return check_submission(message, IDENTITY, now=NOW, clock_skew=timedelta(minutes=5), hospitals={"ous"})


def test_a_consistent_submission_passes() -> None:
    assert check(parsed()) == []
    assert check(parsed(form=treatment())) == []


def test_declared_sex_and_birth_date_must_match_the_identity_number() -> None:
    body = submission(form=diagnosis(sex="male"))
    body["patient"]["birth_date"] = "2015-06-02"
    codes = {issue.code for issue in check(parse_submission(encode(body)))}
    assert codes == {"SEX_CONTRADICTS_IDENTITY", "BIRTH_DATE_CONTRADICTS_IDENTITY"}
    body["patient"]["birth_date"] = "2015-06-01"
    assert check(parse_submission(encode(body | {"form": diagnosis()}))) == []


def test_made_at_may_run_ahead_by_the_clock_skew_only() -> None:
    assert check(parsed(made_at=NOW + timedelta(minutes=4))) == []
    assert [i.field for i in check(parsed(made_at=NOW + timedelta(minutes=6)))] == ["made_at"]


def test_unknown_hospitals_are_refused() -> None:
    assert [i.code for i in check(parsed(hospital_id="elsewhere"))] == ["UNKNOWN_HOSPITAL"]


def precedent(form_type: FormType, made_at: datetime, child: str = "a" * 32) -> Precedent:
    return Precedent(uuid.uuid4(), child, form_type, made_at)


def test_a_first_form_supersedes_nothing() -> None:
    assert supersession(parsed(), "a" * 32, []) == (None, [])


def test_the_latest_form_of_the_same_type_is_superseded() -> None:
    earlier = [
        precedent(FormType.DIAGNOSIS, T0),
        precedent(FormType.TREATMENT, T0 + timedelta(days=1)),
        precedent(FormType.DIAGNOSIS, T0 + timedelta(days=1)),
    ]
    supersedes, issues = supersession(parsed(made_at=T0 + timedelta(days=2)), "a" * 32, earlier)
    assert (supersedes, issues) == (earlier[2].submission_id, [])


def test_a_correction_older_than_what_it_corrects_is_refused() -> None:
    earlier = [precedent(FormType.DIAGNOSIS, T0 + timedelta(days=3))]
    _, issues = supersession(parsed(made_at=T0), "a" * 32, earlier)
    assert [i.code for i in issues] == ["CORRECTION_OLDER_THAN_ORIGINAL"]


def test_a_tumour_reference_of_another_child_is_refused_whatever_the_form_type() -> None:
    earlier = [precedent(FormType.TREATMENT, T0, child="b" * 32)]
    supersedes, issues = supersession(parsed(made_at=T0), "a" * 32, earlier)
    assert supersedes is None
    assert [i.field for i in issues] == ["form.tumour_ref"]


def test_the_canonical_form_ignores_notation_but_not_content() -> None:
    body = submission(made_at=datetime(2024, 3, 2, 12, 0, tzinfo=UTC))
    same = body | {"made_at": datetime(2024, 3, 2, 13, 0, tzinfo=timezone(timedelta(hours=1))).isoformat()}
    spaced = json.dumps(body, indent=4).encode()
    assert canonical(parse_submission(encode(body))) == canonical(parse_submission(encode(same)))
    assert canonical(parse_submission(encode(body))) == canonical(parse_submission(spaced))
    assert canonical(parse_submission(encode(body))) != canonical(
        parse_submission(encode(body | {"form": diagnosis(grade=1)}))
    )


def test_field_paths_drop_the_form_type_tag() -> None:
    with pytest.raises(Refused) as caught:
        parse_submission(encode(submission(form=treatment(modality="magic"))))
    assert [i.field for i in caught.value.issues] == ["form.modality"]


def test_receipt_states() -> None:
    received = ReceiptState(ReceiptStatus.RECEIVED, None)
    accepted = ReceiptState(ReceiptStatus.ACCEPTED, T0)
    assert should_apply(received, ReceiptStatus.ACCEPTED, T0)
    assert should_apply(received, ReceiptStatus.REJECTED, T0)
    assert should_apply(accepted, ReceiptStatus.REJECTED, T0 + timedelta(seconds=1))  # a newer decision
    assert not should_apply(accepted, ReceiptStatus.REJECTED, T0)  # the same moment: a repeat
    assert not should_apply(accepted, ReceiptStatus.REJECTED, T0 - timedelta(seconds=1))  # stale
    with pytest.raises(ValueError, match="decision"):
        should_apply(accepted, ReceiptStatus.RECEIVED, T0)


def test_a_refusal_receipt_is_the_same_event_for_the_same_message() -> None:
    issues = [Issue("form.grade", "too small")]
    submission_id = uuid.uuid4()
    first = refused_receipt(submission_id, "ous", FormType.DIAGNOSIS, "d1", T0, issues)
    again = refused_receipt(submission_id, "ous", FormType.DIAGNOSIS, "d1", T0 + timedelta(seconds=5), issues)
    other = refused_receipt(submission_id, "ous", FormType.DIAGNOSIS, "d2", T0, issues)
    assert first.event_id == again.event_id != other.event_id
    assert first.status is ReceiptStatus.REJECTED and first.findings[0].fields == ("form.grade",)


def test_a_draft_becomes_a_submission_made_when_it_was_last_updated() -> None:
    content = DraftContent(patient={"national_id": CHILD}, form=diagnosis())
    message = assemble(content, submission_id=uuid.uuid4(), hospital_id="ous", updated_at=T0)
    assert message.made_at == T0 and message.form.form_type == "diagnosis"
    assert draft_labels(content) == (FormType.DIAGNOSIS, "T-1")
    assert draft_labels(DraftContent(form={"form_type": "autopsy", "tumour_ref": 7})) == (None, None)

    with pytest.raises(Refused) as caught:
        assemble(
            DraftContent(form={"form_type": "follow_up"}), submission_id=uuid.uuid4(), hospital_id="ous", updated_at=T0
        )
    assert {i.field for i in caught.value.issues} == {
        "patient.national_id",
        "form.tumour_ref",
        "form.last_contact_date",
        "form.vital_status",
    }


@pytest.mark.parametrize(
    ("token_name", "expected"),
    [("coder.anna", "coder.anna"), ("Coder Anna", "coder-anna"), ("7up", "staff-7up"), ("Å", "staff-")],
)
def test_staff_ids_from_token_names(token_name: str, expected: str) -> None:
    assert staff_id(token_name) == expected
