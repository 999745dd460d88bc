"""The reference tables in `services/validation/data/`, loaded once and compiled into lookups.

Everything the coder and the checks know about codes comes from these files (see data/PROVENANCE.md);
this module only parses them into dicts and sets keyed the way the checks ask: sites as integers
(C71.6 -> 716, so a site group is `site // 10`), histologies as integers, behaviours and grades as ints.
"""

from __future__ import annotations

import csv
import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from shared.events import IcccCode
from shared.events.forms import Sex

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

AgeRange = tuple[int, int]  # inclusive, completed years
Ages = frozenset[int]  # the completed years an age rule covers, expanded for a set lookup
K = TypeVar("K")
MAX_AGE = 120


class ReferenceDataError(ValueError):
    """A reference file is missing a column or holds a value that cannot be parsed."""


def site_of(topography: str) -> int:
    """`C71.6` -> 716: the integer form the SEER tables use (`C716`)."""
    return int(topography[1:3]) * 10 + int(topography[4])


def topography_of(site: int) -> str:
    return f"C{site // 10:02d}.{site % 10}"


def parse_ranges(text: str, prefix: str = "") -> frozenset[int]:
    """`C000-C219,C420` or `9811-9819,9837,` (a trailing comma occurs in the SEER table) -> the integers."""
    values: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        low, _, high = item.partition("-")
        try:
            first = int(low.removeprefix(prefix))
            last = int(high.removeprefix(prefix)) if high else first
        except ValueError:
            raise ReferenceDataError(f"not a code or range: {item!r}") from None
        if last < first:
            raise ReferenceDataError(f"empty range: {item!r}")
        values.update(range(first, last + 1))
    return frozenset(values)


def _age_range(text: str) -> AgeRange:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


# --------------------------------------------------------------------------------------------- ICCC-3


@dataclass(frozen=True, slots=True)
class IcccRule:
    """One coding row of the SEER table; `None` ranges mean "any", `code` is None for `999`."""

    order: int
    sites: frozenset[int] | None
    histologies: frozenset[int] | None
    behaviours: frozenset[int] | None
    code: IcccCode | None

    def matches(self, site: int, histology: int, behaviour: int) -> bool:
        return (
            (self.sites is None or site in self.sites)
            and (self.histologies is None or histology in self.histologies)
            and (self.behaviours is None or behaviour in self.behaviours)
        )


UNCLASSIFIED = "999"


class IcccCoder:
    """First matching row wins. Rows are indexed by histology, so a lookup scans only the one to three
    rows that name the histology (in table order), then the rows valid for any histology."""

    def __init__(self, rules: Iterable[IcccRule]) -> None:
        self.rules = tuple(sorted(rules, key=lambda rule: rule.order))
        histologies = set().union(*(rule.histologies or () for rule in self.rules))
        self._any = tuple(rule for rule in self.rules if rule.histologies is None)
        self._by_histology = {
            histology: tuple(r for r in self.rules if r.histologies is None or histology in r.histologies)
            for histology in histologies
        }

    def code(self, site: int, histology: int, behaviour: int) -> IcccCode | None:
        for rule in self._by_histology.get(histology, self._any):
            if (rule.sites is None or site in rule.sites) and (rule.behaviours is None or behaviour in rule.behaviours):
                return rule.code
        return None

    def code_text(self, topography: str, morphology: str, behaviour: int) -> IcccCode | None:
        """The same from the codes as written (`C71.6`, `9470`, 3)."""
        return self.code(site_of(topography), int(morphology), behaviour)


def _iccc_labels(path: Path) -> dict[str, tuple[str, str]]:
    """Extended recode -> (subgroup label, division label) from the labelled copy of the rules."""
    labels: dict[str, tuple[str, str]] = {}
    for row in _rows(path, "ext_recode", "iccc_subgroup", "iccc_division"):
        labels[row["ext_recode"]] = (row["iccc_subgroup"], row["iccc_division"])
    return labels


def _iccc_code(recode: str, extended: str, labels: dict[str, tuple[str, str]]) -> IcccCode | None:
    if recode == UNCLASSIFIED:
        return None
    try:
        subgroup, division = labels[extended]
    except KeyError:
        raise ReferenceDataError(f"no ICCC-3 label for extended recode {extended}") from None
    return IcccCode(
        main_group=subgroup.rstrip("abcdef"),
        subgroup=subgroup,
        division=division if "." in division else None,  # a subgroup without divisions repeats its label
        recode=recode,
        extended=extended,
    )


def load_iccc(directory: Path = DATA_DIR / "iccc3") -> IcccCoder:
    labels = _iccc_labels(directory / "iccc3_rules_labelled.csv")
    rules = []
    columns = ("ID", "Sites IN", "Hist IN", "Group code", "Group code extended", "Behavior IN")
    for row in _rows(directory / "seer_iccc3_iarc2017.csv", *columns):
        if not row["Group code"]:
            continue  # a heading row: its children carry the rules
        if row.get("Sites OUT") or row.get("Hist OUT"):
            raise ReferenceDataError(f"row {row['ID']}: exclusion ranges are not supported")
        rules.append(
            IcccRule(
                order=int(row["ID"]),
                sites=parse_ranges(row["Sites IN"], "C") if row["Sites IN"] else None,
                histologies=parse_ranges(row["Hist IN"]) if row["Hist IN"] else None,
                behaviours=parse_ranges(row["Behavior IN"]) if row["Behavior IN"] else None,
                code=_iccc_code(row["Group code"], row["Group code extended"] or UNCLASSIFIED, labels),
            )
        )
    return IcccCoder(rules)


# --------------------------------------------------------------------------------------- edit checks

_SEX_CODES = {"1": Sex.MALE, "2": Sex.FEMALE}


@dataclass(frozen=True, slots=True)
class SiteProfile:
    """IARC site/histology: the histology belongs in `sites` (`must`) or anywhere but (`must_not`)."""

    must: bool
    family: str
    family_name: str
    sites: frozenset[int]


@dataclass(frozen=True, slots=True)
class UnlikelyAge:
    iccc: str  # a subgroup (`IIa`) or division (`VIIa.1`) label
    ages: AgeRange
    diagnosis: str
    reason: str


@dataclass(frozen=True, slots=True)
class HistologyGroup:
    """IARC/IACR multiple-primary histology group."""

    number: int
    label: str
    same_as: frozenset[int]  # an unspecified group counts as the same as these specific ones
    site_independent: bool  # haematopoietic and Kaposi: one primary whatever the sites


@dataclass(frozen=True, slots=True)
class CheckTables:
    topographies: frozenset[int]
    behaviours_by_histology: dict[int, frozenset[int]]
    basis_labels: dict[int, str]
    age_by_histology: dict[int, Ages]
    age_by_site: dict[int, Ages]
    age_by_group_histology: dict[tuple[int, int], Ages]
    invalid_sex_groups: dict[Sex, frozenset[int]]
    rare_sex_histology: dict[tuple[Sex, int], frozenset[int]]  # -> behaviours
    rare_behaviour_groups: dict[int, frozenset[int]]  # behaviour -> site groups
    invalid_grades: dict[tuple[int, int], frozenset[int]]  # (behaviour, histology) -> grades
    basis_queries: frozenset[tuple[int, int]]  # (basis, histology)
    basis_site_queries: frozenset[tuple[int, int, int]]  # (basis, histology, site)
    site_profiles: dict[int, SiteProfile]
    unlikely_ages: dict[str, tuple[UnlikelyAge, ...]]
    site_groups: dict[str, str]  # C01 -> C02: topography groups the multiple-primary rules join
    histology_groups: dict[int, int]  # histology -> its multiple-primary group number
    groups: dict[int, HistologyGroup]  # by number


def _load_checks(data: Path, valid_sites: frozenset[int]) -> CheckTables:
    checks = data / "iarc_checks"

    topographies = {site_of(line) for line in _lines(data / "icdo3" / "topography_codes.txt")}
    topographies -= {int(row["Topography"]) for row in _rows(checks / "Topography_Invalid.csv", "Topography")}

    behaviours: defaultdict[int, set[int]] = defaultdict(set)
    for line in _lines(data / "icdo3" / "morphology_codes.txt"):
        histology, _, behaviour = line.partition("/")
        behaviours[int(histology)].add(int(behaviour))

    age_by_histology = _grouped(
        (int(r["Morphology"]), _age_range(r["Age"]))
        for r in _rows(checks / "AgeMorphology_Rare.csv", "Age", "Morphology")
    )
    age_by_site = _grouped(
        (int(r["Topography"]), _age_range(r["Age"]))
        for r in _rows(checks / "AgeTopography_Rare.csv", "Age", "Topography")
    )
    age_by_group_histology = _grouped(
        ((int(r["TopographyGroup"]), int(r["Morphology"])), _age_range(r["Age"]))
        for r in _rows(checks / "AgeTopographyMorphology_Rare.csv", "Age", "Morphology", "TopographyGroup")
    )

    invalid_sex: defaultdict[Sex, set[int]] = defaultdict(set)
    for row in _rows(checks / "SexTopography_Invalid.csv", "Sex", "TopographyGroup"):
        invalid_sex[_SEX_CODES[row["Sex"]]].add(int(row["TopographyGroup"]))
    rare_sex: defaultdict[tuple[Sex, int], set[int]] = defaultdict(set)
    for row in _rows(checks / "SexMorphology_Rare.csv", "Sex", "Morphology", "Behaviour"):
        rare_sex[_SEX_CODES[row["Sex"]], int(row["Morphology"])].add(int(row["Behaviour"]))
    rare_behaviour: defaultdict[int, set[int]] = defaultdict(set)
    for row in _rows(checks / "TopographyBehaviour_Rare.csv", "Behaviour", "TopographyGroup"):
        rare_behaviour[int(row["Behaviour"])].add(int(row["TopographyGroup"]))
    invalid_grades: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for row in _rows(checks / "Grade_Invalid.csv", "Behaviour", "Morphology", "Grade"):
        invalid_grades[int(row["Behaviour"]), int(row["Morphology"])].add(int(row["Grade"]))

    basis_queries = frozenset(
        (int(r["BasisDiagnosis"]), int(r["Morphology"]))
        for r in _rows(checks / "BasisMorphology_Query.csv", "BasisDiagnosis", "Morphology")
    )
    basis_site_queries = frozenset(
        (int(r["BasisDiagnosis"]), int(r["Morphology"]), int(r["Topography"]))
        for r in _rows(checks / "BasisMorphologyTopography_Query.csv", "BasisDiagnosis", "Morphology", "Topography")
    )

    histology_groups = _histology_groups(data / "iarc_mp" / "histology_groups.csv")
    return CheckTables(
        topographies=frozenset(topographies),
        behaviours_by_histology={h: frozenset(b) for h, b in behaviours.items()},
        basis_labels={
            int(r["code"]): r["label"] for r in _rows(data / "registry" / "basis_of_diagnosis.csv", "code", "label")
        },
        age_by_histology=age_by_histology,
        age_by_site=age_by_site,
        age_by_group_histology=age_by_group_histology,
        invalid_sex_groups={sex: frozenset(groups) for sex, groups in invalid_sex.items()},
        rare_sex_histology={key: frozenset(b) for key, b in rare_sex.items()},
        rare_behaviour_groups={b: frozenset(groups) for b, groups in rare_behaviour.items()},
        invalid_grades={key: frozenset(g) for key, g in invalid_grades.items()},
        basis_queries=basis_queries,
        basis_site_queries=basis_site_queries,
        site_profiles=_site_profiles(checks, valid_sites),
        unlikely_ages=_unlikely_ages(data / "registry" / "childhood_unlikely_ages.csv"),
        site_groups={
            member.strip(): row["site_group"]
            for row in _rows(data / "iarc_mp" / "site_groups.csv", "site_group", "topographies")
            for member in row["topographies"].split(",")
        },
        histology_groups={h: group.number for h, group in histology_groups.items()},
        groups={group.number: group for group in histology_groups.values()},
    )


def _site_profiles(checks: Path, valid_sites: frozenset[int]) -> dict[int, SiteProfile]:
    family_sites: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for row in _rows(checks / "SiteHistology_Topographies.csv", "Family", "SiteProfile", "Topography"):
        topography = row["Topography"]
        if topography.endswith("*"):  # C07* = every subsite of C07
            group = int(topography[1:3])
            sites = {site for site in valid_sites if site // 10 == group}
        else:
            sites = {site_of(topography)}
        family_sites[row["SiteProfile"], row["Family"]].update(sites)
    profiles = {}
    for row in _rows(checks / "SiteHistology_Families.csv", "Morphology", "SiteProfile", "Family", "FamilyName"):
        profile = row["SiteProfile"]
        if profile == "any":
            continue
        if profile not in ("must", "must_not"):
            raise ReferenceDataError(f"histology {row['Morphology']}: unknown site profile {profile!r}")
        key = (profile, row["Family"])
        if key not in family_sites:
            raise ReferenceDataError(f"histology {row['Morphology']}: no topographies for {profile} family {key[1]}")
        profiles[int(row["Morphology"])] = SiteProfile(
            must=profile == "must",
            family=row["Family"],
            family_name=row["FamilyName"],
            sites=frozenset(family_sites[key]),
        )
    return profiles


def _unlikely_ages(path: Path) -> dict[str, tuple[UnlikelyAge, ...]]:
    rules: defaultdict[str, list[UnlikelyAge]] = defaultdict(list)
    for row in _rows(path, "iccc", "age_from", "age_to", "diagnosis", "reason"):
        rule = UnlikelyAge(row["iccc"], (int(row["age_from"]), int(row["age_to"])), row["diagnosis"], row["reason"])
        rules[rule.iccc].append(rule)
    return {label: tuple(group) for label, group in rules.items()}


def _histology_groups(path: Path) -> dict[int, HistologyGroup]:
    groups: dict[int, HistologyGroup] = {}
    for row in _rows(path, "group", "label", "histologies", "same_as", "site_independent"):
        group = HistologyGroup(
            number=int(row["group"]),
            label=row["label"],
            same_as=parse_ranges(row["same_as"]),
            site_independent=row["site_independent"] == "yes",
        )
        for histology in parse_ranges(row["histologies"]):
            groups.setdefault(histology, group)  # first group listing a histology wins, as in the rules
    return groups


# ------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class ReferenceData:
    iccc: IcccCoder
    checks: CheckTables
    fingerprint: str  # of every data file: changes when any table does, so outcomes can be told apart


def load_reference(directory: Path = DATA_DIR) -> ReferenceData:
    checks = _load_checks(
        directory, frozenset(site_of(line) for line in _lines(directory / "icdo3" / "topography_codes.txt"))
    )
    return ReferenceData(iccc=load_iccc(directory / "iccc3"), checks=checks, fingerprint=_fingerprint(directory))


@functools.cache
def reference() -> ReferenceData:
    """The process's reference data, loaded on first use (services load it at start-up)."""
    return load_reference()


def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.suffix in (".csv", ".txt"):
            digest.update(path.relative_to(directory).as_posix().encode() + b"\x00" + path.read_bytes())
    return digest.hexdigest()[:16]


def _rows(path: Path, *required: str) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in required if name not in (reader.fieldnames or ())]
        if missing:
            raise ReferenceDataError(f"{path.name}: missing column(s) {', '.join(missing)}")
        for row in reader:
            yield {key: (value or "").strip() for key, value in row.items() if key is not None}


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _grouped(pairs: Iterable[tuple[K, AgeRange]]) -> dict[K, Ages]:
    grouped: defaultdict[K, set[int]] = defaultdict(set)
    for key, (low, high) in pairs:
        grouped[key].update(range(low, min(high, MAX_AGE) + 1))
    return {key: frozenset(ages) for key, ages in grouped.items()}
