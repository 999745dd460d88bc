from __future__ import annotations

from datetime import date

import pytest

from services.export.domain.eligibility import age_in_days, age_in_years, in_scope


@pytest.mark.parametrize(
    ("born", "diagnosed", "expected"),
    [
        (date(2010, 5, 5), date(2018, 12, 31), False),  # the day before NOPHO-Care
        (date(2010, 5, 5), date(2019, 1, 1), True),  # its first day
        (date(2002, 2, 10), date(2020, 2, 9), True),  # 17, one day before the 18th birthday
        (date(2002, 2, 10), date(2020, 2, 10), False),  # 18 on the day
        (date(2004, 2, 29), date(2022, 2, 28), True),  # born on 29 February: still 17 on 28 February
        (date(2004, 2, 29), date(2022, 3, 1), False),  # and 18 on 1 March
        (date(2019, 1, 1), date(2019, 1, 1), True),  # diagnosed on the day of birth
        (date(2020, 1, 2), date(2020, 1, 1), False),  # "diagnosed" before birth: a data error, never in scope
    ],
)
def test_in_scope(born: date, diagnosed: date, expected: bool) -> None:
    assert in_scope(born, diagnosed) is expected


def test_ages() -> None:
    assert age_in_years(date(2002, 2, 10), date(2020, 2, 9)) == 17
    assert age_in_years(date(2002, 2, 10), date(2020, 2, 10)) == 18
    assert age_in_days(date(2019, 12, 31), date(2020, 3, 1)) == 61
