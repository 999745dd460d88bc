"""The synthetic submission generator: reproducible, valid, realistic, and erroneous exactly where labelled.

Code and check tests read the project's copy of the public reference tables (services/validation/data,
with their licences) through a small independent implementation of the lookups, so the case mix is held
to the same tables validation uses.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import typer
from pydantic import TypeAdapter
from typer.testing import CliRunner

from deploy.cli.generate import generate as generate_command
from deploy.synthetic import ErrorClass, GeneratorConfig, Item, Kind, generate
from deploy.synthetic.casemix import AGE_BANDS, default_casemix, load_casemix
from deploy.synthetic.generator import NONEXISTENT_MORPHOLOGIES, NONEXISTENT_TOPOGRAPHIES, REFUSED_BY_INTAKE
from deploy.synthetic.identity import IdentityFactory, decode, synthetic_number
from deploy.synthetic.streaming import Pace, StreamError, post_http, produce_kafka, request_for
from shared.events.forms import Form
from shared.events.submissions import HospitalSubmission
from shared.hospitals import BY_ID
from shared.settings import REPO_ROOT, KafkaSettings

REFERENCE = REPO_ROOT / "services" / "validation" / "data"
FORM = TypeAdapter(Form)
DIAGNOSIS_ERRORS = {
    ErrorClass.INVALID_TOPOGRAPHY,
    ErrorClass.INVALID_MORPHOLOGY,
    ErrorClass.SEX_SITE,
    ErrorClass.AGE_OVER_18,
    ErrorClass.DIAGNOSIS_BEFORE_BIRTH,
    ErrorClass.GRADE_HISTOLOGY,
    ErrorClass.AGE_HISTOLOGY,
    ErrorClass.SEX_IDENTITY,
}


# -- samples --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big() -> list[Item]:
    """About 20,000 children over five years, every kind of extra at a share large enough to measure."""
    config = GeneratorConfig(
        seed=11,
        start_year=2015,
        years=5,
        cases_per_year=4000,
        error_share=0.08,
        late_share=0.05,
        correction_share=0.05,
        reservation_share=0.05,
    )
    return list(generate(config))


@pytest.fixture(scope="module")
def long_run() -> list[Item]:
    """Eight years of clean reports: the early cases have all their follow-ups due."""
    config = GeneratorConfig(
        seed=5, start_year=2010, years=8, cases_per_year=1500, error_share=0, late_share=0, correction_share=0
    )
    return list(generate(config))


def submissions(items: list[Item]) -> list[Item]:
    return [item for item in items if item.kind is Kind.SUBMISSION]


def form(item: Item) -> dict[str, Any]:
    return item.payload["form"]


def first_diagnoses(items: list[Item]) -> dict[tuple[str, str], Item]:
    """Each child's tumour by (hospital, tumour ref): its first valid diagnosis form."""
    found: dict[tuple[str, str], Item] = {}
    for item in submissions(items):
        if form(item)["form_type"] == "diagnosis" and item.intended_error is None:
            found.setdefault((item.hospital_id, form(item)["tumour_ref"]), item)
    return found


def age_at(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def stream_bytes(config: GeneratorConfig) -> bytes:
    return b"".join(item.to_json_line() for item in generate(config))


# -- reproducibility and order --------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() -> None:
    config = GeneratorConfig(seed=42, years=2, cases_per_year=150)
    first = stream_bytes(config)
    assert first == stream_bytes(config)
    assert first != stream_bytes(GeneratorConfig(seed=43, years=2, cases_per_year=150))


def test_output_does_not_depend_on_the_process_or_its_hash_seed() -> None:
    code = (
        "import hashlib, sys\n"
        "from deploy.synthetic import GeneratorConfig, generate\n"
        "digest = hashlib.sha256()\n"
        "for item in generate(GeneratorConfig(seed=42, years=2, cases_per_year=150)):\n"
        "    digest.update(item.to_json_line())\n"
        "sys.stdout.write(digest.hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, check=True)
    here = hashlib.sha256(stream_bytes(GeneratorConfig(seed=42, years=2, cases_per_year=150))).hexdigest()
    assert other.stdout.decode() == here


def test_items_come_in_time_order_within_the_period(big: list[Item]) -> None:
    made = [item.made_at for item in big]
    assert made == sorted(made)
    assert datetime(2015, 1, 1, tzinfo=UTC) <= made[0] and made[-1] <= datetime(2020, 1, 1, tzinfo=UTC)
    for item in big[:2000]:
        stamp = item.payload["made_at" if item.kind is Kind.SUBMISSION else "at"]
        assert datetime.fromisoformat(stamp) == item.made_at


def test_nothing_is_made_after_now_and_only_due_follow_ups_are_sent() -> None:
    now = datetime(2021, 6, 30, 12, tzinfo=UTC)
    items = list(generate(GeneratorConfig(seed=3, start_year=2015, years=6, cases_per_year=300, now=now)))
    assert items and max(item.made_at for item in items) <= now
    diagnoses = first_diagnoses(items)
    for item in submissions(items):
        if form(item)["form_type"] == "follow_up" and item.intended_error is None:
            diagnosed = date.fromisoformat(
                form(diagnoses[item.hospital_id, form(item)["tumour_ref"]])["diagnosis_date"]
            )
            assert diagnosed + timedelta(days=365) <= item.made_at.date() <= now.date()


# -- identity numbers -----------------------------------------------------------------------------------


def control_digits(first9: str) -> str | None:
    """The two mod-11 control digits, computed here independently of the generator and of stdnum."""
    k1 = (11 - sum(w * int(d) for w, d in zip((3, 7, 6, 1, 8, 9, 4, 5, 2), first9, strict=True)) % 11) % 11
    if k1 == 10:
        return None
    digits = first9 + str(k1)
    k2 = (11 - sum(w * int(d) for w, d in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), digits, strict=True)) % 11) % 11
    return None if k2 == 10 else f"{k1}{k2}"


def test_every_identity_number_is_a_valid_synthetic_number_matching_the_child(big: list[Item]) -> None:
    for item in big:
        number = (
            item.payload["national_id"] if item.kind is Kind.RESERVATION else item.payload["patient"]["national_id"]
        )
        assert len(number) == 11 and number.isdigit()
        assert control_digits(number[:9]) == number[9:]
        assert 81 <= int(number[2:4]) <= 92  # month + 80: never a real person
        birth, male = decode(number)
        assert male == (int(number[8]) % 2 == 1)
        individual = int(number[6:9])
        assert individual < 500 if birth.year < 2000 else individual >= 500  # the century's range
        if item.kind is Kind.SUBMISSION and form(item)["form_type"] == "diagnosis" and item.intended_error is None:
            diagnosed = date.fromisoformat(form(item)["diagnosis_date"])
            assert form(item)["sex"] == ("male" if male else "female")
            assert 0 <= age_at(birth, diagnosed) <= 17
    children = {item.payload["patient"]["national_id"] for item in first_diagnoses(big).values()}
    assert len(children) == len(first_diagnoses(big))  # one number per child, never reused


def test_synthetic_numbers_follow_the_century_and_sex_rules() -> None:
    number = synthetic_number(date(2012, 5, 17), True, 501)
    assert number is None or (number.startswith("178512501") and decode(number) == (date(2012, 5, 17), True))
    with pytest.raises(ValueError, match="odd for males"):
        synthetic_number(date(2012, 5, 17), True, 500)
    with pytest.raises(ValueError, match="does not fit"):
        synthetic_number(date(1995, 5, 17), False, 600)
    factory = IdentityFactory(__import__("random").Random(1))
    numbers = [factory.new(date(1999, 12, 31), False) for _ in range(200)]
    assert len(set(numbers)) == 200
    assert all(decode(n) == (date(1999, 12, 31), False) and int(n[6:9]) < 500 for n in numbers)
    with pytest.raises(ValueError, match="control digit"):
        decode(numbers[0][:10] + str((int(numbers[0][10]) + 1) % 10))


# -- the forms ------------------------------------------------------------------------------------------


def test_every_payload_has_the_api_shape_and_every_form_passes_the_shared_models(big: list[Item]) -> None:
    for item in big:
        if item.kind is Kind.RESERVATION:
            assert set(item.payload) == {"national_id", "action", "at"}
            assert item.payload["action"] in {"register", "withdraw"}
            continue
        payload = item.payload
        fields = ["submission_id", "hospital_id", "form_version", "made_at", "patient", "form"]
        assert list(payload) == fields + (["corrects"] if "corrects" in payload else [])
        HospitalSubmission.from_json(orjson.dumps(payload))  # intake's request body, decoded strictly
        assert uuid.UUID(payload["submission_id"]).version == 4
        assert payload["hospital_id"] == item.hospital_id and item.hospital_id in BY_ID
        assert payload["form_version"] == 1 and set(payload["patient"]) == {"national_id"}
        # Strict JSON decoding, as intake's API does it, and nothing lost or added on the way.
        model = FORM.validate_json(orjson.dumps(payload["form"]), strict=True)
        assert model.model_dump(mode="json") == payload["form"]
    assert len({item.payload["submission_id"] for item in submissions(big)}) == len(submissions(big))


def test_reports_are_dated_in_order_unless_labelled_otherwise(big: list[Item]) -> None:
    diagnoses = first_diagnoses(big)
    for item in submissions(big):
        if item.intended_error is not None:
            continue
        body = form(item)
        first = diagnoses[item.hospital_id, body["tumour_ref"]]
        diagnosed = date.fromisoformat(form(first)["diagnosis_date"])
        birth, _ = decode(item.payload["patient"]["national_id"])
        assert item.made_at >= first.made_at  # nothing before the tumour's diagnosis report
        match body["form_type"]:
            case "diagnosis":
                assert birth <= date.fromisoformat(body["diagnosis_date"]) <= item.made_at.date()
            case "treatment":
                start = date.fromisoformat(body["start_date"])
                assert diagnosed <= start <= item.made_at.date()
                assert body["end_date"] is None or start <= date.fromisoformat(body["end_date"]) <= item.made_at.date()
            case "follow_up":
                assert diagnosed <= date.fromisoformat(body["last_contact_date"]) <= item.made_at.date()
                if body["vital_status"] == "dead":
                    assert diagnosed <= date.fromisoformat(body["death_date"]) <= item.made_at.date()
                if body["relapse"] is not None:
                    assert diagnosed < date.fromisoformat(body["relapse"]["relapse_date"])


def test_follow_ups_come_at_one_three_and_five_years_and_stop_after_a_death(long_run: list[Item]) -> None:
    diagnoses = first_diagnoses(long_run)
    follow_ups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for item in submissions(long_run):
        if form(item)["form_type"] == "follow_up":
            key = item.hospital_id, form(item)["tumour_ref"]
            diagnosed = date.fromisoformat(form(diagnoses[key])["diagnosis_date"])
            years = (item.made_at.date() - diagnosed).days / 365.25
            assert any(k - 0.01 <= years <= k + 0.15 for k in (1, 3, 5)), years
            follow_ups[key].append(form(item))
    for reports in follow_ups.values():
        statuses = [report["vital_status"] for report in reports]
        assert "dead" not in statuses[:-1] and len(reports) <= 3
    # Children diagnosed in the first two years have every follow-up due: about 85 % survive five years.
    early = [key for key, item in diagnoses.items() if item.made_at.year < 2012]
    died = sum(1 for key in early if follow_ups[key] and follow_ups[key][-1]["vital_status"] == "dead")
    relapsed = sum(1 for key in early if any(report["relapse"] for report in follow_ups[key]))
    assert len(early) > 2500
    assert 0.11 <= died / len(early) <= 0.19
    assert 0.08 <= relapsed / len(early) <= 0.22
    assert all(len(follow_ups[key]) == 3 or follow_ups[key][-1]["vital_status"] == "dead" for key in early)


def test_treatments_are_mostly_chemotherapy_with_every_modality_present(big: list[Item]) -> None:
    modalities: dict[tuple[str, str], set[str]] = defaultdict(set)
    for item in submissions(big):
        if form(item)["form_type"] == "treatment" and item.intended_error is None:
            modalities[item.hospital_id, form(item)["tumour_ref"]].add(form(item)["modality"])
    counts = Counter(modality for found in modalities.values() for modality in found)
    cases = len(first_diagnoses(big))
    assert 0.6 <= counts["chemotherapy"] / cases <= 0.85
    assert 0.25 <= counts["surgery"] / cases <= 0.55
    assert 0.1 <= counts["radiotherapy"] / cases <= 0.3
    assert 0.02 <= counts["stem_cell_transplant"] / cases <= 0.1


# -- realism --------------------------------------------------------------------------------------------


def test_case_mix_hospitals_sex_and_age_look_like_childhood_cancer(big: list[Item], iccc: Recoder) -> None:
    diagnoses = [form(item) for item in first_diagnoses(big).values()]
    assert len(diagnoses) > 19_000
    groups = Counter(iccc.group(d["topography"], d["morphology"], d["behaviour"]) for d in diagnoses)
    share = {group: count / len(diagnoses) for group, count in groups.items()}
    assert 0.28 <= share["I"] <= 0.38  # leukaemias
    assert 0.20 <= share["III"] <= 0.30  # CNS tumours
    assert 0.07 <= share["II"] <= 0.14  # lymphomas
    assert 0.04 <= share["IV"] <= 0.08 and 0.02 <= share["V"] <= 0.045 and 0.035 <= share["VI"] <= 0.065
    assert all(0.005 <= share[group] <= 0.07 for group in ("VII", "VIII", "IX", "X", "XI"))
    subgroups = Counter(iccc.subgroup(d["topography"], d["morphology"], d["behaviour"]) for d in diagnoses)
    assert subgroups["Ia"] > 3 * subgroups["Ib"]  # ALL dominates AML

    hospitals = Counter(item.hospital_id for item in first_diagnoses(big).values())
    for hospital, expected in {"ous": 0.55, "haukeland": 0.20, "st-olav": 0.15, "unn": 0.10}.items():
        assert abs(hospitals[hospital] / len(diagnoses) - expected) < 0.02

    boys = sum(1 for d in diagnoses if d["sex"] == "male")
    assert 1.1 <= boys / (len(diagnoses) - boys) <= 1.35

    ages = Counter(
        age_at(decode(item.payload["patient"]["national_id"])[0], date.fromisoformat(form(item)["diagnosis_date"]))
        for item in first_diagnoses(big).values()
    )
    assert min(ages) >= 0 and max(ages) <= 17
    assert 0.30 <= sum(ages[age] for age in range(5)) / len(diagnoses) <= 0.42
    assert ages[0] / len(diagnoses) >= 0.05  # infants
    per_year = {band: sum(ages[a] for a in range(*band)) / (band[1] - band[0]) for band in AGE_BANDS}
    assert per_year[1, 5] > per_year[5, 10] and per_year[1, 5] > per_year[10, 15]  # the early peak
    assert per_year[15, 18] > per_year[10, 15] and per_year[15, 18] > per_year[5, 10]  # the adolescent rise
    by_group_age: dict[str, list[int]] = defaultdict(list)
    for item in first_diagnoses(big).values():
        d = form(item)
        age = age_at(decode(item.payload["patient"]["national_id"])[0], date.fromisoformat(d["diagnosis_date"]))
        by_group_age[iccc.subgroup(d["topography"], d["morphology"], d["behaviour"]) or "?"].append(age)
    assert max(by_group_age["V"]) <= 5  # retinoblastoma: the very young
    assert sorted(by_group_age["IVa"])[len(by_group_age["IVa"]) // 2] <= 2  # neuroblastoma: infants
    assert sorted(by_group_age["IIa"])[len(by_group_age["IIa"]) // 2] >= 14  # Hodgkin: adolescents


def test_shares_of_errors_late_reports_corrections_and_reservations_are_as_configured(big: list[Item]) -> None:
    sent = submissions(big)
    by_id = {item.payload["submission_id"]: item for item in sent}
    erroneous = [item for item in sent if item.intended_error is not None]
    assert 0.075 <= len(erroneous) / len(sent) <= 0.085
    classes = Counter(item.intended_error for item in erroneous)
    assert set(classes) == set(ErrorClass) and min(classes.values()) >= 100

    originals = [item for item in sent if item.intended_error is None and item.corrects is None]
    originals += [item for item in sent if item.corrects and by_id[item.corrects].intended_error is not None]
    assert 0.04 <= sum(item.late for item in originals) / len(originals) <= 0.06

    corrections = [item for item in sent if item.corrects and by_id[item.corrects].intended_error is None]
    correctable = [item for item in originals if form(item)["form_type"] in {"diagnosis", "treatment"}]
    assert 0.04 <= len(corrections) / len(correctable) <= 0.055

    children = {item.payload["patient"]["national_id"] for item in first_diagnoses(big).values()}
    reservations = [item for item in big if item.kind is Kind.RESERVATION]
    registered = {item.payload["national_id"] for item in reservations if item.payload["action"] == "register"}
    # A family may reserve before the first report: near the end of the period that report is not due yet.
    unreported = [item.made_at for item in reservations if item.payload["national_id"] in registered - children]
    assert len(unreported) < 0.05 * len(registered)
    assert all(made_at > datetime(2019, 1, 1, tzinfo=UTC) for made_at in unreported)
    assert 0.04 <= len(registered) / len(children) <= 0.055
    reported = {item.payload["patient"]["national_id"]: item.made_at for item in first_diagnoses(big).values()}
    now = datetime(2020, 1, 1, tzinfo=UTC)
    early = [
        item
        for item in reservations
        if item.payload["action"] == "register" and item.made_at < reported.get(item.payload["national_id"], now)
    ]
    assert 0.3 <= len(early) / len(registered) <= 0.5  # some before the first report, most after
    withdrawn = [item for item in reservations if item.payload["action"] == "withdraw"]
    assert withdrawn and all(item.payload["national_id"] in registered for item in withdrawn)


def test_zero_shares_give_clean_on_time_reports_only() -> None:
    config = GeneratorConfig(seed=9, years=3, error_share=0, late_share=0, correction_share=0, reservation_share=0)
    items = list(generate(config))
    assert items and all(item.kind is Kind.SUBMISSION for item in items)
    assert not any(item.intended_error or item.corrects or item.late for item in items)


def test_corrections_and_resends_follow_the_form_they_replace_with_a_field_changed(big: list[Item]) -> None:
    seen: dict[str, Item] = {}
    replacements: Counter[str] = Counter()
    for item in submissions(big):
        if item.corrects is not None:
            replaced = seen[item.corrects]  # already sent
            assert replaced.hospital_id == item.hospital_id
            assert form(replaced)["tumour_ref"] == form(item)["tumour_ref"]
            assert form(replaced)["form_type"] == form(item)["form_type"]
            assert form(replaced).get("modality") == form(item).get("modality")
            assert form(replaced) != form(item)
            replacements[form(item)["form_type"]] += 1
            # Named in the message, as intake requires of treatment and follow-up reports; not what intake
            # refused (it was never registered).
            refused = replaced.intended_error in REFUSED_BY_INTAKE
            assert item.payload.get("corrects") == (None if refused else item.corrects)
        else:
            assert "corrects" not in item.payload
        seen[item.payload["submission_id"]] = item
    assert sum(replacements.values()) > 1000
    assert min(replacements.values()) > 100, replacements  # diagnoses, treatments, follow-ups alike


def test_a_corrected_report_is_corrected_once_and_in_order(big: list[Item]) -> None:
    """What intake requires of `corrects`: an earlier form of the hospital, tumour and form type that no
    other form corrects yet."""
    sent: dict[str, Item] = {}
    corrected: set[str] = set()
    for item in submissions(big):
        named = item.payload.get("corrects")
        if named is not None:
            assert named in sent and named not in corrected
            assert sent[named].made_at <= item.made_at
            corrected.add(named)
        sent[item.payload["submission_id"]] = item


# -- codes and checks against the reference tables ------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def in_ranges(value: str, spec: str) -> bool:
    for part in spec.split(","):
        low, _, high = part.partition("-")
        if low <= value <= (high or low):
            return True
    return False


@dataclass
class Recoder:
    """The SEER ICCC-3 recode (first matching rule wins), from the reference table."""

    rules: list[dict[str, str]]
    known: dict[tuple[str, str, int], str | None] = field(default_factory=dict)

    def subgroup(self, topography: str, morphology: str, behaviour: int) -> str | None:
        key = topography, morphology, behaviour
        if key not in self.known:
            self.known[key] = self._match(topography.replace(".", ""), morphology, behaviour)
        return self.known[key]

    def _match(self, site: str, morphology: str, behaviour: int) -> str | None:
        for rule in self.rules:
            if (
                in_ranges(site, rule["site_in"])
                and not (rule["site_out"] and in_ranges(site, rule["site_out"]))
                and in_ranges(morphology, rule["hist_in"])
                and not (rule["hist_out"] and in_ranges(morphology, rule["hist_out"]))
                and in_ranges(str(behaviour), rule["behaviour_in"] or "3")
            ):
                return rule["iccc_subgroup"]
        return None

    def group(self, topography: str, morphology: str, behaviour: int) -> str | None:
        subgroup = self.subgroup(topography, morphology, behaviour)
        return subgroup.rstrip("abcdef") if subgroup else None


class Checks:
    """The IARC/IACR check tables as lookups: which checks a diagnosis form trips for a given child."""

    def __init__(self, root: Path) -> None:
        checks = root / "iarc_checks"

        def ages(text: str) -> tuple[int, int]:
            low, high = text.split("-")
            return int(low), int(high)

        self.topographies = set((root / "icdo3" / "topography_codes.txt").read_text().split())
        self.morphologies = set((root / "icdo3" / "morphology_codes.txt").read_text().split())
        self.invalid_sites = {r["Topography"] for r in read_csv(checks / "Topography_Invalid.csv")}
        self.age_morphology = [(ages(r["Age"]), r["Morphology"]) for r in read_csv(checks / "AgeMorphology_Rare.csv")]
        self.age_site = [(ages(r["Age"]), r["Topography"]) for r in read_csv(checks / "AgeTopography_Rare.csv")]
        self.age_site_morphology: dict[str, list[tuple[tuple[int, int], str]]] = defaultdict(list)
        for r in read_csv(checks / "AgeTopographyMorphology_Rare.csv"):
            self.age_site_morphology[r["Morphology"]].append((ages(r["Age"]), r["TopographyGroup"].strip()))
        self.sex_morphology = {
            (r["Sex"], r["Morphology"], r["Behaviour"]) for r in read_csv(checks / "SexMorphology_Rare.csv")
        }
        self.sex_site = {(r["Sex"], r["TopographyGroup"]) for r in read_csv(checks / "SexTopography_Invalid.csv")}
        self.site_behaviour = {
            (r["Behaviour"], r["TopographyGroup"]) for r in read_csv(checks / "TopographyBehaviour_Rare.csv")
        }
        self.grades = {(r["Behaviour"], r["Morphology"], r["Grade"]) for r in read_csv(checks / "Grade_Invalid.csv")}
        self.basis = {(r["BasisDiagnosis"], r["Morphology"]) for r in read_csv(checks / "BasisMorphology_Query.csv")}
        self.basis_site = {
            (r["BasisDiagnosis"], r["Morphology"], r["Topography"])
            for r in read_csv(checks / "BasisMorphologyTopography_Query.csv")
        }
        self.families = {
            r["Morphology"]: (r["SiteProfile"], r["Family"]) for r in read_csv(checks / "SiteHistology_Families.csv")
        }
        self.family_sites: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in read_csv(checks / "SiteHistology_Topographies.csv"):
            self.family_sites[r["SiteProfile"], r["Family"]].append(r["Topography"])

    def tripped(self, d: dict[str, Any], birth: date, male: bool) -> set[str]:
        """Names of the checks tripped, named as the ErrorClass values where one stands for the check."""
        found = set()
        topography, morphology, behaviour = d["topography"], d["morphology"], str(d["behaviour"])
        site3, site2 = topography[1:].replace(".", ""), topography[1:3]
        sex = "1" if male else "2"
        age = age_at(birth, date.fromisoformat(d["diagnosis_date"]))
        if topography not in self.topographies or site3 in self.invalid_sites:
            found.add(ErrorClass.INVALID_TOPOGRAPHY.value)
        if f"{morphology}/{behaviour}" not in self.morphologies:
            found.add(ErrorClass.INVALID_MORPHOLOGY.value)
        if (sex, site2) in self.sex_site or (sex, morphology, behaviour) in self.sex_morphology:
            found.add(ErrorClass.SEX_SITE.value)
        if (d["sex"] == "male") != male:
            found.add(ErrorClass.SEX_IDENTITY.value)
        if age >= 18:
            found.add(ErrorClass.AGE_OVER_18.value)
        if date.fromisoformat(d["diagnosis_date"]) < birth:
            found.add(ErrorClass.DIAGNOSIS_BEFORE_BIRTH.value)
        if (
            any(low <= age <= high and m == morphology for (low, high), m in self.age_morphology)
            or any(low <= age <= high and s == site3 for (low, high), s in self.age_site)
            or any(
                low <= age <= high and group in (site2, site3)
                for (low, high), group in self.age_site_morphology.get(morphology, ())
            )
        ):
            found.add(ErrorClass.AGE_HISTOLOGY.value)
        if (behaviour, morphology, str(d["grade"])) in self.grades:
            found.add(ErrorClass.GRADE_HISTOLOGY.value)
        if (behaviour, site2) in self.site_behaviour:
            found.add("topography_behaviour")
        if (str(d["basis"]), morphology) in self.basis or (str(d["basis"]), morphology, site3) in self.basis_site:
            found.add("basis")
        profile = self.families.get(morphology)
        if profile and profile[0] != "any":
            inside = any(
                topography.startswith(p[:-1]) if p.endswith("*") else topography == p
                for p in self.family_sites[profile]
            )
            if inside != (profile[0] == "must"):
                found.add("site_histology")
        return found


@pytest.fixture(scope="module")
def reference() -> Path:
    return REFERENCE


@pytest.fixture(scope="module")
def checks(reference: Path) -> Checks:
    return Checks(reference)


@pytest.fixture(scope="module")
def iccc(reference: Path) -> Recoder:
    return Recoder(read_csv(reference / "iccc3" / "iccc3_rules_labelled.csv"))


def test_every_case_mix_row_is_coded_as_its_iccc3_subgroup_with_valid_codes(iccc: Recoder, checks: Checks) -> None:
    for tumour in default_casemix():
        assert f"{tumour.morphology}/{tumour.behaviour}" in checks.morphologies, tumour.label
        for topography in tumour.topographies:
            assert topography in checks.topographies, (tumour.label, topography)
            assert iccc.subgroup(topography, tumour.morphology, tumour.behaviour) == tumour.iccc_subgroup, tumour.label
        if tumour.invalid_grade is not None:
            assert (str(tumour.behaviour), tumour.morphology, str(tumour.invalid_grade)) in checks.grades


def test_the_non_existent_codes_really_do_not_exist(checks: Checks) -> None:
    assert not set(NONEXISTENT_TOPOGRAPHIES) & checks.topographies
    assert not any(code.startswith(NONEXISTENT_MORPHOLOGIES) for code in checks.morphologies)


def test_every_generated_code_is_in_the_icdo3_lists_unless_it_is_meant_to_be_invalid(
    big: list[Item], checks: Checks
) -> None:
    invalid = {ErrorClass.INVALID_TOPOGRAPHY, ErrorClass.INVALID_MORPHOLOGY}
    for item in submissions(big):
        body = form(item)
        if body["form_type"] == "diagnosis" and item.intended_error not in invalid:
            assert body["topography"] in checks.topographies
            assert f"{body['morphology']}/{body['behaviour']}" in checks.morphologies
        if body["form_type"] == "follow_up" and body["relapse"]:
            assert body["relapse"]["site"] in checks.topographies


def test_valid_diagnoses_trip_no_check_and_erroneous_ones_trip_their_own(big: list[Item], checks: Checks) -> None:
    tripped_by: dict[ErrorClass, Counter[str]] = defaultdict(Counter)
    for item in submissions(big):
        if form(item)["form_type"] != "diagnosis":
            continue
        birth, male = decode(item.payload["patient"]["national_id"])
        found = checks.tripped(form(item), birth, male)
        if item.intended_error is None:
            assert not found, (form(item), found)
        else:
            assert item.intended_error in DIAGNOSIS_ERRORS
            assert item.intended_error.value in found, (item.intended_error, form(item))
            tripped_by[item.intended_error].update(found - {item.intended_error.value})
    # An invalid code may also fail the site/histology profile; every other error trips its check only.
    precise = DIAGNOSIS_ERRORS - {ErrorClass.INVALID_TOPOGRAPHY, ErrorClass.INVALID_MORPHOLOGY}
    assert {error: tripped_by[error] for error in precise if tripped_by[error]} == {}


def test_treatment_and_follow_up_errors_are_what_their_labels_say(big: list[Item]) -> None:
    diagnoses = first_diagnoses(big)
    for item in submissions(big):
        body, error = form(item), item.intended_error
        if error is None or error in DIAGNOSIS_ERRORS:
            continue
        key = item.hospital_id, body["tumour_ref"]
        if error is ErrorClass.UNKNOWN_TUMOUR:
            assert key not in diagnoses and body["form_type"] in {"treatment", "follow_up"}
            continue
        diagnosed = date.fromisoformat(form(diagnoses[key])["diagnosis_date"])
        if error is ErrorClass.TREATMENT_BEFORE_DIAGNOSIS:
            assert date.fromisoformat(body["start_date"]) < diagnosed
        else:
            assert error is ErrorClass.DEATH_BEFORE_DIAGNOSIS
            assert body["vital_status"] == "dead" and date.fromisoformat(body["death_date"]) < diagnosed


def test_validation_accepts_every_valid_form_and_rejects_every_labelled_one() -> None:
    """The stream through validation's own checks (`registry check`): the contract between them."""
    from services.validation.batch import check_lines
    from services.validation.domain.reference import load_reference

    config = GeneratorConfig(seed=8, years=3, cases_per_year=250, error_share=0.15, correction_share=0.1)
    sent = submissions(list(generate(config)))
    assert {item.intended_error for item in sent} >= set(ErrorClass)
    lines = check_lines([orjson.dumps(item.payload).decode() for item in sent], load_reference())
    for item, line in zip(sent, lines, strict=True):
        outcome = orjson.loads(line)
        assert (outcome["status"] == "accepted") == (item.intended_error is None), (item.intended_error, outcome)
        if item.intended_error is None:
            assert outcome["findings"] == [], outcome  # not even a warning


# -- configuration and the case-mix file ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"error_share": 0.95}, "error_share"),
        ({"reservation_share": -0.1}, "reservation_share"),
        ({"years": 0}, "years"),
        ({"start_year": 1980}, "1985"),
        ({"start_year": 2030, "years": 15}, "2040"),
        ({"cases_per_year": 0}, "cases_per_year"),
        ({"hospital_shares": {"ous": 1.0, "rikshospitalet": 0.2}}, "unknown hospitals"),
        ({"now": datetime(2020, 1, 1)}, "aware"),
    ],
)
def test_bad_configuration_is_refused_with_a_reason(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**changes)


def test_a_malformed_case_mix_file_is_refused(tmp_path: Path) -> None:
    source = (Path(__file__).resolve().parents[2] / "deploy" / "synthetic" / "casemix.csv").read_text()
    header, first, *_ = [line for line in source.splitlines() if not line.startswith("#")]
    path = tmp_path / "casemix.csv"
    path.write_text(f"{header}\n{first}\n{first}\n")
    with pytest.raises(ValueError, match="unique"):
        load_casemix(path)
    path.write_text(f"{header}\n{first.replace('12;80;35;18;12', '12;80;35')}\n")
    with pytest.raises(ValueError, match="age_rates"):
        load_casemix(path)


# -- streaming ------------------------------------------------------------------------------------------

TOKENS = {"ous": "t-ous", "haukeland": "t-hus", "st-olav": "t-sto", "unn": "t-unn", "staff": "t-staff"}


def small_stream() -> list[Item]:
    config = GeneratorConfig(seed=4, years=2, cases_per_year=40, reservation_share=0.5, error_share=0.1)
    return list(generate(config))


async def test_http_streaming_posts_everything_with_the_right_token_in_order_per_child() -> None:
    items = small_stream()
    received: list[tuple[str, str, dict[str, Any]]] = []
    in_flight = peak = 0

    async def intake(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (len(received) % 3))  # let requests overtake each other
        received.append((request.url.path, request.headers["authorization"], orjson.loads(request.content)))
        in_flight -= 1
        return httpx.Response(202 if request.url.path == "/v1/submissions" else 201)

    report = await post_http(items, "http://intake", TOKENS, concurrency=4, transport=httpx.MockTransport(intake))

    assert 1 < peak <= 4
    assert report.sent == len(items)
    assert report.statuses["submission 202"] == len(submissions(items))
    assert report.statuses["reservation 201"] == len(items) - len(submissions(items))
    for path, authorization, body in received:
        if path == "/v1/submissions":
            assert authorization == f"Bearer {TOKENS[body['hospital_id']]}"
        else:
            assert authorization == "Bearer t-staff"
            assert (path, sorted(body)) in [
                ("/v1/reservations", ["effective_at", "national_id"]),
                ("/v1/reservations/withdrawals", ["national_id"]),
            ]
    expected = [request_for(item) for item in items]
    assert Counter(path for path, _, _ in received) == Counter(path for path, _, _ in expected)

    def per_child(bodies: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        children: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for body in bodies:
            children[body.get("national_id") or body["patient"]["national_id"]].append(body)
        return children

    assert per_child([body for _, _, body in received]) == per_child([body for _, _, body in expected])


async def test_http_streaming_stops_on_a_refused_or_missing_token() -> None:
    items = small_stream()

    async def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    with pytest.raises(StreamError, match="refused the token"):
        await post_http(items, "http://intake", TOKENS, transport=httpx.MockTransport(refuse))
    tokens = {key: value for key, value in TOKENS.items() if key != "staff"}
    with pytest.raises(StreamError, match="no token for 'staff'"):
        await post_http(items, "http://intake", tokens, transport=httpx.MockTransport(refuse))


async def test_http_streaming_retries_overload_and_server_errors() -> None:
    items = submissions(small_stream())[:5]
    calls: Counter[str] = Counter()

    async def flaky(request: httpx.Request) -> httpx.Response:
        submission = orjson.loads(request.content).get("submission_id", "reservation")
        calls[submission] += 1
        return httpx.Response(503 if calls[submission] == 1 else 202)

    report = await post_http(items, "http://intake", TOKENS, transport=httpx.MockTransport(flaky))
    assert report.statuses == Counter({"submission 202": 5}) and set(calls.values()) == {2}


async def test_intake_takes_the_stream_and_refuses_only_what_it_checks_itself(tmp_path: Path) -> None:
    """The generated requests against intake's real API (on SQLite, no broker): the contract between them."""
    from sqlalchemy import select

    from services.intake.app import MIGRATIONS, create_app
    from services.intake.settings import IntakeSettings
    from services.intake.storage import Submission
    from shared.auth import Role, TokenEntry, TokenStore, digest
    from shared.db.migrations import upgrade

    def key() -> str:
        return base64.urlsafe_b64encode(os.urandom(32)).decode()

    settings = IntakeSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
        pseudonym_key=key(),
        vault_key=key(),
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never reached: the outbox relay is not started
    )
    app = create_app(settings)
    app.state.tokens = TokenStore(
        [TokenEntry(name=f"{h}-portal", role=Role.HOSPITAL, hospital_id=h, sha256=digest(TOKENS[h])) for h in BY_ID]
        + [TokenEntry(name="coder.anna", role=Role.STAFF, sha256=digest(TOKENS["staff"]))]
    )
    await upgrade(app.state.service.engine, MIGRATIONS)
    try:
        items = small_stream()
        report = await post_http(items, "http://intake", TOKENS, transport=httpx.ASGITransport(app=app))
        async with app.state.service.engine.connect() as connection:
            result = await connection.execute(select(Submission.submission_id, Submission.supersedes))
            supersedes = {str(sid): str(corrected) if corrected else None for sid, corrected in result}
    finally:
        await app.state.service.engine.dispose()

    refused_by_intake = sum(1 for item in items if item.intended_error is ErrorClass.SEX_IDENTITY)
    withdrawals = sum(1 for item in items if item.kind is Kind.RESERVATION and item.payload["action"] == "withdraw")
    assert refused_by_intake and withdrawals  # the sample holds both
    assert report.statuses == {
        "submission 202": len(submissions(items)) - refused_by_intake,
        "submission 422": refused_by_intake,  # intake checks the declared sex against the number itself
        "reservation 201": len(items) - len(submissions(items)) - withdrawals,
        "reservation 200": withdrawals,
    }
    # Every correction and resend corrects what it names: a version of the same report, treatments and
    # follow-ups included; every other form is a report of its own.
    registered = [item for item in submissions(items) if item.payload["submission_id"] in supersedes]
    assert len(registered) == len(submissions(items)) - refused_by_intake
    assert any(form(item)["form_type"] != "diagnosis" and "corrects" in item.payload for item in registered)
    for item in registered:
        assert supersedes[item.payload["submission_id"]] == item.payload.get("corrects"), item


async def test_pace_spreads_the_period_over_the_given_seconds() -> None:
    start, end = datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC)
    pace = Pace(start, end, 0.3)
    began = time.monotonic()
    await pace.wait_for(start)
    await pace.wait_for(start + (end - start) / 2)
    assert time.monotonic() - began >= 0.14
    await pace.wait_for(end)
    assert time.monotonic() - began >= 0.29


@pytest.mark.kafka
async def test_kafka_streaming_produces_submissions_keyed_by_hospital(kafka_bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer

    from shared.kafka.admin import ensure_topics
    from shared.topics import HOSPITAL_INBOUND

    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}.")
    await ensure_topics(settings, [HOSPITAL_INBOUND])
    items = small_stream()
    report = await produce_kafka(items, settings)
    expected = submissions(items)
    assert report.statuses["submission acked"] == len(expected)
    assert report.skipped == len(items) - len(expected)

    consumer = AIOKafkaConsumer(
        settings.topic(HOSPITAL_INBOUND), bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got: list[Any] = []
        while len(got) < len(expected):
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "no more records"
            got += [record for records in batch.values() for record in records]
    finally:
        await consumer.stop()
    by_hospital: dict[str, list[str]] = defaultdict(list)
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        hospital = record.key.decode()
        assert dict(record.headers)["hospital-id"] == record.key
        body = orjson.loads(record.value)
        assert body["hospital_id"] == hospital
        by_hospital[hospital].append(body["submission_id"])
    for hospital, ids in by_hospital.items():  # one key, one partition: the hospital's order is kept
        assert ids == [i.payload["submission_id"] for i in expected if i.hospital_id == hospital]


# -- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(generate_command)
    return app


def test_the_command_writes_the_stream_as_json_lines(cli: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "stream.jsonl"
    args = ["--seed", "7", "--years", "1", "--cases-per-year", "30", "--reservation-share", "0.3", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    config = GeneratorConfig(seed=7, years=1, cases_per_year=30, reservation_share=0.3)
    assert out.read_bytes() == stream_bytes(config)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {line["kind"] for line in lines} == {"submission", "reservation"}
    assert all(set(line) == {"kind", "payload"} for line in lines)  # no error labels in the output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to-http", "http://intake"], "needs --tokens-file"),
        (["--to-http", "http://intake", "--to-kafka"], "one of --to-http and --to-kafka"),
        (["--to-kafka", "--out", "x.jsonl"], "cannot be combined"),
        (["--speed", "10"], "add --to-http or --to-kafka"),
        (["--error-share", "1.5"], "--error-share"),
        (["--start-year", "2035", "--years", "10"], "2040"),
    ],
)
def test_the_command_refuses_bad_options_clearly(cli: typer.Typer, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


def test_the_command_checks_the_tokens_file(cli: typer.Typer, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"ous": "a", "haukeland": "b"}')
    result = CliRunner().invoke(cli, ["--to-http", "http://intake", "--tokens-file", str(tokens)])
    assert result.exit_code == 2 and "st-olav" in result.output
