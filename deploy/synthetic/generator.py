"""Realistic synthetic submissions from the four regional hospitals, as intake's API takes them.

`generate(config)` is a pure, seeded generator: the same configuration yields the same items, in the same
order, byte for byte. Each simulated child gets a synthetic identity number, a tumour drawn from the
case mix, a diagnosis form, treatment reports, follow-ups at 1, 3 and 5 years (those due by `now`),
and sometimes a death or a relapse. On top of that come, at configurable shares, erroneous forms (each
labelled with the check it should trip, then resent correctly), late reports, corrections and NOPHO-Care
reservations. A tumour may have several treatment reports and follow-ups, each a report of its own: a
correction or a resend names the submission it corrects (`corrects`), as intake requires of treatment
and follow-up reports. Items come out ordered by `made_at`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from deploy.synthetic.casemix import AGE_BANDS, PAIRED_SITES, TumourType, default_casemix
from deploy.synthetic.identity import IdentityFactory
from shared.events.forms import (
    DiagnosisForm,
    FollowUpForm,
    Intent,
    Laterality,
    Modality,
    Relapse,
    Sex,
    TreatmentForm,
    VitalStatus,
)
from shared.hospitals import BY_ID

if TYPE_CHECKING:
    from _typeshed import SupportsLenAndGetItem

FORM_VERSION = 1
DEFAULT_HOSPITAL_SHARES: Mapping[str, float] = {"ous": 0.55, "haukeland": 0.20, "st-olav": 0.15, "unn": 0.10}
# Prefixes of the hospitals' own tumour references, e.g. OUS-2021-0042.
TUMOUR_REF_PREFIX = {"ous": "OUS", "haukeland": "HUS", "st-olav": "STO", "unn": "UNN"}

# Well-formed ICD-O-3 codes that do not exist (C14.1 is IARC's own example), for the invalid-code errors.
NONEXISTENT_TOPOGRAPHIES = ("C14.1", "C64.1", "C42.5", "C73.1", "C22.5", "C69.7")
NONEXISTENT_MORPHOLOGIES = ("9999", "9998", "8889", "9479")

Form = DiagnosisForm | TreatmentForm | FollowUpForm
_T = TypeVar("_T")

_DAY = 86_400
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # version and variant bits
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_LATE_EFFECTS = {
    Modality.CHEMOTHERAPY: ("hearing loss", "cardiomyopathy", "peripheral neuropathy", "osteonecrosis"),
    Modality.RADIOTHERAPY: ("growth hormone deficiency", "hypothyroidism", "neurocognitive impairment"),
    Modality.SURGERY: ("reduced mobility", "chronic pain"),
    Modality.STEM_CELL_TRANSPLANT: ("infertility", "chronic graft-versus-host disease", "cataract"),
}


class Kind(StrEnum):
    SUBMISSION = "submission"
    RESERVATION = "reservation"


class ErrorClass(StrEnum):
    """The check an erroneous form is meant to trip."""

    INVALID_TOPOGRAPHY = "invalid_topography"  # well-formed but non-existent ICD-O-3 topography
    INVALID_MORPHOLOGY = "invalid_morphology"  # well-formed but non-existent ICD-O-3 morphology
    SEX_SITE = "sex_site"  # a male with a female-only site or the reverse
    AGE_OVER_18 = "age_over_18"  # not a child: 18 or older at diagnosis
    TREATMENT_BEFORE_DIAGNOSIS = "treatment_before_diagnosis"
    DEATH_BEFORE_DIAGNOSIS = "death_before_diagnosis"
    DIAGNOSIS_BEFORE_BIRTH = "diagnosis_before_birth"
    GRADE_HISTOLOGY = "grade_histology"  # a grade the histology cannot have
    AGE_HISTOLOGY = "age_histology"  # an unlikely age/histology combination with no coder override
    UNKNOWN_TUMOUR = "unknown_tumour"  # a tumour reference the hospital never reported a diagnosis for
    SEX_IDENTITY = "sex_identity"  # declared sex contradicts the identity number


# Errors intake itself refuses (422): such a form is never registered, and its resend is a first form.
REFUSED_BY_INTAKE = frozenset({ErrorClass.SEX_IDENTITY})


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a hospital or the registry's staff sends; `payload` is exactly the request body."""

    kind: Kind
    hospital_id: str
    payload: dict[str, Any]
    made_at: datetime
    intended_error: ErrorClass | None = None
    # The submission this one replaces (same tumour and form type): a correction or a resend after an error.
    # The payload names it in `corrects` too, unless intake refused it (then there is nothing to correct).
    corrects: str | None = None
    late: bool = False

    def to_json_line(self) -> bytes:
        return orjson.dumps({"kind": self.kind.value, "payload": self.payload}) + b"\n"


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    seed: int = 1
    start_year: int = 2019
    years: int = 5
    cases_per_year: float = 200.0
    error_share: float = 0.05  # of submissions
    late_share: float = 0.05  # of original reports
    correction_share: float = 0.03  # of diagnosis and treatment reports
    reservation_share: float = 0.03  # of children
    now: datetime | None = None  # what is due by then is generated; default: the end of the period
    hospital_shares: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_HOSPITAL_SHARES))
    casemix: tuple[TumourType, ...] = field(default_factory=default_casemix)

    def __post_init__(self) -> None:
        problems = []
        if self.years < 1:
            problems.append("years must be at least 1")
        if self.start_year < 1985:
            problems.append("start_year must be 1985 (when the registry began) or later")
        if self.start_year + self.years > 2040:
            problems.append("the period must end by 2040: identity numbers encode births up to 2039 only")
        if self.cases_per_year <= 0:
            problems.append("cases_per_year must be positive")
        if not 0 <= self.error_share <= 0.9:
            problems.append("error_share must be within 0..0.9")
        for name in ("late_share", "correction_share", "reservation_share"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be within 0..1")
        unknown = set(self.hospital_shares) - set(BY_ID)
        if unknown:
            problems.append(f"unknown hospitals {sorted(unknown)}; known: {', '.join(BY_ID)}")
        if not self.hospital_shares or min(self.hospital_shares.values()) < 0 or not any(self.hospital_shares.values()):
            problems.append("hospital_shares must hold non-negative shares, at least one positive")
        if self.now is not None and (self.now.tzinfo is None or self.now <= self.period_start):
            problems.append("now must be an aware datetime after the start of the period")
        if not self.casemix:
            problems.append("the case mix is empty")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def period_start(self) -> datetime:
        return datetime(self.start_year, 1, 1, tzinfo=UTC)

    @property
    def period_end(self) -> datetime:
        return self.now or datetime(self.start_year + self.years, 1, 1, tzinfo=UTC)


def generate(config: GeneratorConfig) -> Iterator[Item]:
    """Every submission and reservation of the period, ordered by `made_at` (ties in a fixed order)."""
    return _Generator(config).run()


class _Random(random.Random):
    """`random.Random` with `randint` and `choice` drawn from one `random()` call: the generator makes
    millions of them, and the standard ones, exact for huge ranges, cost several times as much."""

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq: SupportsLenAndGetItem[_T]) -> _T:
        return seq[int(self.random() * len(seq))]


@dataclass(slots=True)
class _Report:
    """A form and when the hospital made it, while a case is being put together."""

    form: Form
    made: int  # Unix seconds
    late: bool = False
    original: _Report | None = None  # the report a correction corrects
    error: ErrorClass | None = None
    resends: _Report | None = None  # the erroneous report this one is the corrected resend of
    national_id: str | None = None  # only for a report about another person (the over-18 error)
    submission_id: str = ""


@dataclass(slots=True)
class _Case:
    tumour: TumourType
    hospital_id: str
    national_id: str
    birth: int  # date ordinal
    diagnosed: int  # date ordinal
    male: bool


class _Generator:
    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = _Random(config.seed)
        self.ids = IdentityFactory(self.rng)
        self.tumours = config.casemix
        self.tumour_weights = list(itertools.accumulate(t.share for t in self.tumours))
        self.hospitals = list(config.hospital_shares)
        self.hospital_weights = list(itertools.accumulate(config.hospital_shares.values()))
        self.age_weights = {t.label: list(itertools.accumulate(t.age_band_weights)) for t in self.tumours}
        self.adolescent_tumours = [t for t in self.tumours if t.adolescent]
        self.sequence: dict[tuple[str, int], int] = {}
        self.now = int(config.period_end.timestamp())
        # Erroneous forms come on top of the valid ones: q = s / (1 - s) of them per valid form makes them
        # q / (1 + q) = s of all submissions.
        self.error_rate = config.error_share / (1 - config.error_share)

    # -- the stream -------------------------------------------------------------------------------------

    def run(self) -> Iterator[Item]:
        pending: list[tuple[int, int, _Entry]] = []
        order = itertools.count()
        for year in range(self.config.start_year, self.config.start_year + self.config.years):
            first = date(year, 1, 1).toordinal()
            days = date(year + 1, 1, 1).toordinal() - first
            for diagnosed in sorted(first + self.rng.randrange(days) for _ in range(self._poisson())):
                floor = (diagnosed - _EPOCH_ORDINAL) * _DAY
                if floor > self.now:
                    break
                # Every item of a case is made on or after its diagnosis date, and cases come in diagnosis
                # order: whatever is pending before this date can no longer be preceded by anything.
                while pending and pending[0][0] < floor:
                    yield _item(*heapq.heappop(pending))
                for made, entry in self._case(diagnosed):
                    if made <= self.now:
                        heapq.heappush(pending, (made, next(order), entry))
        while pending:
            yield _item(*heapq.heappop(pending))

    def _poisson(self) -> int:
        lam = self.config.cases_per_year
        if lam > 50:  # the normal approximation is exact enough here and O(1)
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, count, product = math.exp(-lam), 0, self.rng.random()
        while product > limit:
            count += 1
            product *= self.rng.random()
        return count

    # -- one child --------------------------------------------------------------------------------------

    def _case(self, diagnosed: int) -> list[tuple[int, _Entry]]:
        rng = self.rng
        tumour = rng.choices(self.tumours, cum_weights=self.tumour_weights)[0]
        hospital = rng.choices(self.hospitals, cum_weights=self.hospital_weights)[0]
        male = rng.random() < tumour.male_share
        birth = diagnosed - self._age_days(tumour)
        case = _Case(tumour, hospital, self.ids.new(date.fromordinal(birth), male), birth, diagnosed, male)

        diagnosis = self._diagnosis(case)
        treatments = self._treatments(case, diagnosis)
        follow_ups = self._follow_ups(case, diagnosis, treatments)
        originals = [diagnosis, *treatments, *follow_ups]
        corrected = [r for r in originals[: 1 + len(treatments)] if rng.random() < self.config.correction_share]
        erroneous = self._errors(case, originals, len(corrected))
        corrections = [fix for report in corrected if (fix := self._correction(case, report)) is not None]

        entries = [self._submission(case, report) for report in (*erroneous, *originals, *corrections)]
        if rng.random() < self.config.reservation_share:
            entries += self._reservations(case, diagnosis)
        return entries

    def _age_days(self, tumour: TumourType) -> int:
        low, high = self.rng.choices(AGE_BANDS, cum_weights=self.age_weights[tumour.label])[0]
        # A few days clear of the band's ends, so the age in completed years is surely inside the band.
        return self.rng.randint(int(low * 365.25) + 3 if low else 0, int(high * 365.25) - 3)

    def _made(self, day: int) -> int:
        """A time in the working day (07-16 UTC) of a date ordinal, as Unix seconds."""
        return (day - _EPOCH_ORDINAL) * _DAY + 7 * 3600 + int(self.rng.random() * 9 * 3600)

    def _late(self, report: _Report) -> _Report:
        if self.rng.random() < self.config.late_share:
            report.made += self.rng.randint(60, 365) * _DAY
            report.late = True
        return report

    def _tumour_ref(self, hospital: str, diagnosed: int) -> str:
        year = date.fromordinal(diagnosed).year
        number = self.sequence[hospital, year] = self.sequence.get((hospital, year), 0) + 1
        return f"{TUMOUR_REF_PREFIX[hospital]}-{year}-{number:04d}"

    def _laterality(self, topography: str, bilateral_share: float) -> Laterality:
        if topography not in PAIRED_SITES:
            return Laterality.NOT_PAIRED
        if self.rng.random() < bilateral_share:
            return Laterality.BILATERAL
        return Laterality.RIGHT if self.rng.random() < 0.5 else Laterality.LEFT

    def _diagnosis(self, case: _Case) -> _Report:
        rng, tumour = self.rng, case.tumour
        topography = rng.choice(tumour.topographies)
        form = DiagnosisForm(
            tumour_ref=self._tumour_ref(case.hospital_id, case.diagnosed),
            sex=Sex.MALE if case.male else Sex.FEMALE,
            diagnosis_date=date.fromordinal(case.diagnosed),
            topography=topography,
            morphology=tumour.morphology,
            behaviour=tumour.behaviour,
            grade=rng.choice(tumour.grades),
            laterality=self._laterality(topography, tumour.bilateral_share),
            basis=rng.choice(tumour.bases),
            stage=rng.choice(tumour.stages) if tumour.stages else None,
        )
        # Hospitals report once the histology is final: days to a few weeks after the diagnosis date.
        return self._late(_Report(form, self._made(case.diagnosed + rng.randint(3, 30))))

    def _treatments(self, case: _Case, diagnosis: _Report) -> list[_Report]:
        rng, tumour = self.rng, case.tumour
        palliative = tumour.survival_5y < 0.3
        reports = []
        for plan in tumour.treatments:
            if rng.random() >= plan.probability:
                continue
            if plan.modality is Modality.CHEMOTHERAPY:
                start = case.diagnosed + rng.randint(1, 14)
                end = start + round((plan.months or 6) * 30.44 * rng.uniform(0.85, 1.15))
                made_day = start + rng.randint(3, 28)
            elif plan.modality is Modality.SURGERY:
                start = end = case.diagnosed + rng.randint(0, 21)
                made_day = start + rng.randint(1, 21)
            elif plan.modality is Modality.RADIOTHERAPY:
                start = case.diagnosed + rng.randint(21, 120)
                end = start + rng.randint(28, 49)
                made_day = end + rng.randint(1, 21)  # reported once the course is complete
            else:
                start = end = case.diagnosed + rng.randint(90, 240)
                made_day = start + rng.randint(7, 42)
            form = TreatmentForm(
                tumour_ref=diagnosis.form.tumour_ref,
                modality=plan.modality,
                protocol=plan.protocol,
                start_date=date.fromordinal(start),
                end_date=date.fromordinal(end) if end <= made_day else None,  # unknown while ongoing
                intent=Intent.PALLIATIVE if palliative and rng.random() < 0.5 else Intent.CURATIVE,
            )
            reports.append(self._late(_Report(form, self._made(made_day))))
        return reports

    def _follow_ups(self, case: _Case, diagnosis: _Report, treatments: list[_Report]) -> list[_Report]:
        rng, tumour = self.rng, case.tumour
        dies = rng.random() >= tumour.survival_5y
        death = case.diagnosed + int(rng.triangular(30, 5 * 365, 300)) if dies else None
        relapse: int | None = None
        if death is not None and rng.random() < 0.7:  # most deaths follow a relapse
            relapse = case.diagnosed + max(30, int((death - case.diagnosed) * rng.uniform(0.3, 0.9)))
        elif death is None and rng.random() < 0.5 * (1 - tumour.survival_5y) + 0.02:
            relapse = case.diagnosed + int(rng.triangular(90, 5 * 365, 540))
        modalities = [report.form.modality for report in treatments if isinstance(report.form, TreatmentForm)]
        effects: list[str] = []
        reports = []
        for years in (1, 3, 5):
            due = case.diagnosed + round(years * 365.25)
            made = self._made(due + rng.randint(0, 45))
            if made > self.now:
                break
            dead = death is not None and death <= due
            last_contact = death if dead and death is not None else due - rng.randint(0, 30)
            reported_relapse = None
            if relapse is not None and relapse <= last_contact:
                site = rng.choice(tumour.topographies)
                if rng.random() < 0.2:  # a distant relapse: the CNS for leukaemias, the lungs for solid tumours
                    site = "C70.9" if tumour.haematological else "C34.9"
                reported_relapse = Relapse(relapse_date=date.fromordinal(relapse), site=site)
                relapse = None  # reported once
            if years > 1 and not dead:
                for modality in modalities:
                    effect = rng.choice(_LATE_EFFECTS[modality])
                    if rng.random() < 0.12 and effect not in effects:
                        effects.append(effect)
            form = FollowUpForm(
                tumour_ref=diagnosis.form.tumour_ref,
                last_contact_date=date.fromordinal(last_contact),
                vital_status=VitalStatus.DEAD if dead else VitalStatus.ALIVE,
                death_date=date.fromordinal(death) if dead and death is not None else None,
                relapse=reported_relapse,
                late_effects=tuple(effects),
            )
            reports.append(self._late(_Report(form, made)))
            if dead:
                break
        return reports

    # -- corrections, errors and order ------------------------------------------------------------------

    def _correction(self, case: _Case, report: _Report) -> _Report | None:
        """The same form again with one field put right, some days to weeks later (None if nothing can be)."""
        rng, form = self.rng, report.form
        options: list[dict[str, Any]] = []
        if isinstance(form, DiagnosisForm):
            tumour = case.tumour
            if case.diagnosed > case.birth:  # never before birth
                earlier = max(case.birth, case.diagnosed - rng.randint(1, 14))
                options.append({"diagnosis_date": date.fromordinal(earlier)})
            other_sites = [t for t in tumour.topographies if t != form.topography]
            if other_sites:
                site = rng.choice(other_sites)
                options.append({"topography": site, "laterality": self._laterality(site, tumour.bilateral_share)})
            for name, values in (("grade", tumour.grades), ("basis", tumour.bases), ("stage", tumour.stages)):
                others = [value for value in values if value != getattr(form, name)]
                if others:
                    options.append({name: rng.choice(others)})
        else:
            assert isinstance(form, TreatmentForm)
            start = form.start_date.toordinal()
            # Mostly a start typed a few days late; one on the diagnosis date itself was typed too early
            # (every report is made at least a day after the start, so the later date is still in the past).
            start = (
                max(case.diagnosed, start - rng.randint(1, 7)) if start > case.diagnosed else start + rng.randint(1, 3)
            )
            options.append({"start_date": date.fromordinal(start)})
            if form.end_date == form.start_date:  # a one-day treatment: the end moves with the start
                options[0]["end_date"] = options[0]["start_date"]
        if not options:
            return None
        return _Report(_replace(form, **rng.choice(options)), report.made + rng.randint(2, 60) * _DAY, original=report)

    def _errors(self, case: _Case, originals: list[_Report], corrections: int) -> list[_Report]:
        """Erroneous forms sent before a valid one, which is then resent correctly a few days later."""
        rng = self.rng
        valid = sum(1 for report in originals if report.made <= self.now) + corrections
        # Diagnosis forms carry most kinds of error, so they weigh more; the expected count stays the same.
        weights = [4.0 if isinstance(report.form, DiagnosisForm) else 1.0 for report in originals]
        scale = self.error_rate * valid / sum(weights)
        diagnosis, erroneous = originals[0], []
        for report, weight in zip(originals, weights, strict=True):
            # Nothing about a tumour is made before its (final) diagnosis report: a late or resent diagnosis
            # delays what follows, so unlinkable reports are the unknown-tumour error, never an accident.
            if report is not diagnosis and report.made <= diagnosis.made:
                report.made = self._made(_day_of(diagnosis.made) + rng.randint(1, 3))
            if rng.random() >= scale * weight:
                continue
            error = rng.choice(self._applicable(case, report.form))
            bad = _Report(self._mistake(case, report.form, error), report.made, error=error)
            if error is ErrorClass.AGE_OVER_18:
                bad.national_id, bad.form = self._adult(case, report)
            else:
                # Once the faulty form is rejected, the hospital resends it put right.
                report.made += rng.randint(1, 10) * _DAY
                if error is not ErrorClass.UNKNOWN_TUMOUR:
                    report.resends = bad
            erroneous.append(bad)
        return erroneous

    def _applicable(self, case: _Case, form: Form) -> list[ErrorClass]:
        if isinstance(form, TreatmentForm):
            return [ErrorClass.TREATMENT_BEFORE_DIAGNOSIS, ErrorClass.UNKNOWN_TUMOUR]
        if isinstance(form, FollowUpForm):
            return [ErrorClass.DEATH_BEFORE_DIAGNOSIS, ErrorClass.UNKNOWN_TUMOUR]
        classes = [
            ErrorClass.INVALID_TOPOGRAPHY,
            ErrorClass.INVALID_MORPHOLOGY,
            ErrorClass.SEX_SITE,
            ErrorClass.AGE_OVER_18,
            ErrorClass.DIAGNOSIS_BEFORE_BIRTH,
            ErrorClass.AGE_HISTOLOGY,
        ]
        if case.tumour.invalid_grade is not None:
            classes.append(ErrorClass.GRADE_HISTOLOGY)
        if not case.tumour.sex_specific:  # flipping the sex of a testis tumour would also be a sex/site error
            classes.append(ErrorClass.SEX_IDENTITY)
        return classes

    def _mistake(self, case: _Case, form: Form, error: ErrorClass) -> Form:
        rng = self.rng
        before_diagnosis = case.diagnosed - rng.randint(3, 60)
        match error:
            case ErrorClass.INVALID_TOPOGRAPHY:
                return _replace(form, topography=rng.choice(NONEXISTENT_TOPOGRAPHIES))
            case ErrorClass.INVALID_MORPHOLOGY:
                return _replace(form, morphology=rng.choice(NONEXISTENT_MORPHOLOGIES))
            case ErrorClass.SEX_SITE:
                # Germ cell tumours of the other sex's gonad: plausible histology, impossible site.
                site, morphology = ("C56.9", "9060") if case.male else ("C62.9", "9085")
                return _replace(form, topography=site, morphology=morphology, behaviour=3, grade=9, basis=7,
                                stage=None, laterality=self._laterality(site, 0))  # fmt: skip
            case ErrorClass.DIAGNOSIS_BEFORE_BIRTH:
                return _replace(form, diagnosis_date=date.fromordinal(case.birth - rng.randint(1, 400)))
            case ErrorClass.GRADE_HISTOLOGY:
                return _replace(form, grade=case.tumour.invalid_grade)
            case ErrorClass.AGE_HISTOLOGY:
                # Wilms tumour in an adolescent; chronic lymphocytic leukaemia in a younger child.
                adolescent = _age_in_years(case.birth, case.diagnosed) >= 15
                site, morphology = ("C64.9", "8960") if adolescent else ("C42.1", "9823")
                return _replace(form, topography=site, morphology=morphology, behaviour=3, grade=9, basis=7,
                                stage=None, laterality=self._laterality(site, 0))  # fmt: skip
            case ErrorClass.SEX_IDENTITY:
                return _replace(form, sex=Sex.FEMALE if case.male else Sex.MALE)
            case ErrorClass.TREATMENT_BEFORE_DIAGNOSIS:
                return _replace(form, start_date=date.fromordinal(before_diagnosis), end_date=None)
            case ErrorClass.DEATH_BEFORE_DIAGNOSIS:
                died = date.fromordinal(before_diagnosis)
                return _replace(form, vital_status=VitalStatus.DEAD, death_date=died, last_contact_date=died)
            case ErrorClass.UNKNOWN_TUMOUR:
                return _replace(form, tumour_ref=f"{form.tumour_ref}-2")
            case ErrorClass.AGE_OVER_18:
                return form  # replaced by _adult: another person altogether
        raise AssertionError(error)

    def _adult(self, case: _Case, report: _Report) -> tuple[str, DiagnosisForm]:
        """A young adult's diagnosis, sent to the childhood registry by mistake."""
        rng = self.rng
        tumour = rng.choice(self.adolescent_tumours or self.tumours)
        male = rng.random() < tumour.male_share
        diagnosed = case.diagnosed - rng.randint(0, 20)
        birth = diagnosed - rng.randint(round(18 * 365.25) + 1, round(19.9 * 365.25))
        national_id = self.ids.new(date.fromordinal(birth), male)
        topography = rng.choice(tumour.topographies)
        form = DiagnosisForm(
            tumour_ref=self._tumour_ref(case.hospital_id, case.diagnosed),
            sex=Sex.MALE if male else Sex.FEMALE,
            diagnosis_date=date.fromordinal(diagnosed),
            topography=topography,
            morphology=tumour.morphology,
            behaviour=tumour.behaviour,
            grade=rng.choice(tumour.grades),
            laterality=self._laterality(topography, tumour.bilateral_share),
            basis=rng.choice(tumour.bases),
        )
        return national_id, form

    # -- items ------------------------------------------------------------------------------------------

    def _uuid(self) -> str:
        # What str(uuid.UUID(int=bits, version=4)) gives, at a third of the cost.
        bits = (self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_V4
        text = f"{bits:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def _submission(self, case: _Case, report: _Report) -> tuple[int, _Entry]:
        report.submission_id = self._uuid()
        payload = {
            "submission_id": report.submission_id,
            "hospital_id": case.hospital_id,
            "form_version": FORM_VERSION,
            "made_at": datetime.fromtimestamp(report.made, UTC).isoformat(),
            "patient": {"national_id": report.national_id or case.national_id},
            "form": orjson.Fragment(report.form.to_json()),  # the JSON model_dump(mode="json") gives
        }
        replaced = report.resends or report.original
        corrects = replaced.submission_id if replaced is not None else None
        if replaced is not None and replaced.error not in REFUSED_BY_INTAKE:
            # A treatment or follow-up report corrects another only when it says which; a diagnosis
            # corrects its tumour's current one anyway, and says so too.
            payload["corrects"] = replaced.submission_id
        error = report.error.value if report.error is not None else None
        return report.made, (False, case.hospital_id, orjson.dumps(payload), error, corrects, report.late)

    def _reservations(self, case: _Case, diagnosis: _Report) -> list[tuple[int, _Entry]]:
        """A family's reservation: some before the first report arrives, most later; a few withdrawn."""
        rng = self.rng
        reported = _day_of(diagnosis.made)
        if rng.random() < 0.4 and reported > case.diagnosed:
            registered = self._made(rng.randint(case.diagnosed, reported - 1))
        else:
            registered = diagnosis.made + rng.randint(7, 720) * _DAY
        times = [("register", registered)]
        if rng.random() < 0.25:
            times.append(("withdraw", registered + rng.randint(30, 720) * _DAY))
        entries: list[tuple[int, _Entry]] = []
        for action, at in times:
            payload = {
                "national_id": case.national_id,
                "action": action,
                "at": datetime.fromtimestamp(at, UTC).isoformat(),
            }
            entries.append((at, (True, case.hospital_id, orjson.dumps(payload), None, None, False)))
        return entries


# An item waiting for its turn: (reservation?, hospital id, JSON payload, intended error, corrects, late).
# Only strings, bytes and flags, so the garbage collector stops tracking the many waiting for years.
_Entry = tuple[bool, str, bytes, str | None, str | None, bool]


def _item(made: int, _order: int, entry: _Entry) -> Item:
    reservation, hospital_id, payload, error, corrects, late = entry
    return Item(
        Kind.RESERVATION if reservation else Kind.SUBMISSION,
        hospital_id,
        orjson.loads(payload),
        datetime.fromtimestamp(made, UTC),
        ErrorClass(error) if error is not None else None,
        corrects,
        late,
    )


def _replace(form: Form, **changes: Any) -> Form:
    """A validated copy: every form the generator emits, erroneous or not, passes the shared models."""
    return type(form).model_validate({**form.__dict__, **changes})


def _day_of(made: int) -> int:
    """The date ordinal of a time in Unix seconds."""
    return made // _DAY + _EPOCH_ORDINAL


def _age_in_years(birth: int, day: int) -> int:
    born, then = date.fromordinal(birth), date.fromordinal(day)
    return then.year - born.year - ((then.month, then.day) < (born.month, born.day))
