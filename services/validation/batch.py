"""The batch commands' work, on text in and text out: `registry iccc code` (CSV) and `registry check`
(JSON lines). Input is read and validated completely before anything is written, so a malformed line
gives errors naming their lines and no partial output.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

from pydantic import AwareDatetime, Field, ValidationError, model_validator
from stdnum.exceptions import ValidationError as NumberError
from stdnum.no import fodselsnummer

from services.validation.domain import Case, ReferenceData, assess, registry_date
from services.validation.domain.reference import IcccCoder
from services.validation.storage import TumourLedger
from shared.events import StrictModel
from shared.events.base import HospitalId
from shared.events.forms import Form, Sex
from shared.kafka.deadletters import describe_error

ICCC_INPUT = ("topography", "morphology", "behaviour")
ICCC_OUTPUT = ("iccc_recode", "iccc_extended", "iccc_subgroup", "iccc_division")
UNCLASSIFIED = "999"
_FORMATS = {
    "topography": (re.compile(r"^C\d{2}\.\d$"), "a topography like C71.6"),
    "morphology": (re.compile(r"^\d{4}$"), "four digits"),
    "behaviour": (re.compile(r"^\d$"), "one digit"),
}


class BatchInputError(ValueError):
    """Input that cannot be processed; `errors` name each offending line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# ------------------------------------------------------------------------------------ iccc code


def code_csv(source: io.TextIOBase | Iterable[str], coder: IcccCoder) -> str:
    """Every row of `topography,morphology,behaviour` CSV with its ICCC-3 columns added, in order."""
    reader = csv.DictReader(source)
    fields = reader.fieldnames or []
    missing = [name for name in ICCC_INPUT if name not in fields]
    if missing:
        raise BatchInputError([f"line 1: the header lacks {', '.join(missing)} (expected {','.join(ICCC_INPUT)})"])
    columns = [name for name in fields if name not in ICCC_OUTPUT] + list(ICCC_OUTPUT)
    rows, errors = [], []
    for row in reader:
        problems = _row_problems(row, len(fields))
        if problems:
            errors.append(f"line {reader.line_num}: {'; '.join(problems)}")
            continue
        code = coder.code_text(row["topography"].strip(), row["morphology"].strip(), int(row["behaviour"]))
        row["iccc_recode"] = code.recode if code else UNCLASSIFIED
        row["iccc_extended"] = code.extended if code else UNCLASSIFIED
        row["iccc_subgroup"] = code.subgroup if code else ""
        row["iccc_division"] = (code.division or "") if code else ""
        rows.append(row)
    if errors:
        raise BatchInputError(errors)
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _row_problems(row: dict[str | Any, Any], width: int) -> list[str]:
    if None in row or any(value is None for value in row.values()):
        return [f"expected {width} fields"]
    problems = []
    for name, (pattern, expected) in _FORMATS.items():
        value = row[name].strip()
        if not pattern.match(value):
            problems.append(f"{name} {value!r} is not {expected}")
    return problems


# ---------------------------------------------------------------------------------------- check


class Patient(StrictModel):
    """The identity number, or the birth date and legal sex (for forms checked without one)."""

    national_id: str | None = Field(default=None, repr=False)
    birth_date: date | None = None
    sex: Sex | None = None

    @model_validator(mode="after")
    def _enough(self) -> Self:
        if self.national_id is None and (self.birth_date is None or self.sex is None):
            raise ValueError("give national_id, or birth_date and sex")
        return self


class CheckRequest(StrictModel):
    """A line of `registry check` input: the body of intake's submission API."""

    submission_id: uuid.UUID
    hospital_id: HospitalId
    form_version: int
    made_at: AwareDatetime
    patient: Patient
    form: Form
    corrects: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Child:
    key: str  # links the forms of one child within the run; never written out
    birth_date: date
    sex: Sex


def check_lines(lines: Iterable[str], reference: ReferenceData) -> list[str]:
    """One JSON line of outcome per form; forms earlier in the input are known to later ones (linkage)."""
    parsed, errors = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            request = CheckRequest.from_json(line)
            parsed.append((request, _child(request.patient)))
        except ValidationError as exc:
            errors.append(f"line {number}: {describe_error(exc)}")
        except ValueError as exc:  # from the identity number
            errors.append(f"line {number}: {exc}")
    if errors:
        raise BatchInputError(errors)

    ledger = TumourLedger()
    results = []
    for request, child in parsed:
        case = Case(
            submission_id=request.submission_id,
            hospital_id=request.hospital_id,
            birth_date=child.birth_date,
            legal_sex=child.sex,
            form=request.form,
            reference_date=registry_date(request.made_at),  # no receipt here: the form's own date
            is_correction=request.corrects is not None,
        )
        assessment = assess(case, ledger.of(child.key), reference)
        if assessment.tumour is not None:
            ledger.remember(child.key, assessment.tumour)
        result = {
            "submission_id": str(request.submission_id),
            "status": "accepted" if assessment.accepted else "rejected",
            "iccc": assessment.iccc.model_dump() if assessment.iccc else None,
            "findings": [finding.model_dump(mode="json") for finding in assessment.findings],
        }
        results.append(json.dumps(result, ensure_ascii=False))
    return results


def _child(patient: Patient) -> Child:
    if patient.national_id is None:
        assert patient.birth_date is not None and patient.sex is not None  # checked by Patient
        return Child(f"{patient.birth_date}/{patient.sex}", patient.birth_date, patient.sex)
    birth_date, sex = identity_facts(patient.national_id)
    if patient.birth_date is not None and patient.birth_date != birth_date:
        raise ValueError("patient.birth_date: does not match the identity number")
    if patient.sex is not None and patient.sex != sex:
        raise ValueError("patient.sex: does not match the identity number")
    return Child(fodselsnummer.compact(patient.national_id), birth_date, sex)


def identity_facts(national_id: str) -> tuple[date, Sex]:
    """Birth date and legal sex from a Norwegian identity number (fødselsnummer, D-number, H-number or a
    synthetic test number). Errors never repeat the number."""
    number = fodselsnummer.compact(national_id)
    if len(number) != 11 or not number.isdigit():
        raise ValueError("patient.national_id: must be 11 digits")
    if number[9] != fodselsnummer.calc_check_digit1(number) or number[10] != fodselsnummer.calc_check_digit2(number):
        raise ValueError("patient.national_id: the control digits do not match")
    month = int(number[2:4])
    plain = number[:2] + f"{month - 80:02d}" + number[4:] if month > 80 else number  # synthetic: month + 80
    try:
        birth_date = fodselsnummer.get_birth_date(plain)  # handles D-numbers (day + 40) and H-numbers
    except NumberError:
        raise ValueError("patient.national_id: holds no valid birth date") from None
    return birth_date, Sex.MALE if int(number[8]) % 2 else Sex.FEMALE
