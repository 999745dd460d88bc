"""Figures from counters: the metric names tumours contribute to, percentiles, age groups, shares.

A scope's counters are rows of (period, metric, key) -> value, where period is a diagnosis year or
`TOTAL`; `figures()` turns one period's counters into the `Figures` of the stats contract.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date

from shared.events import FormType
from shared.events.stats import Counts, Figures, Share, Timeliness

TOTAL = 0  # the period of all-time figures; other periods are diagnosis (or received) years
UNCLASSIFIED = "unclassified"


class M:
    """Metric names of the counters table (short: they are stored once per counter row)."""

    RECEIVED = "received"  # key: form type
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REJECTION = "rejection"  # key: finding code
    MONTH_RECEIVED = "m_received"  # key: local month received, "YYYY-MM" (all form types)
    MONTH_ACCEPTED = "m_accepted"
    MONTH_REJECTED = "m_rejected"
    CHILDREN = "children"
    TUMOURS = "tumours"
    MAIN_GROUP = "main_group"
    SUBGROUP = "subgroup"
    SEX = "sex"
    AGE = "age"
    DIAGNOSIS_DAYS = "diagnosis_days"  # key: days from diagnosis to the diagnosis report
    TREATMENT_DAYS = "treatment_days"  # key: days from diagnosis to the first treatment report
    TREATED = "treated"
    FOLLOW_UP_DUE = "follow_up_due"
    FOLLOW_UP_REPORTED = "follow_up_reported"
    VERIFIED = "verified"
    UNSPECIFIED_MORPHOLOGY = "unspecified_morphology"
    UNKNOWN_SITE = "unknown_site"
    OVERRIDE = "override"
    REMINDERS = "reminders"  # key: reminder kind; period TOTAL only


AGE_GROUPS = ("0", "1-4", "5-9", "10-14", "15-17", "18+")
# Timeliness day ranges (inclusive upper bounds), as the contract names them.
DAY_BUCKETS = ((7, "0-7"), (14, "8-14"), (30, "15-30"), (60, "31-60"), (90, "61-90"), (180, "91-180"))
OVER_LAST_BUCKET, NEGATIVE_BUCKET = ">180", "<0"

# Quality targets of the shares that have one besides the treatment-report share (configured,
# STATS_TREATMENT_REPORT_TARGET). Indicative, for a childhood registry; see the README's "Quality targets".
# - Morphologically verified, at least 85 %: childhood cancers are nearly all diagnosed by histology,
#   cytology or haematology (flow cytometry, marrow); IARC's childhood-incidence series (IICC) reports the
#   MV % of every registry, and well-functioning registries lie at 90 % and above, the shortfall being
#   CNS tumours diagnosed on imaging (brainstem gliomas) and retinoblastomas diagnosed clinically.
#   85 % leaves room for those and still flags a registry that misses its pathology reports.
# - Unspecified morphology (ICD-O-3 8000-8005), at most 5 %: IICC flags "unspecified" as a quality
#   indicator; adult registries tolerate more, but in children nearly every tumour has a specific type.
# - Unknown primary site (C80.9), at most 2 %: adult registries aim below about 5 %; primary-site-unknown
#   cancer is rare in children (a few per thousand), so 2 % is generous and a higher share means coding
#   or reporting problems.
VERIFIED_TARGET = 0.85
UNSPECIFIED_MORPHOLOGY_MAXIMUM = 0.05
UNKNOWN_PRIMARY_SITE_MAXIMUM = 0.02
_MAIN_GROUPS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")


def age_in_years(birth_date: date, on: date) -> int:
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))


def age_group(birth_date: date, diagnosis_date: date) -> str:
    age = age_in_years(birth_date, diagnosis_date)
    for limit, group in ((1, "0"), (5, "1-4"), (10, "5-9"), (15, "10-14"), (18, "15-17")):
        if age < limit:
            return group
    return "18+"  # outside the registry's remit, but a case mix must add up to the tumours counted


def quantile(histogram: Mapping[int, int], q: float) -> float | None:
    """The q-quantile of the values a histogram counts, interpolated linearly between neighbouring ranks
    (numpy's default), so the median of an even count is the mean of the middle two."""
    items = sorted((value, count) for value, count in histogram.items() if count > 0)
    n = sum(count for _, count in items)
    if n == 0:
        return None
    rank = (n - 1) * q
    low = math.floor(rank)
    low_value, high_value = _value_at(items, low), _value_at(items, min(low + 1, n - 1))
    return low_value + (rank - low) * (high_value - low_value)


def _value_at(items: list[tuple[int, int]], rank: int) -> int:
    """The value at a 0-based rank of the sorted values a histogram's (value, count) items stand for."""
    seen = 0
    for value, count in items:
        seen += count
        if rank < seen:
            return value
    raise IndexError(rank)


def day_bucket(days: int) -> str:
    if days < 0:
        return NEGATIVE_BUCKET
    for limit, name in DAY_BUCKETS:
        if days <= limit:
            return name
    return OVER_LAST_BUCKET


def day_buckets(histogram: Mapping[int, int]) -> dict[str, int]:
    """The histogram by day range: every range, in order, once anything is counted ("<0" only if used)."""
    if not any(histogram.values()):
        return {}
    counted: dict[str, int] = {}
    for days, count in histogram.items():
        counted[day_bucket(days)] = counted.get(day_bucket(days), 0) + count
    names = ([NEGATIVE_BUCKET] if counted.get(NEGATIVE_BUCKET) else []) + [n for _, n in DAY_BUCKETS]
    return {name: counted.get(name, 0) for name in [*names, OVER_LAST_BUCKET]}


def timeliness(histogram: Mapping[int, int]) -> Timeliness:
    median, p90 = quantile(histogram, 0.5), quantile(histogram, 0.9)
    return Timeliness(
        count=sum(histogram.values()),
        median_days=None if median is None else round(median, 2),
        p90_days=None if p90 is None else round(p90, 2),
        buckets=day_buckets(histogram),
    )


def share(numerator: int, denominator: int, target: float | None = None, *, maximum: bool = False) -> Share:
    ratio = round(numerator / denominator, 4) if denominator else None
    return Share(
        numerator=numerator,
        denominator=denominator,
        ratio=ratio,
        target=target,
        target_is_maximum=maximum and target is not None,
    )


def reports_by_month(by_metric: Mapping[str, Mapping[str, int]]) -> dict[str, Counts]:
    received, accepted, rejected = (
        by_metric.get(m, {}) for m in (M.MONTH_RECEIVED, M.MONTH_ACCEPTED, M.MONTH_REJECTED)
    )
    return {
        month: Counts(received=received.get(month, 0), accepted=accepted.get(month, 0), rejected=rejected.get(month, 0))
        for month in sorted({*received, *accepted, *rejected})
    }


def _main_group_order(group: str) -> tuple[int, str]:
    return (_MAIN_GROUPS.index(group), "") if group in _MAIN_GROUPS else (len(_MAIN_GROUPS), group)


def _subgroup_order(subgroup: str) -> tuple[tuple[int, str], str]:
    numeral = subgroup.rstrip("abcdef")
    return _main_group_order(numeral), subgroup


def figures(counters: Mapping[tuple[str, str], int], treatment_target: float) -> Figures:
    """One period's figures from its counters, keyed (metric, key)."""
    by_metric: dict[str, dict[str, int]] = {}
    for (metric, key), value in counters.items():
        if value:
            by_metric.setdefault(metric, {})[key] = value

    def one(metric: str) -> int:
        return by_metric.get(metric, {}).get("", 0)

    def days(metric: str) -> dict[int, int]:
        return {int(key): value for key, value in by_metric.get(metric, {}).items()}

    submissions = {}
    for form_type in FormType:
        counts = Counts(
            received=by_metric.get(M.RECEIVED, {}).get(form_type, 0),
            accepted=by_metric.get(M.ACCEPTED, {}).get(form_type, 0),
            rejected=by_metric.get(M.REJECTED, {}).get(form_type, 0),
        )
        if counts != Counts():
            submissions[form_type] = counts
    tumours = one(M.TUMOURS)
    return Figures(
        submissions=submissions,
        reports_by_month=reports_by_month(by_metric),
        rejections_by_code=dict(sorted(by_metric.get(M.REJECTION, {}).items())),
        children=one(M.CHILDREN),
        tumours=tumours,
        case_mix_main_group=dict(
            sorted(by_metric.get(M.MAIN_GROUP, {}).items(), key=lambda i: _main_group_order(i[0]))
        ),
        case_mix_subgroup=dict(sorted(by_metric.get(M.SUBGROUP, {}).items(), key=lambda i: _subgroup_order(i[0]))),
        by_sex=dict(sorted(by_metric.get(M.SEX, {}).items())),
        by_age_group={g: n for g in AGE_GROUPS if (n := by_metric.get(M.AGE, {}).get(g, 0))},
        days_to_diagnosis_report=timeliness(days(M.DIAGNOSIS_DAYS)),
        days_to_first_treatment_report=timeliness(days(M.TREATMENT_DAYS)),
        with_treatment_report=share(one(M.TREATED), tumours, treatment_target),
        with_due_follow_up_report=share(one(M.FOLLOW_UP_REPORTED), one(M.FOLLOW_UP_DUE)),
        morphologically_verified=share(one(M.VERIFIED), tumours, VERIFIED_TARGET),
        unspecified_morphology=share(
            one(M.UNSPECIFIED_MORPHOLOGY), tumours, UNSPECIFIED_MORPHOLOGY_MAXIMUM, maximum=True
        ),
        unknown_primary_site=share(one(M.UNKNOWN_SITE), tumours, UNKNOWN_PRIMARY_SITE_MAXIMUM, maximum=True),
        accepted_with_override=share(one(M.OVERRIDE), tumours),
    )
