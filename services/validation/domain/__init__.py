"""Validation's pure logic: ICCC-3 coding, the edit checks and tumour linkage, over the reference tables."""

from services.validation.domain.assess import assess, code, is_accepted
from services.validation.domain.model import Assessment, Case, KnownTumour, age_at, registry_date
from services.validation.domain.reference import ReferenceData, load_reference, reference

__all__ = [
    "Assessment",
    "Case",
    "KnownTumour",
    "ReferenceData",
    "age_at",
    "assess",
    "code",
    "is_accepted",
    "load_reference",
    "reference",
    "registry_date",
]
