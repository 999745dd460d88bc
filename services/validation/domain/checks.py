"""The registry's edit checks: plain functions from a form (and what is known) to findings.

Severities: `error` rejects; `warning` is an unlikely combination that rejects unless a coder lists its
code in the diagnosis form's `coder_overrides`; `query` is accepted and flagged for review. Each check
runs only on inputs that passed the checks it depends on (no site checks on an invalid topography), so
one mistake gives one finding, not a cascade.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.validation.domain.linkage import same_primary, site_group
from services.validation.domain.model import Case, KnownTumour, age_at
from services.validation.domain.reference import CheckTables, site_of
from shared.events import Finding, IcccCode, Severity
from shared.events.forms import DiagnosisForm, FollowUpForm, TreatmentForm, VitalStatus

ERROR, WARNING, QUERY = Severity.ERROR, Severity.WARNING, Severity.QUERY

REGISTRY_START = date(1985, 1, 1)  # the registry's first year of diagnosis
AGE_LIMIT = 18  # children and adolescents diagnosed before their 18th birthday
# ICD-O-3 sixth digit: 1-4 differentiation (solid tumours), 5-8 T/B/null/NK cell lineage (leukaemias and
# lymphomas, histologies 9590-9992), 9 not determined. Grading applies to malignant tumours only.
DIFFERENTIATION_GRADES = range(1, 5)
LINEAGE_GRADES = range(5, 9)
FIRST_HAEMATOPOIETIC = 9590


class Findings:
    """Collects findings, marking a warning `overridden` when the coder listed its code."""

    __slots__ = ("_overrides", "items")

    def __init__(self, overrides: Sequence[str] = ()) -> None:
        self.items: list[Finding] = []
        self._overrides = frozenset(overrides)

    def add(self, code: str, severity: Severity, fields: tuple[str, ...], message: str) -> None:
        overridden = severity is WARNING and code in self._overrides
        self.items.append(Finding(code=code, severity=severity, fields=fields, message=message, overridden=overridden))


def check_diagnosis(
    case: Case,
    form: DiagnosisForm,
    tables: CheckTables,
    iccc: IcccCode | None,
    known: Sequence[KnownTumour],
    out: Findings,
) -> None:
    site = site_of(form.topography)
    histology = int(form.morphology)
    site_ok = site in tables.topographies
    behaviours = tables.behaviours_by_histology.get(histology)
    histology_ok = behaviours is not None

    if not site_ok:
        out.add("INVALID_TOPOGRAPHY", ERROR, ("topography",), f"{form.topography} is not an ICD-O-3 topography code")
    if behaviours is None:
        out.add("INVALID_MORPHOLOGY", ERROR, ("morphology",), f"{form.morphology} is not an ICD-O-3 histology code")
    elif form.behaviour not in behaviours:
        valid = ", ".join(f"/{b}" for b in sorted(behaviours) if b <= 3)
        out.add(
            "INVALID_BEHAVIOUR",
            ERROR,
            ("morphology", "behaviour"),
            f"{form.morphology}/{form.behaviour} is not an ICD-O-3 code; {form.morphology} takes {valid}",
        )
    basis_ok = form.basis in tables.basis_labels
    if not basis_ok:
        codes = ", ".join(f"{code} {label}" for code, label in tables.basis_labels.items())
        out.add("INVALID_BASIS", ERROR, ("basis",), f"{form.basis} is not a basis-of-diagnosis code ({codes})")
    if histology_ok:
        _grade(form, histology, tables, out)

    age = _diagnosis_dates(case, form, out)

    if form.sex != case.legal_sex:
        out.add(
            "SEX_MISMATCH",
            WARNING,
            ("sex", "child.sex"),
            f"the form gives sex {form.sex.value}, the child's legal sex is {case.legal_sex.value}",
        )
    if site_ok and site // 10 in tables.invalid_sex_groups.get(form.sex, ()):
        out.add(
            "SEX_SITE", ERROR, ("sex", "topography"), f"{form.topography} is not a site of a {form.sex.value} patient"
        )
    if histology_ok and form.behaviour in tables.rare_sex_histology.get((form.sex, histology), ()):
        out.add(
            "SEX_HISTOLOGY",
            WARNING,
            ("sex", "morphology"),
            f"{form.morphology}/{form.behaviour} is unlikely in a {form.sex.value} patient",
        )
    if site_ok and histology_ok:
        _site_histology(form, site, histology, tables, out)
    if site_ok and site // 10 in tables.rare_behaviour_groups.get(form.behaviour, ()):
        out.add(
            "BEHAVIOUR_SITE",
            WARNING,
            ("behaviour", "topography"),
            f"behaviour /{form.behaviour} is unlikely in {form.topography}",
        )
    if (
        basis_ok
        and histology_ok
        and (
            (form.basis, histology) in tables.basis_queries
            or (form.basis, histology, site) in tables.basis_site_queries
        )
    ):
        label = tables.basis_labels[form.basis]
        out.add(
            "BASIS_HISTOLOGY",
            QUERY,
            ("basis", "morphology"),
            f"histology {form.morphology} is specific but the basis of diagnosis is {form.basis} ({label}), "
            "not microscopic: please confirm",
        )
    if age is not None:
        _ages(form, site if site_ok else None, histology if histology_ok else None, age, iccc, tables, out)
    if site_ok and histology_ok and iccc is None and form.behaviour == 3:
        out.add(
            "ICCC_UNCLASSIFIED",
            QUERY,
            ("topography", "morphology", "behaviour"),
            f"{form.topography} {form.morphology}/3 is malignant but ICCC-3 does not classify it",
        )
    _duplicates(case, form, tables, known, out)


def _grade(form: DiagnosisForm, histology: int, tables: CheckTables, out: Findings) -> None:
    invalid = tables.invalid_grades.get((form.behaviour, histology))
    if invalid is not None:  # the IARC table enumerates this histology: it is the authority
        if form.grade in invalid:
            out.add(
                "GRADE_HISTOLOGY",
                ERROR,
                ("grade", "morphology", "behaviour"),
                f"grade {form.grade} is not valid for {form.morphology}/{form.behaviour}",
            )
        return
    if form.grade == 9:
        return
    if form.behaviour != 3:
        reason = "only malignant tumours are graded; use 9"
    elif form.grade in LINEAGE_GRADES and histology < FIRST_HAEMATOPOIETIC:
        reason = "grades 5-8 (cell lineage) are for leukaemias and lymphomas only"
    elif form.grade in DIFFERENTIATION_GRADES and histology >= FIRST_HAEMATOPOIETIC:
        reason = "grades 1-4 (differentiation) are not used for leukaemias and lymphomas"
    else:
        return
    out.add(
        "INVALID_GRADE",
        ERROR,
        ("grade", "morphology", "behaviour"),
        f"grade {form.grade} with {form.morphology}/{form.behaviour}: {reason}",
    )


def _diagnosis_dates(case: Case, form: DiagnosisForm, out: Findings) -> int | None:
    """Date checks of a diagnosis; return the age at diagnosis when it is meaningful."""
    diagnosed = form.diagnosis_date
    if diagnosed > case.reference_date:
        out.add(
            "DATE_ORDER",
            ERROR,
            ("diagnosis_date",),
            f"diagnosis date {diagnosed} is in the future (received {case.reference_date})",
        )
    if diagnosed < REGISTRY_START:
        out.add(
            "DIAGNOSIS_BEFORE_1985",
            ERROR,
            ("diagnosis_date",),
            f"diagnosis date {diagnosed} is before 1985, when the registry begins",
        )
    if diagnosed < case.birth_date:
        out.add(
            "DATE_ORDER", ERROR, ("diagnosis_date", "child.birth_date"), f"diagnosis date {diagnosed} is before birth"
        )
        return None
    age = age_at(case.birth_date, diagnosed)
    if age >= AGE_LIMIT:
        out.add(
            "AGE_OVER_LIMIT",
            ERROR,
            ("diagnosis_date", "child.birth_date"),
            f"the child was {age} at diagnosis; the registry covers diagnoses before the 18th birthday",
        )
    return age


def _site_histology(form: DiagnosisForm, site: int, histology: int, tables: CheckTables, out: Findings) -> None:
    profile = tables.site_profiles.get(histology)
    if profile is None or (site in profile.sites) == profile.must:
        return
    family = f" ({profile.family_name})" if profile.family_name else ""
    where = "outside its usual sites" if profile.must else "in this site"
    out.add(
        "SITE_HISTOLOGY",
        WARNING,
        ("topography", "morphology"),
        f"histology {form.morphology}{family} is unlikely {where}: {form.topography}",
    )


def _ages(
    form: DiagnosisForm,
    site: int | None,
    histology: int | None,
    age: int,
    iccc: IcccCode | None,
    tables: CheckTables,
    out: Findings,
) -> None:
    if histology is not None and age in tables.age_by_histology.get(histology, ()):
        out.add(
            "AGE_SITE_HISTOLOGY",
            WARNING,
            ("morphology", "diagnosis_date"),
            f"histology {form.morphology} is unlikely at age {age}",
        )
    if site is not None and age in tables.age_by_site.get(site, ()):
        out.add(
            "AGE_SITE_HISTOLOGY",
            WARNING,
            ("topography", "diagnosis_date"),
            f"{form.topography} is unlikely at age {age}",
        )
    if (
        site is not None
        and histology is not None
        and age in tables.age_by_group_histology.get((site // 10, histology), ())
    ):
        out.add(
            "AGE_SITE_HISTOLOGY",
            WARNING,
            ("topography", "morphology", "diagnosis_date"),
            f"histology {form.morphology} in {form.topography} is unlikely at age {age}",
        )
    if iccc is not None:
        for label in (iccc.subgroup, iccc.division):
            for rule in tables.unlikely_ages.get(label or "", ()):
                low, high = rule.ages
                if low <= age <= high:
                    out.add(
                        "AGE_UNLIKELY_CHILDHOOD",
                        WARNING,
                        ("morphology", "diagnosis_date"),
                        f"{rule.diagnosis} (ICCC-3 {rule.iccc}) at age {age} is unlikely: {rule.reason}",
                    )


def _duplicates(
    case: Case, form: DiagnosisForm, tables: CheckTables, known: Sequence[KnownTumour], out: Findings
) -> None:
    group = tables.histology_groups.get(int(form.morphology))
    where = site_group(form.topography, tables)
    for tumour in known:
        if tumour.is_same_tumour(case.hospital_id, form.tumour_ref):
            continue  # the same tumour reported again: a correction, not a second primary
        if same_primary(where, group, tumour.site_group, tumour.histology_group, tables):
            out.add(
                "DUPLICATE_TUMOUR",
                QUERY,
                ("tumour_ref", "topography", "morphology"),
                f"same primary tumour (IARC multiple-primary rules) as tumour {tumour.tumour_ref} from "
                f"{tumour.hospital_id}, diagnosed {tumour.diagnosis_date}",
            )


def check_treatment(case: Case, form: TreatmentForm, tumour: KnownTumour | None, out: Findings) -> None:
    anchor, anchor_name = _anchor(case, form.tumour_ref, tumour, out)
    if form.start_date < anchor:
        out.add("DATE_ORDER", ERROR, ("start_date",), f"treatment starts {form.start_date}, before the {anchor_name}")
    if form.start_date > case.reference_date:
        out.add("DATE_ORDER", ERROR, ("start_date",), _future("treatment start", form.start_date, case))
    if form.end_date is not None:
        if form.end_date < form.start_date:
            out.add(
                "DATE_ORDER",
                ERROR,
                ("start_date", "end_date"),
                f"treatment ends {form.end_date}, before it starts {form.start_date}",
            )
        if form.end_date > case.reference_date:
            out.add("DATE_ORDER", ERROR, ("end_date",), _future("treatment end", form.end_date, case))


def check_follow_up(
    case: Case, form: FollowUpForm, tumour: KnownTumour | None, tables: CheckTables, out: Findings
) -> None:
    anchor, anchor_name = _anchor(case, form.tumour_ref, tumour, out)
    contact = form.last_contact_date
    if contact < anchor:
        out.add("DATE_ORDER", ERROR, ("last_contact_date",), f"last contact {contact} is before the {anchor_name}")
    if contact > case.reference_date:
        out.add("DATE_ORDER", ERROR, ("last_contact_date",), _future("last contact", contact, case))

    death = form.death_date
    if form.vital_status is VitalStatus.DEAD and death is None:
        out.add(
            "VITAL_STATUS", ERROR, ("vital_status", "death_date"), "the child died but the date of death is missing"
        )
    if form.vital_status is VitalStatus.ALIVE and death is not None:
        out.add("VITAL_STATUS", ERROR, ("vital_status", "death_date"), "a date of death is given for a living child")
    if death is not None:
        if death < anchor:
            out.add("DATE_ORDER", ERROR, ("death_date",), f"death {death} is before the {anchor_name}")
        if death > case.reference_date:
            out.add("DATE_ORDER", ERROR, ("death_date",), _future("death", death, case))
        if contact > death:
            out.add(
                "DATE_ORDER",
                ERROR,
                ("last_contact_date", "death_date"),
                f"last contact {contact} is after the death {death}",
            )

    if form.relapse is not None:
        relapse = form.relapse.relapse_date
        if relapse < anchor:
            out.add("DATE_ORDER", ERROR, ("relapse.relapse_date",), f"relapse {relapse} is before the {anchor_name}")
        if relapse > contact:
            out.add(
                "DATE_ORDER",
                ERROR,
                ("relapse.relapse_date", "last_contact_date"),
                f"relapse {relapse} is after the last contact {contact}",
            )
        site = form.relapse.site
        if site is not None and site_of(site) not in tables.topographies:
            out.add("INVALID_TOPOGRAPHY", ERROR, ("relapse.site",), f"{site} is not an ICD-O-3 topography code")


def _anchor(case: Case, tumour_ref: str, tumour: KnownTumour | None, out: Findings) -> tuple[date, str]:
    """The date later forms must not precede: the tumour's diagnosis, or birth when the tumour is unknown."""
    if tumour is not None:
        return tumour.diagnosis_date, f"diagnosis ({tumour.diagnosis_date})"
    out.add(
        "UNKNOWN_TUMOUR",
        ERROR,
        ("tumour_ref",),
        f"no accepted diagnosis of tumour {tumour_ref} from {case.hospital_id} for this child: "
        "send (or correct) the diagnosis form first",
    )
    return case.birth_date, "child's birth"


def _future(what: str, day: date, case: Case) -> str:
    return f"{what} {day} is in the future (received {case.reference_date})"
