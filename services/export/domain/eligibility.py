"""Who NOPHO-Care covers: tumours diagnosed on or after 2019-01-01 in children under 18 at diagnosis.

Scope is decided per tumour (a child may have a second tumour outside the period); the right of
reservation is per child and overrides everything (see `domain.ledger`).
"""

from __future__ import annotations

from datetime import date

NOPHO_CARE_START = date(2019, 1, 1)
AGE_LIMIT_YEARS = 18


def age_in_years(birth_date: date, on: date) -> int:
    """Completed years. Someone born on 29 February turns a year older on 1 March in common years."""
    years = on.year - birth_date.year
    if (on.month, on.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def age_in_days(birth_date: date, on: date) -> int:
    return (on - birth_date).days


def in_scope(birth_date: date, diagnosis_date: date) -> bool:
    """Diagnosed on or after the start of NOPHO-Care, and under 18 (and born) at diagnosis."""
    return diagnosis_date >= NOPHO_CARE_START and 0 <= age_in_years(birth_date, diagnosis_date) < AGE_LIMIT_YEARS
