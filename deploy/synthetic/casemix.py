"""The case mix of childhood cancer: which tumours children get, at what age, and how they are treated.

One `TumourType` per row of `casemix.csv` (sources in PROVENANCE.md beside it). Shares are relative
weights; every other column describes what a hospital would report for that tumour type.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from shared.events.forms import Modality

CASEMIX_CSV = Path(__file__).with_name("casemix.csv")

# The age bands of `age_rates`, in years (upper bound exclusive): those of the IICC incidence tables, with
# the last one cut at 18, where the registry ends.
AGE_BANDS = ((0, 1), (1, 5), (5, 10), (10, 15), (15, 18))

# SEER's paired organ sites, limited to the topographies the case mix and the error forms use: for these
# a hospital reports the side (or bilateral), for all others laterality is "not paired".
PAIRED_SITES = frozenset(
    {
        "C40.0", "C40.2", "C41.3", "C41.4", "C44.5", "C44.6", "C44.7", "C47.1", "C47.2", "C49.1", "C49.2",
        "C56.9", "C62.9", "C64.9", "C69.2", "C69.6", "C71.0", "C71.1", "C71.2", "C72.3", "C74.0", "C74.9",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TreatmentPlan:
    modality: Modality
    probability: float  # share of children with this tumour type who get this modality
    protocol: str | None = None
    months: float | None = None  # typical duration, for chemotherapy


@dataclass(frozen=True, slots=True)
class TumourType:
    iccc_subgroup: str  # e.g. "Ia", "IIIb", "V"
    label: str
    share: float
    topographies: tuple[str, ...]
    morphology: str
    behaviour: int
    age_rates: tuple[float, ...]  # relative incidence per year of age in each of AGE_BANDS
    male_share: float
    grades: tuple[int, ...]
    invalid_grade: int | None  # a grade the IARC grade/histology check rejects for this morphology
    bases: tuple[int, ...]
    stages: tuple[str, ...]
    bilateral_share: float
    survival_5y: float
    treatments: tuple[TreatmentPlan, ...]

    @property
    def iccc_group(self) -> str:
        """The ICCC-3 main group: the subgroup's roman numeral without its letter."""
        return self.iccc_subgroup.rstrip("abcdef")

    @property
    def age_band_weights(self) -> tuple[float, ...]:
        """The chance of each age band: its rate per year of age times its width."""
        return tuple(rate * (high - low) for rate, (low, high) in zip(self.age_rates, AGE_BANDS, strict=True))

    @property
    def adolescent(self) -> bool:
        """Most frequent at 15-17: a tumour type young adults get too."""
        return self.age_rates[-1] > 0 and self.age_rates[-1] == max(self.age_rates)

    @property
    def sex_specific(self) -> bool:
        return self.male_share in (0.0, 1.0)

    @property
    def haematological(self) -> bool:
        return self.morphology >= "9590"  # ICD-O-3 lymphomas and leukaemias: 9590-9989


def _codes(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(";") if part.strip())


def _row(row: dict[str, str]) -> TumourType:
    treatments = [
        TreatmentPlan(
            Modality.CHEMOTHERAPY,
            float(row["chemotherapy"]),
            row["chemo_protocol"] or None,
            float(row["chemo_months"]) if row["chemo_months"] else None,
        ),
        TreatmentPlan(Modality.SURGERY, float(row["surgery"])),
        TreatmentPlan(Modality.RADIOTHERAPY, float(row["radiotherapy"])),
        TreatmentPlan(Modality.STEM_CELL_TRANSPLANT, float(row["stem_cell_transplant"])),
    ]
    tumour = TumourType(
        iccc_subgroup=row["iccc_subgroup"],
        label=row["label"],
        share=float(row["share"]),
        topographies=_codes(row["topographies"]),
        morphology=row["morphology"],
        behaviour=int(row["behaviour"]),
        age_rates=tuple(float(rate) for rate in _codes(row["age_rates"])),
        male_share=float(row["male_share"]),
        grades=tuple(int(g) for g in _codes(row["grades"])),
        invalid_grade=int(row["invalid_grade"]) if row["invalid_grade"] else None,
        bases=tuple(int(b) for b in _codes(row["bases"])),
        stages=_codes(row["stages"]),
        bilateral_share=float(row["bilateral_share"]),
        survival_5y=float(row["survival_5y"]),
        treatments=tuple(plan for plan in treatments if plan.probability > 0),
    )
    _check(tumour)
    return tumour


def _check(tumour: TumourType) -> None:
    problems = []
    if not tumour.topographies or not tumour.grades or not tumour.bases:
        problems.append("topographies, grades and bases need at least one value each")
    if len(tumour.age_rates) != len(AGE_BANDS) or min(tumour.age_rates) < 0 or not any(tumour.age_rates):
        problems.append(f"age_rates needs {len(AGE_BANDS)} non-negative rates, at least one positive")
    for name in ("share", "male_share", "bilateral_share", "survival_5y"):
        if not 0 <= getattr(tumour, name) <= (100 if name == "share" else 1):
            problems.append(f"{name} out of range")
    if any(not 0 <= plan.probability <= 1 for plan in tumour.treatments):
        problems.append("treatment probabilities must be within 0..1")
    if problems:
        raise ValueError(f"case mix row {tumour.label!r}: " + "; ".join(problems))


def load_casemix(path: Path = CASEMIX_CSV) -> tuple[TumourType, ...]:
    """Read a case-mix CSV; lines starting with '#' are comments."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(line for line in handle if not line.startswith("#"))
        tumours = tuple(_row(row) for row in reader)
    labels = [tumour.label for tumour in tumours]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{path}: labels must be unique (they name the rows)")
    return tumours


@functools.cache
def default_casemix() -> tuple[TumourType, ...]:
    return load_casemix()
