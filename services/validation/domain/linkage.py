"""Person/tumour linkage under the IARC/IACR multiple-primary rules (2004), from the tables in data/iarc_mp.

Two tumours of one child are the same primary when their histologies fall in related groups (the same
group, or an unspecified group and a specific one it covers) and they share a topography group, or when
both are haematopoietic (or both Kaposi sarcoma), whatever their sites.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.validation.domain.model import KnownTumour
from services.validation.domain.reference import CheckTables


def site_group(topography: str, tables: CheckTables) -> str:
    """`C41.2` -> `C41`; `C40.0` -> `C41` too: the rules count some neighbouring topographies as one site."""
    group = topography[:3]
    return tables.site_groups.get(group, group)


def same_primary(site_a: str, group_a: int | None, site_b: str, group_b: int | None, tables: CheckTables) -> bool:
    if group_a is None or group_b is None:
        return False  # the rules do not group this histology: no basis to call it the same tumour
    a, b = tables.groups[group_a], tables.groups[group_b]
    related = group_a == group_b or group_b in a.same_as or group_a in b.same_as
    return related and (site_a == site_b or (a.site_independent and b.site_independent))


def linked_tumour(known: Sequence[KnownTumour], hospital_id: str, tumour_ref: str) -> KnownTumour | None:
    """The tumour a treatment or follow-up form refers to: the child's, reported by the same hospital."""
    for tumour in known:
        if tumour.is_same_tumour(hospital_id, tumour_ref):
            return tumour
    return None
