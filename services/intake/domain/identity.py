"""The Norwegian national identity number: validation, and the birth date and legal sex it encodes.

python-stdnum's `stdnum.no.fodselsnummer` does the arithmetic (both mod-11 control digits, the century
from the individual number, D-numbers with day + 40 and H-numbers with month + 40). It falls short on
synthetic test numbers, whose month carries + 65 or + 80 (Skatteetaten's and NAV's test populations):
stdnum takes those for impossible dates. Here the synthetic month is folded back before stdnum computes
the date, and stdnum's own checks are reused for everything else.

Error reasons name what is wrong and never repeat the number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from stdnum.exceptions import ValidationError as StdnumError
from stdnum.no import fodselsnummer

from shared.events.forms import Sex

_SYNTHETIC_MONTH_OFFSETS = (80, 65)  # checked highest first: the ranges 81-92 and 66-77 do not overlap
_H_MONTH_OFFSET = 40  # H-numbers (health-service auxiliary numbers) and NAV's synthetic numbers
_D_DAY_OFFSET = 40
_FH_FIRST_DIGITS = ("8", "9")


class IdentityKind(StrEnum):
    FODSELSNUMMER = "fodselsnummer"
    D_NUMBER = "d_number"
    H_NUMBER = "h_number"
    SYNTHETIC = "synthetic"


class IdentityError(ValueError):
    """The number is not a usable identity number; `reason` is safe to show and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NationalIdentity:
    number: str = field(repr=False)
    birth_date: date
    sex: Sex
    kind: IdentityKind


def parse_national_id(value: str, *, today: date, accept_synthetic: bool = True) -> NationalIdentity:
    """Validate `value` (exactly 11 digits) and derive the birth date and legal sex it encodes."""
    if len(value) != 11:
        raise IdentityError("must be exactly 11 digits")
    if not value.isascii() or not value.isdigit():
        raise IdentityError("must contain digits only")
    if value[9] != fodselsnummer.calc_check_digit1(value):
        raise IdentityError("the first control digit does not match")
    if value[10] != fodselsnummer.calc_check_digit2(value):
        raise IdentityError("the second control digit does not match")
    if value[0] in _FH_FIRST_DIGITS:
        raise IdentityError("an FH-number carries no birth date; give the child's fødselsnummer or D-number")

    day, month = int(value[0:2]), int(value[2:4])
    kind = IdentityKind.FODSELSNUMMER
    for offset in _SYNTHETIC_MONTH_OFFSETS:
        if month > offset:
            if not accept_synthetic:
                raise IdentityError("synthetic test numbers are not accepted here")
            month -= offset
            kind = IdentityKind.SYNTHETIC
            break
    else:
        if month > _H_MONTH_OFFSET:
            kind = IdentityKind.H_NUMBER
    if day > _D_DAY_OFFSET and kind is IdentityKind.FODSELSNUMMER:
        kind = IdentityKind.D_NUMBER

    # stdnum folds back D-days and H-months itself and knows the century rules.
    normalised = f"{value[0:2]}{month:02d}{value[4:]}"
    try:
        birth_date = fodselsnummer.get_birth_date(normalised)
    except StdnumError:
        raise IdentityError("the date part is not a valid birth date") from None
    if birth_date > today:
        raise IdentityError("the birth date it encodes is in the future")
    sex = Sex.MALE if fodselsnummer.get_gender(value) == "M" else Sex.FEMALE
    return NationalIdentity(value, birth_date, sex, kind)
