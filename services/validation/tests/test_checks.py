"""Every edit check with cases that must trigger it and cases that must not."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from services.validation.domain import Assessment, KnownTumour, assess, reference
from services.validation.tests.builders import case, diagnosis, follow_up, known, treatment
from shared.events import Severity
from shared.events.forms import DiagnosisForm, FollowUpForm, Sex, TreatmentForm

REFERENCE = reference()


def run(
    form: DiagnosisForm | TreatmentForm | FollowUpForm,
    tumours: Sequence[KnownTumour] = (),
    **case_changes: Any,
) -> Assessment:
    return assess(case(form, **case_changes), tumours, REFERENCE)


def codes(assessment: Assessment) -> list[str]:
    return [finding.code for finding in assessment.findings]


def finding(assessment: Assessment, code: str) -> Any:
    [found] = [f for f in assessment.findings if f.code == code]
    return found


def test_the_baseline_form_passes_every_check() -> None:
    outcome = run(diagnosis())
    assert outcome.findings == ()
    assert outcome.accepted
    assert outcome.iccc is not None and outcome.iccc.division == "IIIc.1"
    assert outcome.tumour is not None and outcome.tumour.site_group == "C71"


# ------------------------------------------------------------------------------------ code validity


@pytest.mark.parametrize("topography", ["C14.1", "C99.9", "C72.6"])
def test_invalid_topography(topography: str) -> None:
    outcome = run(diagnosis(topography=topography))
    assert codes(outcome) == ["INVALID_TOPOGRAPHY"]  # and no site checks on a code that does not exist
    assert finding(outcome, "INVALID_TOPOGRAPHY").severity is Severity.ERROR
    assert not outcome.accepted and outcome.iccc is None


def test_invalid_morphology() -> None:
    outcome = run(diagnosis(morphology="8888"))
    assert codes(outcome) == ["INVALID_MORPHOLOGY"]
    assert finding(outcome, "INVALID_MORPHOLOGY").fields == ("morphology",)
    assert not outcome.accepted


def test_invalid_behaviour_for_the_histology() -> None:
    hodgkin = dict(topography="C77.0", morphology="9650", diagnosis_date=date(2024, 2, 1))
    assert "INVALID_BEHAVIOUR" in codes(run(diagnosis(**hodgkin, behaviour=0)))
    assert "INVALID_BEHAVIOUR" not in codes(run(diagnosis(**hodgkin, behaviour=3)))


@pytest.mark.parametrize(("basis", "invalid"), [(3, True), (8, True), (0, False), (5, False), (9, False)])
def test_invalid_basis(basis: int, invalid: bool) -> None:
    outcome = run(diagnosis(basis=basis))
    assert ("INVALID_BASIS" in codes(outcome)) is invalid


def test_an_invalid_basis_is_not_also_queried() -> None:
    carcinoma = diagnosis(topography="C73.9", morphology="8010", basis=3)
    assert "INVALID_BASIS" in codes(run(carcinoma))
    assert "BASIS_HISTOLOGY" not in codes(run(carcinoma))


@pytest.mark.parametrize(
    ("changes", "invalid"),
    [
        (dict(topography="C77.0", morphology="9650", grade=1), True),  # differentiation for a lymphoma
        (dict(topography="C77.0", morphology="9650", grade=6), False),  # B-cell lineage
        (dict(grade=9), False),
    ],
)
def test_invalid_grade_by_the_icd_o_rules(changes: dict[str, Any], invalid: bool) -> None:
    outcome = run(diagnosis(**changes))
    assert ("INVALID_GRADE" in codes(outcome)) is invalid


def test_grade_of_a_benign_tumour_outside_the_iarc_table() -> None:
    histology = 8040  # 8040/0 is a code the IARC grade table does not enumerate
    assert (0, histology) not in REFERENCE.checks.invalid_grades
    outcome = run(diagnosis(topography="C44.5", morphology=str(histology), behaviour=0, grade=2))
    assert "INVALID_GRADE" in codes(outcome)
    assert "GRADE_HISTOLOGY" not in codes(outcome)


def test_grade_histology_from_the_iarc_table() -> None:
    outcome = run(diagnosis(grade=5))  # T-cell lineage for a medulloblastoma
    assert codes(outcome) == ["GRADE_HISTOLOGY"]  # the table decides; the general rule stays silent
    assert finding(outcome, "GRADE_HISTOLOGY").severity is Severity.ERROR
    assert run(diagnosis(grade=4)).findings == ()


# ------------------------------------------------------------------------------------------ dates


def test_diagnosis_before_birth() -> None:
    outcome = run(diagnosis(diagnosis_date=date(2014, 12, 31)))
    assert codes(outcome) == ["DATE_ORDER"]
    assert finding(outcome, "DATE_ORDER").fields == ("diagnosis_date", "child.birth_date")


def test_diagnosis_in_the_future_of_the_receipt() -> None:
    assert codes(run(diagnosis(diagnosis_date=date(2024, 3, 2)))) == ["DATE_ORDER"]
    assert run(diagnosis(diagnosis_date=date(2024, 3, 1))).findings == ()  # the day it was received


@pytest.mark.parametrize(("diagnosed", "over"), [(date(2023, 1, 1), True), (date(2022, 12, 31), False)])
def test_age_over_limit(diagnosed: date, over: bool) -> None:
    outcome = run(diagnosis(diagnosis_date=diagnosed), birth_date=date(2005, 1, 1))
    assert ("AGE_OVER_LIMIT" in codes(outcome)) is over
    if over:
        assert finding(outcome, "AGE_OVER_LIMIT").severity is Severity.ERROR


@pytest.mark.parametrize(("diagnosed", "before"), [(date(1984, 12, 31), True), (date(1985, 1, 1), False)])
def test_diagnosis_before_1985(diagnosed: date, before: bool) -> None:
    outcome = run(diagnosis(diagnosis_date=diagnosed), birth_date=date(1984, 1, 1), reference_date=date(1990, 1, 1))
    assert ("DIAGNOSIS_BEFORE_1985" in codes(outcome)) is before


# ---------------------------------------------------------------------------- IARC combination checks


def test_age_histology() -> None:
    hepatoblastoma = dict(topography="C22.0", morphology="8970")
    at_15 = run(diagnosis(**hepatoblastoma, diagnosis_date=date(2024, 2, 1)), birth_date=date(2009, 1, 1))
    assert "AGE_SITE_HISTOLOGY" in codes(at_15)
    at_14 = run(diagnosis(**hepatoblastoma, diagnosis_date=date(2024, 2, 1)), birth_date=date(2009, 6, 1))
    assert "AGE_SITE_HISTOLOGY" not in codes(at_14)


def test_age_site() -> None:
    oesophagus = run(diagnosis(topography="C15.0", morphology="8070", grade=2))
    assert "AGE_SITE_HISTOLOGY" in codes(oesophagus)
    assert finding(oesophagus, "AGE_SITE_HISTOLOGY").severity is Severity.WARNING


def test_age_site_histology() -> None:
    retinoblastoma = dict(topography="C69.2", morphology="9510", diagnosis_date=date(2024, 2, 1))
    at_6 = run(diagnosis(**retinoblastoma), birth_date=date(2018, 1, 1))
    assert "AGE_SITE_HISTOLOGY" in codes(at_6)
    at_5 = run(diagnosis(**retinoblastoma), birth_date=date(2018, 6, 1))
    assert "AGE_SITE_HISTOLOGY" not in codes(at_5)


@pytest.mark.parametrize(("sex", "invalid"), [(Sex.MALE, True), (Sex.FEMALE, False)])
def test_sex_site(sex: Sex, invalid: bool) -> None:
    outcome = run(diagnosis(sex=sex, topography="C53.9", morphology="8070", grade=2), sex=sex)
    assert ("SEX_SITE" in codes(outcome)) is invalid
    if invalid:
        assert finding(outcome, "SEX_SITE").severity is Severity.ERROR


@pytest.mark.parametrize(("sex", "rare"), [(Sex.MALE, True), (Sex.FEMALE, False)])
def test_sex_histology(sex: Sex, rare: bool) -> None:
    outcome = run(diagnosis(sex=sex, topography="C80.9", morphology="8380", grade=2), sex=sex)
    assert ("SEX_HISTOLOGY" in codes(outcome)) is rare


def test_sex_mismatch_between_form_and_identity() -> None:
    outcome = run(diagnosis(sex=Sex.FEMALE), sex=Sex.MALE)
    assert codes(outcome) == ["SEX_MISMATCH"]
    assert finding(outcome, "SEX_MISMATCH").severity is Severity.WARNING


def test_site_histology_must_be_in_its_family() -> None:
    outcome = run(diagnosis(topography="C71.6", morphology="9510"))  # retinoblastoma of the cerebellum
    assert "SITE_HISTOLOGY" in codes(outcome)
    assert finding(outcome, "SITE_HISTOLOGY").severity is Severity.WARNING
    assert "SITE_HISTOLOGY" not in codes(run(diagnosis(topography="C69.2", morphology="9510")))


def test_site_histology_must_not_be_in_its_family() -> None:
    assert "SITE_HISTOLOGY" in codes(run(diagnosis(topography="C42.1", morphology="9364")))  # pPNET of marrow
    assert "SITE_HISTOLOGY" not in codes(run(diagnosis(topography="C40.2", morphology="9364")))


def test_behaviour_site() -> None:
    in_situ_brain = run(diagnosis(topography="C71.0", morphology="8000", behaviour=2))
    assert "BEHAVIOUR_SITE" in codes(in_situ_brain)
    assert "BEHAVIOUR_SITE" not in codes(run(diagnosis(topography="C73.9", morphology="8010", behaviour=2)))
    assert "BEHAVIOUR_SITE" not in codes(run(diagnosis(topography="C71.0", morphology="8000", behaviour=3)))


def test_basis_histology_is_a_query() -> None:
    outcome = run(diagnosis(basis=1))  # medulloblastoma "diagnosed" clinically
    assert codes(outcome) == ["BASIS_HISTOLOGY"]
    assert finding(outcome, "BASIS_HISTOLOGY").severity is Severity.QUERY
    assert outcome.accepted  # queries never reject


def test_basis_histology_by_site() -> None:
    melanoma = dict(morphology="8720", grade=9, basis=2)
    assert "BASIS_HISTOLOGY" in codes(run(diagnosis(topography="C18.0", **melanoma)))
    assert "BASIS_HISTOLOGY" not in codes(run(diagnosis(topography="C69.3", **melanoma)))  # eye: clinical is usual


# ----------------------------------------------------------------------- childhood-specific ages


@pytest.mark.parametrize(
    ("topography", "morphology", "birth_date", "unlikely"),
    [
        ("C69.2", "9510", date(2018, 1, 1), True),  # retinoblastoma at 6
        ("C69.2", "9510", date(2018, 6, 1), False),  # ... at 5
        ("C22.0", "8970", date(2009, 1, 1), True),  # hepatoblastoma at 15
        ("C22.0", "8970", date(2012, 1, 1), False),  # ... at 12
        ("C74.9", "9500", date(2009, 1, 1), True),  # neuroblastoma at 15
        ("C74.9", "9500", date(2020, 1, 1), False),  # ... at 4
        ("C77.1", "9650", date(2021, 6, 1), True),  # Hodgkin lymphoma at 2
        ("C77.1", "9650", date(2021, 1, 1), False),  # ... at 3
        ("C40.2", "9260", date(2021, 6, 1), True),  # Ewing sarcoma of bone at 2
        ("C49.2", "9260", date(2021, 6, 1), False),  # ... of soft tissue at 2: another subgroup (IXd)
    ],
)
def test_childhood_unlikely_ages(topography: str, morphology: str, birth_date: date, unlikely: bool) -> None:
    outcome = run(diagnosis(topography=topography, morphology=morphology, grade=9), birth_date=birth_date)
    assert ("AGE_UNLIKELY_CHILDHOOD" in codes(outcome)) is unlikely
    if unlikely:
        assert finding(outcome, "AGE_UNLIKELY_CHILDHOOD").severity is Severity.WARNING


# ---------------------------------------------------------------------------------- ICCC and overrides


def test_iccc_unclassified_malignancy_is_a_query() -> None:
    outcome = run(diagnosis(topography="C34.1", morphology="8090", grade=2, basis=7))
    assert "ICCC_UNCLASSIFIED" in codes(outcome)
    assert finding(outcome, "ICCC_UNCLASSIFIED").severity is Severity.QUERY
    assert outcome.iccc is None


def test_a_benign_tumour_outside_iccc_is_not_queried() -> None:
    assert "ICCC_UNCLASSIFIED" not in codes(run(diagnosis(topography="C74.9", morphology="9500", behaviour=0)))


def test_a_warning_rejects_unless_overridden() -> None:
    retinoblastoma_of_brain = dict(topography="C71.6", morphology="9510")
    rejected = run(diagnosis(**retinoblastoma_of_brain), birth_date=date(2020, 1, 1))
    assert codes(rejected) == ["SITE_HISTOLOGY"]
    assert not rejected.accepted and rejected.tumour is None
    overridden = diagnosis(**retinoblastoma_of_brain, coder_overrides=("SITE_HISTOLOGY",))
    accepted = run(overridden, birth_date=date(2020, 1, 1))
    assert accepted.accepted and accepted.tumour is not None
    assert finding(accepted, "SITE_HISTOLOGY").overridden


def test_an_error_cannot_be_overridden() -> None:
    outcome = run(diagnosis(grade=5, coder_overrides=("GRADE_HISTOLOGY",)))
    assert not outcome.accepted
    assert not finding(outcome, "GRADE_HISTOLOGY").overridden


def test_an_override_of_another_code_does_not_accept_the_warning() -> None:
    outcome = run(diagnosis(sex=Sex.FEMALE, coder_overrides=("SITE_HISTOLOGY",)), sex=Sex.MALE)
    assert not outcome.accepted


# ---------------------------------------------------------------------------- treatment and follow-up


def test_treatment_of_a_known_tumour_passes() -> None:
    assert run(treatment(), [known()]).findings == ()


def test_treatment_of_an_unknown_tumour() -> None:
    outcome = run(treatment(tumour_ref="T2"), [known()])
    assert codes(outcome) == ["UNKNOWN_TUMOUR"]
    assert not outcome.accepted


def test_a_tumour_of_another_hospital_is_unknown() -> None:
    assert codes(run(treatment(), [known(hospital_id="haukeland")])) == ["UNKNOWN_TUMOUR"]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        (dict(start_date=date(2024, 1, 31)), ("start_date",)),  # before the diagnosis
        (dict(start_date=date(2024, 3, 2)), ("start_date",)),  # in the future
        (dict(end_date=date(2024, 2, 4)), ("start_date", "end_date")),  # ends before it starts
        (dict(end_date=date(2024, 3, 5)), ("end_date",)),  # ends in the future
    ],
)
def test_treatment_dates(changes: dict[str, Any], fields: tuple[str, ...]) -> None:
    outcome = run(treatment(**changes), [known()])
    assert [(f.code, f.fields) for f in outcome.findings] == [("DATE_ORDER", fields)]
    assert not outcome.accepted


def test_treatment_on_the_day_of_diagnosis_passes() -> None:
    assert run(treatment(start_date=date(2024, 2, 1), end_date=date(2024, 2, 1)), [known()]).findings == ()


def test_follow_up_of_a_known_tumour_passes() -> None:
    assert run(follow_up(), [known()]).findings == ()
    dead = follow_up(vital_status="dead", death_date=date(2024, 2, 20))
    assert run(dead, [known()]).findings == ()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (dict(last_contact_date=date(2024, 1, 1)), [("DATE_ORDER", ("last_contact_date",))]),
        (dict(last_contact_date=date(2024, 3, 2)), [("DATE_ORDER", ("last_contact_date",))]),
        (dict(vital_status="dead"), [("VITAL_STATUS", ("vital_status", "death_date"))]),
        (dict(death_date=date(2024, 2, 20)), [("VITAL_STATUS", ("vital_status", "death_date"))]),
        (
            dict(vital_status="dead", death_date=date(2024, 1, 15), last_contact_date=date(2024, 1, 15)),
            [("DATE_ORDER", ("last_contact_date",)), ("DATE_ORDER", ("death_date",))],
        ),
        (
            dict(vital_status="dead", death_date=date(2024, 2, 10)),
            [("DATE_ORDER", ("last_contact_date", "death_date"))],
        ),
        (dict(relapse={"relapse_date": "2024-01-20"}), [("DATE_ORDER", ("relapse.relapse_date",))]),
        (
            dict(relapse={"relapse_date": "2024-02-25"}),
            [("DATE_ORDER", ("relapse.relapse_date", "last_contact_date"))],
        ),
        (
            dict(relapse={"relapse_date": "2024-02-15", "site": "C14.1"}),
            [("INVALID_TOPOGRAPHY", ("relapse.site",))],
        ),
    ],
)
def test_follow_up_findings(changes: dict[str, Any], expected: list[tuple[str, tuple[str, ...]]]) -> None:
    outcome = run(follow_up(**changes), [known()])
    assert [(f.code, f.fields) for f in outcome.findings] == expected
    assert not outcome.accepted


def test_follow_up_of_an_unknown_tumour_is_checked_against_birth() -> None:
    outcome = run(follow_up(last_contact_date=date(2014, 6, 1)))
    assert codes(outcome) == ["UNKNOWN_TUMOUR", "DATE_ORDER"]
    assert "birth" in finding(outcome, "DATE_ORDER").message


def test_messages_are_specific() -> None:
    outcome = run(treatment(start_date=date(2024, 1, 31)), [known()])
    assert finding(outcome, "DATE_ORDER").message == "treatment starts 2024-01-31, before the diagnosis (2024-02-01)"
