"""ICCC-3 coding against the SEER table (IARC 2017): its documented examples and properties over all codes."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.validation.domain import reference
from services.validation.domain.reference import DATA_DIR, IcccCoder, parse_ranges, site_of

CODER: IcccCoder = reference().iccc
TABLE = DATA_DIR / "iccc3" / "seer_iccc3_iarc2017.csv"


def recodes(topography: str, morphology: str, behaviour: int) -> tuple[str, str]:
    code = CODER.code_text(topography, morphology, behaviour)
    return (code.recode, code.extended) if code else ("999", "999")


# The examples Information Management Services test their parse of this very table with
# (imsweb/algorithms, IcccRecodeUtilsTest.testThirdEditionIarc2017Edition: site recode, extended recode).
@pytest.mark.parametrize(
    ("topography", "morphology", "behaviour", "recode", "extended"),
    [
        ("C18.2", "8000", 3, "122", "115"),
        ("C23.9", "8000", 3, "122", "115"),
        ("C23.9", "9673", 3, "022", "011"),
        ("C23.9", "9673", 1, "999", "999"),
        ("C70.0", "9080", 0, "101", "073"),
        ("C09.8", "9673", 3, "022", "011"),
        ("C23.9", "9140", 3, "093", "059"),
        ("C23.9", "9055", 3, "121", "113"),
        ("C00.8", "8000", 3, "122", "115"),
        ("C42.4", "9823", 3, "011", "002"),
        ("C80.9", "8000", 3, "122", "115"),
    ],
)
def test_documented_examples(topography: str, morphology: str, behaviour: int, recode: str, extended: str) -> None:
    assert recodes(topography, morphology, behaviour) == (recode, extended)


@pytest.mark.parametrize(
    ("topography", "morphology", "behaviour", "subgroup", "division"),
    [
        ("C71.6", "9470", 3, "IIIc", "IIIc.1"),  # medulloblastoma
        ("C72.3", "9380", 3, "IIIb", None),  # glioma of the optic nerve is an astrocytoma (row 33 first)
        ("C71.0", "9380", 3, "IIId", "IIId.2"),  # elsewhere in the brain, an unspecified glioma
        ("C71.0", "9421", 1, "IIIb", None),  # pilocytic astrocytoma, /1: group III takes behaviours 0 and 1
        ("C71.0", "9530", 0, "IIIe", "IIIe.5"),  # benign meningioma
        ("C75.3", "9080", 0, "Xa", "Xa.2"),  # pineal teratoma, benign: subgroup Xa takes 0 and 1 too
        ("C69.2", "9510", 3, "V", None),  # retinoblastoma: a main group without subgroups
        ("C64.9", "8960", 3, "VIa", "VIa.1"),  # nephroblastoma
        ("C74.9", "9500", 3, "IVa", None),  # neuroblastoma
        ("C42.1", "9811", 3, "Ia", "Ia.1"),  # precursor B-cell leukaemia in the marrow
        ("C77.0", "9811", 3, "IIb", "IIb.1"),  # the same histology in a lymph node is a lymphoma
        ("C40.2", "9260", 3, "VIIIc", "VIIIc.1"),  # Ewing sarcoma of bone
        ("C49.2", "9260", 3, "IXd", "IXd.1"),  # ... and of soft tissue
    ],
)
def test_labels(topography: str, morphology: str, behaviour: int, subgroup: str, division: str | None) -> None:
    code = CODER.code_text(topography, morphology, behaviour)
    assert code is not None
    assert (code.subgroup, code.division) == (subgroup, division)
    assert code.main_group == subgroup.rstrip("abcdef")


@pytest.mark.parametrize(
    ("topography", "morphology", "behaviour"),
    [
        ("C74.9", "9500", 0),  # benign outside groups III and Xa: not classified
        ("C71.6", "9470", 2),  # in situ: never classified
        ("C34.1", "8090", 3),  # basal cell carcinoma of the lung: no row
        ("C64.9", "9470", 6),  # metastatic behaviour is not a registration code
    ],
)
def test_unclassified(topography: str, morphology: str, behaviour: int) -> None:
    assert CODER.code_text(topography, morphology, behaviour) is None


# ------------------------------------------------------------------------ properties against the table


def _naive_rules() -> list[tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]], str]]:
    """The table read the slow, obvious way: ranges kept as (low, high) pairs, rows in ID order."""

    def pairs(text: str, prefix: str = "") -> list[tuple[int, int]]:
        result = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            low, _, high = item.partition("-")
            result.append((int(low.removeprefix(prefix)), int((high or low).removeprefix(prefix))))
        return result

    rules = []
    with TABLE.open(newline="") as handle:
        for row in sorted(csv.DictReader(handle), key=lambda r: int(r["ID"])):
            if row["Group code"]:
                rules.append(
                    (
                        pairs(row["Sites IN"], "C"),
                        pairs(row["Hist IN"]),
                        pairs(row["Behavior IN"]),
                        row["Group code"] + "/" + (row["Group code extended"] or "999"),
                    )
                )
    return rules


NAIVE = _naive_rules()
TABLE_HISTOLOGIES = sorted(set().union(*(rule.histologies or () for rule in CODER.rules)))


def naive_code(site: int, histology: int, behaviour: int) -> str:
    def inside(value: int, ranges: list[tuple[int, int]]) -> bool:
        return not ranges or any(low <= value <= high for low, high in ranges)

    for sites, histologies, behaviours, code in NAIVE:
        if inside(site, sites) and inside(histology, histologies) and inside(behaviour, behaviours):
            return code
    return "999/999"


sites = st.integers(min_value=0, max_value=809)
histologies = st.one_of(st.sampled_from(TABLE_HISTOLOGIES), st.integers(min_value=8000, max_value=9999))
behaviours = st.sampled_from([0, 1, 2, 3, 6, 9])


@settings(max_examples=1500, deadline=None)
@given(site=sites, histology=histologies, behaviour=behaviours)
def test_the_compiled_coder_is_the_table_read_naively(site: int, histology: int, behaviour: int) -> None:
    code = CODER.code(site, histology, behaviour)
    assert (f"{code.recode}/{code.extended}" if code else "999/999") == naive_code(site, histology, behaviour)


@settings(max_examples=500, deadline=None)
@given(site=sites, histology=histologies, behaviour=behaviours)
def test_behaviour_rules(site: int, histology: int, behaviour: int) -> None:
    code = CODER.code(site, histology, behaviour)
    if behaviour not in (0, 1, 3):
        assert code is None  # in situ, metastatic or uncertain-whether: never classified
    elif behaviour in (0, 1) and code is not None:
        assert code.main_group == "III" or code.subgroup == "Xa"


@settings(max_examples=500, deadline=None)
@given(site=sites, histology=histologies)
def test_labels_agree_with_the_seer_recode(site: int, histology: int) -> None:
    code = CODER.code(site, histology, 3)
    if code is not None:
        roman = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
        assert roman.index(code.main_group) + 1 == int(code.recode[:2])
        assert code.division is None or code.division.startswith(code.subgroup + ".")


def test_the_labelled_copy_holds_the_same_rules() -> None:
    with (DATA_DIR / "iccc3" / "iccc3_rules_labelled.csv").open(newline="") as handle:
        labelled = {int(row["rule_order"]): row for row in csv.DictReader(handle)}
    assert {rule.order for rule in CODER.rules} == set(labelled)
    for rule in CODER.rules:
        row = labelled[rule.order]
        assert rule.histologies == (parse_ranges(row["hist_in"]) if row["hist_in"] else None)
        assert rule.sites == (parse_ranges(row["site_in"], "C") if row["site_in"] else None)
        assert (rule.code.extended if rule.code else "999") == row["ext_recode"]


def test_site_numbers() -> None:
    assert site_of("C71.6") == 716
    assert site_of("C00.0") == 0
    assert site_of("C80.9") == 809
