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
    Lineage,
    Precedent,
    Refused,
    canonical,
    check_submission,
    parse_submission,
    supersession,
)
from services.intake.tests.factories import CHILD, diagnosis, encode, follow_up, submission, treatment
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


def precedent(
    form_type: FormType, made_at: datetime, child: str = "a" * 32, *, corrects: Precedent | None = None
) -> Precedent:
    submission_id = uuid.uuid4()
    report_id = corrects.report_id if corrects else submission_id
    return Precedent(submission_id, child, form_type, made_at, report_id, corrects.submission_id if corrects else None)


def codes(issues: list[Issue]) -> list[tuple[str, str]]:
    return [(i.field, i.code) for i in issues]


def test_a_first_form_is_a_report_of_its_own() -> None:
    message = parsed()
    assert supersession(message, "a" * 32, []) == (Lineage(message.submission_id), [])


def test_a_later_diagnosis_corrects_the_current_one() -> None:
    first = precedent(FormType.DIAGNOSIS, T0)
    earlier = [
        first,
        precedent(FormType.TREATMENT, T0 + timedelta(days=1)),
        precedent(FormType.DIAGNOSIS, T0 + timedelta(days=1), corrects=first),
    ]
    lineage, issues = supersession(parsed(made_at=T0 + timedelta(days=2)), "a" * 32, earlier)
    assert (lineage, issues) == (Lineage(first.submission_id, earlier[2].submission_id), [])
    # Naming it changes nothing; naming a version already corrected is refused.
    named = parsed(made_at=T0 + timedelta(days=2), corrects=str(earlier[2].submission_id))
    assert supersession(named, "a" * 32, earlier) == (lineage, [])
    stale = parsed(made_at=T0 + timedelta(days=2), corrects=str(first.submission_id))
    assert codes(supersession(stale, "a" * 32, earlier)[1]) == [("corrects", "CORRECTS_CORRECTED_SUBMISSION")]


def test_treatment_and_follow_up_forms_are_reports_of_their_own_unless_they_name_what_they_correct() -> None:
    chemotherapy = precedent(FormType.TREATMENT, T0)
    earlier = [precedent(FormType.DIAGNOSIS, T0), chemotherapy, precedent(FormType.FOLLOW_UP, T0)]
    for form in (treatment(modality="surgery"), follow_up()):
        message = parsed(form=form, made_at=T0 + timedelta(days=1))
        assert supersession(message, "a" * 32, earlier) == (Lineage(message.submission_id), [])
    correction = parsed(form=treatment(), made_at=T0 + timedelta(days=1), corrects=str(chemotherapy.submission_id))
    assert supersession(correction, "a" * 32, earlier) == (
        Lineage(chemotherapy.submission_id, chemotherapy.submission_id),
        [],
    )


def test_a_correction_of_a_correction_stays_on_its_report() -> None:
    original = precedent(FormType.FOLLOW_UP, T0)
    corrected = precedent(FormType.FOLLOW_UP, T0 + timedelta(days=1), corrects=original)
    message = parsed(form=follow_up(), made_at=T0 + timedelta(days=2), corrects=str(corrected.submission_id))
    lineage, issues = supersession(message, "a" * 32, [original, corrected])
    assert (lineage, issues) == (Lineage(original.submission_id, corrected.submission_id), [])


def test_what_a_correction_names_must_be_an_uncorrected_earlier_form_of_its_type_and_tumour() -> None:
    chemotherapy = precedent(FormType.TREATMENT, T0)
    fixed = precedent(FormType.TREATMENT, T0 + timedelta(days=1), corrects=chemotherapy)
    diagnosis_ = precedent(FormType.DIAGNOSIS, T0)
    earlier = [diagnosis_, chemotherapy, fixed]
    later = T0 + timedelta(days=2)

    def refusal(corrects: uuid.UUID, form: dict[str, object] | None = None) -> tuple[Lineage, list[Issue]]:
        return supersession(parsed(form=form or treatment(), made_at=later, corrects=str(corrects)), "a" * 32, earlier)

    unknown = refusal(uuid.uuid4())
    assert codes(unknown[1]) == [("corrects", "CORRECTS_UNKNOWN_SUBMISSION")]
    assert unknown[0].supersedes is None
    assert codes(refusal(diagnosis_.submission_id)[1]) == [("corrects", "CORRECTS_OTHER_FORM_TYPE")]
    assert codes(refusal(chemotherapy.submission_id, follow_up())[1]) == [("corrects", "CORRECTS_OTHER_FORM_TYPE")]
    assert codes(refusal(chemotherapy.submission_id, diagnosis())[1]) == [("corrects", "CORRECTS_OTHER_FORM_TYPE")]
    [already] = refusal(chemotherapy.submission_id)[1]
    assert already.code == "CORRECTS_CORRECTED_SUBMISSION"
    assert str(fixed.submission_id) in already.reason  # names the report's current version
    assert refusal(fixed.submission_id) == (Lineage(chemotherapy.submission_id, fixed.submission_id), [])
    # A diagnosis naming something while the tumour has no diagnosis yet.
    assert codes(supersession(parsed(corrects=str(uuid.uuid4())), "a" * 32, [])[1]) == [
        ("corrects", "CORRECTS_UNKNOWN_SUBMISSION")
    ]


def test_a_correction_older_than_what_it_corrects_is_refused() -> None:
    earlier = [precedent(FormType.DIAGNOSIS, T0 + timedelta(days=3))]
    _, issues = supersession(parsed(made_at=T0), "a" * 32, earlier)
    assert [i.code for i in issues] == ["CORRECTION_OLDER_THAN_ORIGINAL"]
    treated = [precedent(FormType.TREATMENT, T0 + timedelta(days=3))]
    correction = parsed(form=treatment(), made_at=T0, corrects=str(treated[0].submission_id))
    assert [i.code for i in supersession(correction, "a" * 32, treated)[1]] == ["CORRECTION_OLDER_THAN_ORIGINAL"]
    # An older treatment report that corrects nothing is a report of its own, whenever it was made.
    assert supersession(parsed(form=treatment(), made_at=T0), "a" * 32, treated)[1] == []


def test_a_tumour_reference_of_another_child_is_refused_whatever_the_form_type() -> None:
    earlier = [precedent(FormType.TREATMENT, T0, child="b" * 32)]
    lineage, issues = supersession(parsed(made_at=T0), "a" * 32, earlier)
    assert lineage.supersedes is None
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


def test_a_draft_carries_what_it_corrects_into_the_submission() -> None:
    corrected = uuid.uuid4()
    content = DraftContent.from_json(
        json.dumps({"patient": {"national_id": CHILD}, "form": treatment(), "corrects": str(corrected)})
    )
    message = assemble(content, submission_id=uuid.uuid4(), hospital_id="ous", updated_at=T0)
    assert message.corrects == corrected
    assert (
        assemble(
            DraftContent(patient={"national_id": CHILD}, form=treatment()),
            submission_id=uuid.uuid4(),
            hospital_id="ous",
            updated_at=T0,
        ).corrects
        is None
    )


def test_corrects_absent_or_null_is_the_same_message() -> None:
    body = submission()
    assert canonical(parse_submission(encode(body))) == canonical(parse_submission(encode(body | {"corrects": None})))
    named = body | {"corrects": str(uuid.uuid4())}
    assert canonical(parse_submission(encode(body))) != canonical(parse_submission(encode(named)))

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
