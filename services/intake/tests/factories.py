"""Test data: valid identity numbers made with stdnum's checksum functions, and hospital messages."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, date, datetime
from typing import Any

from stdnum.no.fodselsnummer import calc_check_digit1, calc_check_digit2

from shared.events.forms import Sex


def make_id(birth: date, sex: Sex = Sex.FEMALE, *, day_offset: int = 0, month_offset: int = 0, nth: int = 0) -> str:
    """The `nth` valid identity number for `birth` and `sex`; D-numbers with `day_offset=40`, H-numbers
    and synthetic numbers with `month_offset` 40, 65 or 80."""
    if birth.year >= 2000:
        individuals = range(500, 1000)
    elif birth.year >= 1900:
        individuals = range(0, 500)
    else:
        individuals = range(500, 750)
    found = 0
    for individual in individuals:
        if (individual % 2 == 1) != (sex is Sex.MALE):
            continue
        base = f"{birth.day + day_offset:02d}{birth.month + month_offset:02d}{birth.year % 100:02d}{individual:03d}"
        first = calc_check_digit1(base)
        if len(first) != 1:
            continue
        second = calc_check_digit2(base + first)
        if len(second) != 1:
            continue
        if found == nth:
            return base + first + second
        found += 1
    raise ValueError("no such number")


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def diagnosis(tumour_ref: str = "T-1", sex: str = "female", **overrides: Any) -> dict[str, Any]:
    form = {
        "form_type": "diagnosis",
        "tumour_ref": tumour_ref,
        "sex": sex,
        "diagnosis_date": "2024-03-01",
        "topography": "C71.6",
        "morphology": "9470",
        "behaviour": 3,
        "grade": 9,
        "basis": 7,
    }
    return form | overrides


def treatment(tumour_ref: str = "T-1", **overrides: Any) -> dict[str, Any]:
    form = {
        "form_type": "treatment",
        "tumour_ref": tumour_ref,
        "modality": "chemotherapy",
        "protocol": "SIOP PNET5 MB",
        "start_date": "2024-03-10",
    }
    return form | overrides


def follow_up(tumour_ref: str = "T-1", **overrides: Any) -> dict[str, Any]:
    form = {
        "form_type": "follow_up",
        "tumour_ref": tumour_ref,
        "last_contact_date": "2025-03-01",
        "vital_status": "alive",
    }
    return form | overrides


CHILD = make_id(date(2015, 6, 1), Sex.FEMALE)
OTHER_CHILD = make_id(date(2012, 2, 29), Sex.MALE)


def submission(
    hospital_id: str = "ous",
    *,
    national_id: str = CHILD,
    form: dict[str, Any] | None = None,
    submission_id: uuid.UUID | None = None,
    made_at: datetime | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    body = {
        "submission_id": str(submission_id or uuid.uuid4()),
        "hospital_id": hospital_id,
        "form_version": 1,
        "made_at": (made_at or datetime(2024, 3, 2, 12, 0, tzinfo=UTC)).isoformat(),
        "patient": {"national_id": national_id},
        "form": form or diagnosis(),
    }
    return body | overrides


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
