"""`registry iccc code` and `registry check`: the batch commands, end to end through the CLI."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from services.validation.batch import identity_facts
from shared.events.forms import Sex

runner = CliRunner()

# Valid identity numbers of children born 15 October 2018 (control digits computed, not real people).
BOY, GIRL = "15101850185", "15101850266"


def invoke(*args: str, stdin: str) -> Any:
    return runner.invoke(app, list(args), input=stdin)


# ------------------------------------------------------------------------------------------ iccc code


def test_iccc_code_adds_the_four_columns_in_order() -> None:
    result = invoke(
        "iccc",
        "code",
        stdin="topography,morphology,behaviour\nC71.6,9470,3\nC18.2,8000,2\nC69.2,9510,3\nC70.0,9080,0\n",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "topography,morphology,behaviour,iccc_recode,iccc_extended,iccc_subgroup,iccc_division",
        "C71.6,9470,3,033,020,IIIc,IIIc.1",
        "C18.2,8000,2,999,999,,",
        "C69.2,9510,3,050,035,V,",
        "C70.0,9080,0,101,073,Xa,Xa.2",
    ]


def test_iccc_code_keeps_other_columns_and_recodes_its_own_output() -> None:
    first = invoke("iccc", "code", stdin="id,topography,morphology,behaviour\n7,C71.6,9470,3\n")
    again = invoke("iccc", "code", stdin=first.stdout)
    assert again.exit_code == 0
    assert again.stdout == first.stdout
    [row] = list(csv.DictReader(io.StringIO(again.stdout)))
    assert row["id"] == "7"


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ("C716,9470,3", "line 3: topography 'C716' is not a topography like C71.6"),
        ("C71.6,947,3", "line 3: morphology '947' is not four digits"),
        ("C71.6,9470,x", "line 3: behaviour 'x' is not one digit"),
        ("C71.6,9470", "line 3: expected 3 fields"),
    ],
)
def test_iccc_code_names_the_malformed_line_and_writes_nothing(rows: str, error: str) -> None:
    result = invoke("iccc", "code", stdin=f"topography,morphology,behaviour\nC71.6,9470,3\n{rows}\n")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert error in result.stderr


def test_iccc_code_requires_its_header() -> None:
    result = invoke("iccc", "code", stdin="site,morphology,behaviour\nC71.6,9470,3\n")
    assert result.exit_code == 1
    assert "line 1: the header lacks topography" in result.stderr


# ---------------------------------------------------------------------------------------------- check


def line(n: int, form: dict[str, Any], patient: dict[str, Any] | None = None) -> str:
    return json.dumps(
        {
            "submission_id": f"00000000-0000-0000-0000-{n:012d}",
            "hospital_id": "ous",
            "form_version": 1,
            "made_at": "2024-03-01T10:00:00+01:00",
            "patient": patient or {"national_id": BOY},
            "form": form,
        }
    )


DIAGNOSIS = {
    "form_type": "diagnosis",
    "tumour_ref": "T1",
    "sex": "male",
    "diagnosis_date": "2024-02-01",
    "topography": "C71.6",
    "morphology": "9470",
    "behaviour": 3,
    "grade": 9,
    "basis": 7,
}
TREATMENT = {"form_type": "treatment", "tumour_ref": "T1", "modality": "surgery", "start_date": "2024-02-03"}


def check(*lines: str) -> list[dict[str, Any]]:
    result = invoke("check", stdin="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.stderr
    return [json.loads(out) for out in result.stdout.splitlines()]


def test_check_writes_one_outcome_per_form_and_links_the_stream() -> None:
    outcomes = check(line(1, DIAGNOSIS), line(2, TREATMENT), line(3, TREATMENT, {"national_id": GIRL}))
    assert [o["status"] for o in outcomes] == ["accepted", "accepted", "rejected"]
    assert outcomes[0] == {
        "submission_id": "00000000-0000-0000-0000-000000000001",
        "status": "accepted",
        "iccc": {"main_group": "III", "subgroup": "IIIc", "division": "IIIc.1", "recode": "033", "extended": "020"},
        "findings": [],
    }
    assert outcomes[1]["iccc"] is None
    [finding] = outcomes[2]["findings"]  # another child: her tumour T1 is unknown
    assert (finding["code"], finding["severity"], finding["fields"]) == ("UNKNOWN_TUMOUR", "error", ["tumour_ref"])
    assert finding["message"]


def test_check_accepts_birth_date_and_sex_instead_of_an_identity_number() -> None:
    patient = {"birth_date": "2010-05-05", "sex": "female"}
    [outcome] = check(line(1, DIAGNOSIS, patient))
    assert [f["code"] for f in outcome["findings"]] == ["SEX_MISMATCH"]  # the form says male
    assert outcome["status"] == "rejected"


def test_check_reports_overridden_warnings() -> None:
    form = DIAGNOSIS | {"sex": "female", "coder_overrides": ["SEX_MISMATCH"]}
    [outcome] = check(line(1, form))
    assert outcome["status"] == "accepted"
    assert outcome["findings"][0]["overridden"] is True


@pytest.mark.parametrize(
    ("patient", "error"),
    [
        ({"national_id": "15101850186"}, "patient.national_id: the control digits do not match"),
        ({"national_id": "1510185018"}, "patient.national_id: must be 11 digits"),
        ({"birth_date": "2010-05-05"}, "give national_id, or birth_date and sex"),
        ({"national_id": BOY, "sex": "female"}, "patient.sex: does not match the identity number"),
    ],
)
def test_check_rejects_bad_patients_without_echoing_the_number(patient: dict[str, Any], error: str) -> None:
    result = invoke("check", stdin=line(1, DIAGNOSIS) + "\n" + line(2, DIAGNOSIS, patient) + "\n")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "line 2: " in result.stderr and error in result.stderr
    assert "1510185018" not in result.stderr


def test_check_names_malformed_json_and_form_fields() -> None:
    bad_form = DIAGNOSIS | {"behaviour": "3"}
    result = invoke("check", stdin="{not json\n" + line(2, bad_form) + "\n")
    assert result.exit_code == 1
    assert "line 1: <root>: Invalid JSON" in result.stderr
    assert "line 2: form.diagnosis.behaviour: Input should be a valid integer" in result.stderr


@pytest.mark.parametrize(
    ("number", "birth_date", "sex"),
    [
        (BOY, "2018-10-15", Sex.MALE),
        (GIRL, "2018-10-15", Sex.FEMALE),
        ("55101850179", "2018-10-15", Sex.MALE),  # D-number: day + 40
        ("15901850140", "2018-10-15", Sex.MALE),  # synthetic test number: month + 80
    ],
)
def test_identity_facts(number: str, birth_date: str, sex: Sex) -> None:
    born, legal_sex = identity_facts(number)
    assert (str(born), legal_sex) == (birth_date, sex)
