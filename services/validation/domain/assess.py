"""One form in, one decision out: ICCC-3 code, every check, accepted or rejected."""

from __future__ import annotations

from collections.abc import Sequence

from services.validation.domain.checks import Findings, check_diagnosis, check_follow_up, check_treatment
from services.validation.domain.linkage import linked_tumour, site_group
from services.validation.domain.model import Assessment, Case, KnownTumour
from services.validation.domain.reference import ReferenceData, site_of
from shared.events import Finding, IcccCode, Severity
from shared.events.forms import DiagnosisForm, TreatmentForm


def assess(case: Case, known: Sequence[KnownTumour], reference: ReferenceData) -> Assessment:
    """`known`: the child's tumours from earlier accepted diagnosis forms (any hospital)."""
    form = case.form
    tables = reference.checks
    if isinstance(form, DiagnosisForm):
        findings = Findings(form.coder_overrides)
        iccc = code(form, reference)
        check_diagnosis(case, form, tables, iccc, known, findings)
        accepted = is_accepted(findings.items)
        tumour = (
            KnownTumour(
                hospital_id=case.hospital_id,
                tumour_ref=form.tumour_ref,
                site_group=site_group(form.topography, tables),
                histology_group=tables.histology_groups.get(int(form.morphology)),
                diagnosis_date=form.diagnosis_date,
                submission_id=case.submission_id,
            )
            if accepted
            else None
        )
        return Assessment(accepted, iccc, tuple(findings.items), tumour)

    findings = Findings()
    tumour = linked_tumour(known, case.hospital_id, form.tumour_ref)
    if isinstance(form, TreatmentForm):
        check_treatment(case, form, tumour, findings)
    else:
        check_follow_up(case, form, tumour, tables, findings)
    return Assessment(is_accepted(findings.items), None, tuple(findings.items))


def code(form: DiagnosisForm, reference: ReferenceData) -> IcccCode | None:
    """The ICCC-3 code of a diagnosis whose topography and histology are ICD-O-3 codes; None otherwise."""
    site, histology = site_of(form.topography), int(form.morphology)
    tables = reference.checks
    if site not in tables.topographies or histology not in tables.behaviours_by_histology:
        return None
    return reference.iccc.code(site, histology, form.behaviour)


def is_accepted(findings: Sequence[Finding]) -> bool:
    """Errors reject; a warning rejects unless a coder override confirmed it; queries never reject."""
    return not any(
        f.severity is Severity.ERROR or (f.severity is Severity.WARNING and not f.overridden) for f in findings
    )
