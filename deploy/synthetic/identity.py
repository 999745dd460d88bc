"""Synthetic Norwegian identity numbers (fødselsnummer) that can never belong to a real person.

The synthetic test-number convention adds 80 to the month (Skatteetaten's Tenor test data): the number is
otherwise a well-formed fødselsnummer with both mod-11 control digits, the birth date in the first six
digits, an individual number in the range the birth year's century uses, and its last digit (the 9th
digit of the number) odd for males and even for females.
"""

from __future__ import annotations

import random
from datetime import date

from stdnum.no import fodselsnummer

SYNTHETIC_MONTH_OFFSET = 80

# Individual numbers by birth century (Skatteetaten's allocation, as stdnum decodes them).
_INDIVIDUAL_RANGES = {19: (0, 499), 20: (500, 999)}


def individual_range(birth_year: int) -> tuple[int, int]:
    century = birth_year // 100
    if century not in _INDIVIDUAL_RANGES or birth_year > 2039:
        raise ValueError(f"birth year {birth_year} is outside 1900-2039, which identity numbers here encode")
    return _INDIVIDUAL_RANGES[century]


def synthetic_number(birth: date, male: bool, individual: int) -> str | None:
    """The number for this birth date, sex and individual number, or None when no control digit fits."""
    if individual % 2 != (1 if male else 0):
        raise ValueError("the individual number's last digit must be odd for males and even for females")
    low, high = individual_range(birth.year)
    if not low <= individual <= high:
        raise ValueError(f"individual number {individual} does not fit birth year {birth.year}")
    base = f"{birth.day:02d}{birth.month + SYNTHETIC_MONTH_OFFSET:02d}{birth.year % 100:02d}{individual:03d}"
    k1 = fodselsnummer.calc_check_digit1(base)
    if len(k1) != 1:  # a remainder giving 10 has no digit: that individual number is never issued
        return None
    k2 = fodselsnummer.calc_check_digit2(base + k1)
    if len(k2) != 1:
        return None
    return base + k1 + k2


def decode(number: str) -> tuple[date, bool]:
    """Birth date and sex (True = male) of a synthetic number; ValueError if it is not one."""
    if len(number) != 11 or not number.isdigit():
        raise ValueError("expected 11 digits")
    if fodselsnummer.calc_check_digit1(number[:9]) != number[9]:
        raise ValueError("first control digit is wrong")
    if fodselsnummer.calc_check_digit2(number[:10]) != number[10]:
        raise ValueError("second control digit is wrong")
    month = int(number[2:4]) - SYNTHETIC_MONTH_OFFSET
    if not 1 <= month <= 12:
        raise ValueError("not a synthetic test number (month + 80)")
    # stdnum knows the century rules but not the +80 convention: give it the plain month.
    plain = number[:2] + f"{month:02d}" + number[4:]
    return fodselsnummer.get_birth_date(plain), fodselsnummer.get_gender(plain) == "M"


class IdentityFactory:
    """Draws a fresh synthetic number per child, never the same one twice."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def new(self, birth: date, male: bool) -> str:
        low, high = individual_range(birth.year)
        parity = 1 if male else 0
        # About a tenth of individual numbers have no valid control digits and others are taken: retry.
        for _ in range(1000):
            individual = self._rng.randrange(low + parity, high + 1, 2)
            number = synthetic_number(birth, male, individual)
            if number is not None and number not in self._used:
                self._used.add(number)
                return number
        raise RuntimeError(f"no free synthetic identity number left for {birth} ({'male' if male else 'female'})")
