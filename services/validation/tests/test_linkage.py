"""Tumour linkage and the duplicate check under the IARC/IACR multiple-primary rules."""

from __future__ import annotations

from datetime import date

import pytest

from services.validation.domain import assess, reference
from services.validation.domain.linkage import same_primary, site_group
from services.validation.storage import TumourLedger
from services.validation.tests.builders import case, diagnosis, known, treatment
from shared.events import Severity

TABLES = reference().checks


def group(histology: int) -> int | None:
    return TABLES.histology_groups.get(histology)


@pytest.mark.parametrize(
    ("topography", "group"),
    [("C71.6", "C71"), ("C40.2", "C41"), ("C41.0", "C41"), ("C01.9", "C02"), ("C19.9", "C20"), ("C66.9", "C68")],
)
def test_site_groups(topography: str, group: str) -> None:
    assert site_group(topography, TABLES) == group


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("C71", 9470), ("C71", 9471), True),  # both "other specified" (16), one site
        (("C71", 9470), ("C72", 9470), False),  # another site group
        (("C71", 8000), ("C71", 9470), True),  # unspecified (17) is the same as a specific type
        (("C41", 9260), ("C41", 9180), False),  # Ewing (16) and osteosarcoma (6): two primaries
        (("C42", 9811), ("C77", 9836), True),  # B-cell neoplasms: one, whatever the sites
        (("C42", 9861), ("C77", 9836), False),  # myeloid and B-cell: two
        (("C42", 9800), ("C77", 9861), True),  # unspecified haematopoietic goes with any of them
        (("C44", 9140), ("C49", 9140), True),  # Kaposi sarcoma: one, whatever the sites
        (("C71", 8010), ("C71", 8070), True),  # carcinoma NOS (5) and squamous (1)
        (("C71", 8070), ("C71", 8140), False),  # squamous and adenocarcinoma
    ],
)
def test_same_primary(a: tuple[str, int], b: tuple[str, int], same: bool) -> None:
    assert same_primary(a[0], group(a[1]), b[0], group(b[1]), TABLES) is same
    assert same_primary(b[0], group(b[1]), a[0], group(a[1]), TABLES) is same  # symmetric


def test_histologies_outside_the_groups_are_never_called_the_same() -> None:
    assert same_primary("C71", None, "C71", None, TABLES) is False


def test_a_second_form_for_the_same_primary_is_a_duplicate_query() -> None:
    second = diagnosis(tumour_ref="T2", topography="C71.9", morphology="9471")
    outcome = assess(case(second), [known("T1")], reference())
    [finding] = outcome.findings
    assert (finding.code, finding.severity) == ("DUPLICATE_TUMOUR", Severity.QUERY)
    assert "T1" in finding.message
    assert outcome.accepted and outcome.tumour is not None  # a query: accepted, flagged for review


def test_another_hospital_reporting_the_same_primary_is_a_duplicate() -> None:
    outcome = assess(case(diagnosis(), hospital_id="haukeland"), [known("T1", hospital_id="ous")], reference())
    assert [f.code for f in outcome.findings] == ["DUPLICATE_TUMOUR"]


def test_the_same_tumour_reported_again_is_a_correction_not_a_duplicate() -> None:
    corrected = diagnosis(diagnosis_date=date(2024, 1, 28))
    outcome = assess(case(corrected), [known("T1")], reference())
    assert outcome.findings == ()
    assert outcome.tumour is not None and outcome.tumour.diagnosis_date == date(2024, 1, 28)


def test_a_second_primary_is_not_a_duplicate() -> None:
    leukaemia = diagnosis(tumour_ref="T2", topography="C42.1", morphology="9836", grade=6)
    assert assess(case(leukaemia), [known("T1")], reference()).findings == ()


def test_ledger_keeps_the_latest_state_per_tumour() -> None:
    ledger = TumourLedger([("child-a", known("T1"))])
    assert [t.tumour_ref for t in ledger.of("child-a")] == ["T1"]
    assert ledger.of("child-b") == []
    later = known("T1", diagnosis_date=date(2024, 1, 1))
    ledger.remember("child-a", later)
    ledger.remember("child-a", known("T2"))
    assert {t.tumour_ref: t.diagnosis_date for t in ledger.of("child-a")} == {
        "T1": date(2024, 1, 1),
        "T2": date(2024, 2, 1),
    }


def test_treatment_links_to_the_tumour_remembered_earlier_in_the_stream() -> None:
    ledger = TumourLedger()
    first = assess(case(diagnosis()), ledger.of("child"), reference())
    assert first.tumour is not None
    ledger.remember("child", first.tumour)
    assert assess(case(treatment()), ledger.of("child"), reference()).findings == ()
