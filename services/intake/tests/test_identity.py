"""Identity-number validation against known valid and invalid numbers."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.no import fodselsnummer
from stdnum.no.fodselsnummer import calc_check_digit1, calc_check_digit2

from services.intake.domain.identity import IdentityError, IdentityKind, parse_national_id
from services.intake.tests.factories import make_id
from shared.events.forms import Sex

TODAY = date(2025, 1, 1)


def with_checks(first_nine: str) -> str:
    first = calc_check_digit1(first_nine)
    second = calc_check_digit2(first_nine + first)
    assert len(first) == len(second) == 1, "pick other digits: no valid control digit"
    return first_nine + first + second


def test_the_published_example_number() -> None:
    # The example of python-stdnum's documentation (and of Norwegian Wikipedia's article).
    identity = parse_national_id("15108695088", today=TODAY)
    assert identity.birth_date == date(1986, 10, 15)
    assert identity.sex is Sex.FEMALE
    assert identity.kind is IdentityKind.FODSELSNUMMER


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("15108695077", "the first control digit does not match"),
        ("15108695089", "the second control digit does not match"),
        ("1510869508", "must be exactly 11 digits"),
        ("151086950880", "must be exactly 11 digits"),
        ("151086 9508", "must contain digits only"),
        ("1510869508a", "must contain digits only"),
        ("١٥١٠٨٦٩٥٠٨٨", "must contain digits only"),  # Arabic-Indic digits: str.isdigit() says yes
    ],
)
def test_malformed_numbers_are_refused_with_a_reason(number: str, reason: str) -> None:
    with pytest.raises(IdentityError) as caught:
        parse_national_id(number, today=TODAY)
    assert caught.value.reason == reason


def test_impossible_date_with_valid_control_digits_is_refused() -> None:
    number = with_checks("310415512")  # 31 April 2015
    with pytest.raises(IdentityError, match="not a valid birth date"):
        parse_national_id(number, today=TODAY)


def test_birth_date_in_the_future_is_refused() -> None:
    number = make_id(date(2024, 6, 1))
    with pytest.raises(IdentityError, match="in the future"):
        parse_national_id(number, today=date(2024, 5, 31))
    assert parse_national_id(number, today=date(2024, 6, 1)).birth_date == date(2024, 6, 1)


def test_fh_numbers_carry_no_birth_date() -> None:
    with pytest.raises(IdentityError, match="FH-number"):
        parse_national_id(with_checks("812345678"), today=TODAY)


def test_d_number_day_plus_40() -> None:
    number = make_id(date(2016, 5, 17), Sex.MALE, day_offset=40)
    assert number.startswith("57")
    identity = parse_national_id(number, today=TODAY)
    assert (identity.birth_date, identity.sex, identity.kind) == (date(2016, 5, 17), Sex.MALE, IdentityKind.D_NUMBER)


def test_h_number_month_plus_40() -> None:
    identity = parse_national_id(make_id(date(2011, 12, 24), month_offset=40), today=TODAY)
    assert (identity.birth_date, identity.kind) == (date(2011, 12, 24), IdentityKind.H_NUMBER)


@pytest.mark.parametrize("offset", [65, 80])
def test_synthetic_test_numbers(offset: int) -> None:
    number = make_id(date(2019, 11, 30), Sex.MALE, month_offset=offset)
    assert not fodselsnummer.is_valid(number)  # where stdnum falls short
    identity = parse_national_id(number, today=TODAY)
    assert (identity.birth_date, identity.sex, identity.kind) == (date(2019, 11, 30), Sex.MALE, IdentityKind.SYNTHETIC)


def test_synthetic_d_number() -> None:
    identity = parse_national_id(make_id(date(2020, 1, 9), day_offset=40, month_offset=80), today=TODAY)
    assert (identity.birth_date, identity.kind) == (date(2020, 1, 9), IdentityKind.SYNTHETIC)


def test_synthetic_numbers_can_be_refused() -> None:
    with pytest.raises(IdentityError, match="synthetic"):
        parse_national_id(make_id(date(2019, 1, 2), month_offset=80), today=TODAY, accept_synthetic=False)


def test_century_comes_from_the_individual_number() -> None:
    assert parse_national_id(make_id(date(2005, 3, 4)), today=TODAY).birth_date == date(2005, 3, 4)
    assert parse_national_id(make_id(date(1905, 3, 4)), today=TODAY).birth_date == date(1905, 3, 4)


def test_reasons_never_contain_the_number() -> None:
    number = make_id(date(2024, 6, 1))
    for candidate in (number, number[:-1] + str((int(number[-1]) + 1) % 10), number[:-1]):
        with pytest.raises(IdentityError) as caught:
            parse_national_id(candidate, today=date(2020, 1, 1))
        assert candidate not in str(caught.value)
        assert candidate[:6] not in str(caught.value)


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)),
    st.sampled_from(list(Sex)),
    st.sampled_from([(0, 0), (40, 0), (0, 40), (0, 65), (0, 80)]),
)
def test_every_generated_number_decodes_to_its_birth_date_and_sex(
    birth: date, sex: Sex, offsets: tuple[int, int]
) -> None:
    day_offset, month_offset = offsets
    identity = parse_national_id(make_id(birth, sex, day_offset=day_offset, month_offset=month_offset), today=TODAY)
    assert (identity.birth_date, identity.sex) == (birth, sex)
    if offsets == (0, 0):
        assert fodselsnummer.is_valid(identity.number)  # stdnum agrees on ordinary numbers
