"""The four regional university hospitals that diagnose and treat children with cancer in Norway, with
the health region each belongs to (what export sends instead of the hospital's identity)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hospital:
    id: str
    name: str
    region: str  # regional health authority


HOSPITALS: tuple[Hospital, ...] = (
    Hospital("ous", "Oslo universitetssykehus", "Helse Sør-Øst"),
    Hospital("haukeland", "Haukeland universitetssjukehus", "Helse Vest"),
    Hospital("st-olav", "St. Olavs hospital", "Helse Midt-Norge"),
    Hospital("unn", "Universitetssykehuset Nord-Norge", "Helse Nord"),
)
BY_ID = {hospital.id: hospital for hospital in HOSPITALS}
