"""The NOPHO-Care transfer record, schema `nopho-care-transfer-record` version 1, and its builder.

Data minimisation, decided field by field:
- No identity: no identity number, no name, no registry pseudonym, no submission ids, no hospital id or
  the hospital's tumour reference. The child, the tumour and the record are named by export-only keyed
  pseudonyms (`ExportIds`) that are stable across transfers, so the Nordic side can link a child's
  records but cannot compute them without the key only export holds.
- Dates: the birth date is reduced to year and month and the diagnosis date likewise; the age at
  diagnosis is given in days (infant leukaemia research needs days), and every later date (treatment,
  contact, relapse, death) as days since diagnosis. Exact intervals survive; calendar dates do not.
- Place: country and health region instead of the hospital.
- Free text that may name people (late effects) travels only as a count; protocol and stage are
  short clinical labels and are kept.
A new field or a changed meaning is a new `schema_version`; version 1 never changes. Its JSON Schema,
for the Nordic side, is `transfer-record-v1.schema.json` beside this module (a test keeps it current).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StringConstraints

from services.export.domain.eligibility import age_in_days, in_scope
from services.export.domain.sources import Source, tumour_of
from shared.events import DiagnosisForm, FollowUpForm, StrictModel, TreatmentForm
from shared.events.forms import Histology, Intent, Laterality, Modality, Sex, Topography, VitalStatus
from shared.hospitals import BY_ID
from shared.pseudonym import Pseudonymiser

SCHEMA_NAME = "nopho-care-transfer-record"
SCHEMA_VERSION = 1

YearMonth = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
# The output of `shared.pseudonym.Pseudonymiser`: 32 lowercase base32 characters.
ExportPseudonym = Annotated[str, StringConstraints(pattern=r"^[a-z2-7]{32}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=80)]


class DiagnosisContent(StrictModel):
    """The tumour as diagnosed, in ICD-O-3, with its ICCC-3 classification."""

    kind: Literal["diagnosis"] = "diagnosis"
    birth_year_month: YearMonth = Field(description="The child's birth year and month, YYYY-MM")
    sex: Sex
    diagnosis_year_month: YearMonth = Field(description="Year and month of diagnosis, YYYY-MM")
    age_at_diagnosis_days: int = Field(ge=0, description="Age at diagnosis in days")
    topography: Topography = Field(description="ICD-O-3 topography, e.g. C71.6")
    morphology: Histology = Field(description="ICD-O-3 morphology, e.g. 9470")
    behaviour: int = Field(ge=0, le=3, description="ICD-O-3 behaviour")
    grade: int = Field(ge=1, le=9, description="ICD-O-3 grade, 9 = not determined")
    laterality: Laterality
    basis_of_diagnosis: int = Field(ge=0, le=9, description="IACR basis of diagnosis")
    stage: Label | None = None
    iccc_main_group: str | None = Field(None, description="ICCC-3 main group, roman numeral")
    iccc_subgroup: str | None = Field(None, description="ICCC-3 subgroup, e.g. IIIc")
    iccc_division: str | None = Field(None, description="ICCC-3 division where defined, e.g. IIIc.1")


class TreatmentContent(StrictModel):
    kind: Literal["treatment"] = "treatment"
    modality: Modality
    protocol: Label | None = None
    intent: Intent
    start_day: int = Field(description="Days from diagnosis to the start (negative: started before)")
    end_day: int | None = Field(None, description="Days from diagnosis to the end")


class FollowUpContent(StrictModel):
    kind: Literal["follow_up"] = "follow_up"
    last_contact_day: int = Field(description="Days from diagnosis to the last contact")
    vital_status: VitalStatus
    death_day: int | None = Field(None, description="Days from diagnosis to death")
    relapse_day: int | None = Field(None, description="Days from diagnosis to relapse")
    relapse_site: Topography | None = None
    late_effects_count: int = Field(0, ge=0, description="How many late effects were reported (text withheld)")


Content = Annotated[DiagnosisContent | TreatmentContent | FollowUpContent, Field(discriminator="kind")]


class TransferRecord(StrictModel):
    """One report about one tumour of one child, as the Nordic research database receives it.

    `record_id` is stable across corrections: a corrected report is the same record with a higher
    `revision`. Treatment and follow-up records link to their diagnosis through `tumour_id`.
    """

    schema_name: Literal["nopho-care-transfer-record"] = "nopho-care-transfer-record"
    schema_version: Literal[1] = 1
    record_id: ExportPseudonym
    revision: int = Field(ge=1, description="Increases with every change of this record's content")
    child_id: ExportPseudonym = Field(description="Export-only pseudonym of the child, stable across transfers")
    tumour_id: ExportPseudonym = Field(description="Export-only pseudonym of the tumour")
    country: Literal["NO"] = "NO"
    region: str | None = Field(None, description="Health region of the reporting hospital")
    content: Content


_REMEMBERED = 1 << 14


class ExportIds:
    """The export-only pseudonyms, all keyed with the export key and each bound to its purpose."""

    def __init__(self, key: bytes) -> None:
        # Remembered: a child's records are planned again with every report about it, and each id costs
        # an HMAC and a base32 encoding. The keys are registry pseudonyms and record keys, never identity
        # numbers; some 16,000 of each take a few MB.
        self.child = functools.lru_cache(maxsize=_REMEMBERED)(Pseudonymiser(key, "nopho-care"))
        self.tumour = functools.lru_cache(maxsize=_REMEMBERED)(Pseudonymiser(key, "nopho-care-tumour"))
        self.record = functools.lru_cache(maxsize=_REMEMBERED)(Pseudonymiser(key, "nopho-care-record"))


def canonical_json(record: TransferRecord) -> bytes:
    """The exact bytes sent and hashed: sorted keys, no whitespace, non-ASCII escaped, so equal records
    hash equally. The bytes of `json.dumps(..., sort_keys=True, separators=(",", ":"))`, which made
    every hash the ledger holds, at a fifth of its cost (orjson, then json's ASCII escapes)."""
    return canonical_bytes(record.model_dump(mode="json"))


def content_sha256(record: TransferRecord) -> str:
    """Hash of what the record says, whatever its revision: a revision is due when this changes."""
    data = record.model_dump(mode="json")
    data["revision"] = 1
    return hashlib.sha256(canonical_bytes(data)).hexdigest()


# What json.dumps escapes beyond orjson: every character outside printable ASCII (orjson already escapes
# the control characters, as json does, and leaves the rest as UTF-8).
_NOT_ASCII = re.compile("[\x7f-\U0010ffff]")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a surrogate pair, as json writes it
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


def canonical_bytes(data: dict[str, Any]) -> bytes:
    """A JSON document's canonical encoding (see `canonical_json`)."""
    encoded = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    if encoded.isascii() and b"\x7f" not in encoded:
        return encoded
    return _NOT_ASCII.sub(_json_escape, encoded.decode()).encode()


@dataclass(frozen=True, slots=True)
class Built:
    """The records of one child that NOPHO-Care covers (regardless of reservation), and the reports held
    back because their tumour has no accepted diagnosis yet."""

    records: dict[str, TransferRecord]
    held: int


def build_records(sources: list[Source], ids: ExportIds, only: Collection[str] | None = None) -> Built:
    """Transfer records (revision 1, see `domain.ledger.assign_revisions`) of one child's current reports,
    or of those of them whose record keys are in `only`. `sources` must hold the diagnosis of every tumour
    they name (each record depends on it, see `depending_on`)."""
    diagnoses = {tumour_of(s.event): s for s in sources if isinstance(s.event.form, DiagnosisForm)}
    records: dict[str, TransferRecord] = {}
    held = 0
    for source in sources:
        if only is not None and source.record_key not in only:
            continue
        event = source.event
        tumour = tumour_of(event)
        diagnosis_source = diagnoses.get(tumour)
        if diagnosis_source is None:
            held += 1  # a treatment or follow-up follows its diagnosis, once that is accepted
            continue
        diagnosis = diagnosis_source.event
        assert isinstance(diagnosis.form, DiagnosisForm)
        if not in_scope(diagnosis.child.birth_date, diagnosis.form.diagnosis_date):
            continue
        content = _content(event.form, diagnosis_source, diagnosis.form.diagnosis_date)
        record_id = ids.record(source.record_key)
        hospital = BY_ID.get(event.hospital_id)
        records[record_id] = TransferRecord(
            record_id=record_id,
            revision=1,
            child_id=ids.child(event.child.pseudonym),
            tumour_id=ids.tumour(tumour),
            region=hospital.region if hospital else None,
            content=content,
        )
    return Built(records, held)


def depending_on(changed: Iterable[Source], sources: Iterable[Source]) -> set[str]:
    """The record keys, of `changed` and of `sources`, whose records a change of the `changed` reports can
    change. A record is built from its own report and its tumour's diagnosis only (dates, scope), so a
    diagnosis changes every record of its tumour, and any other report its own record alone."""
    keys = set()
    tumours = set()
    for source in changed:
        keys.add(source.record_key)
        if isinstance(source.event.form, DiagnosisForm):
            tumours.add(tumour_of(source.event))
    if tumours:
        keys.update(s.record_key for s in sources if tumour_of(s.event) in tumours)
    return keys


def _content(
    form: DiagnosisForm | TreatmentForm | FollowUpForm, diagnosis: Source, diagnosed: date
) -> DiagnosisContent | TreatmentContent | FollowUpContent:
    def day(when: date | None) -> int | None:
        return None if when is None else (when - diagnosed).days

    if isinstance(form, DiagnosisForm):
        birth = diagnosis.event.child.birth_date
        iccc = diagnosis.event.iccc
        return DiagnosisContent(
            birth_year_month=f"{birth.year:04d}-{birth.month:02d}",
            sex=form.sex,
            diagnosis_year_month=f"{diagnosed.year:04d}-{diagnosed.month:02d}",
            age_at_diagnosis_days=age_in_days(birth, diagnosed),
            topography=form.topography,
            morphology=form.morphology,
            behaviour=form.behaviour,
            grade=form.grade,
            laterality=form.laterality,
            basis_of_diagnosis=form.basis,
            stage=form.stage,
            iccc_main_group=iccc.main_group if iccc else None,
            iccc_subgroup=iccc.subgroup if iccc else None,
            iccc_division=iccc.division if iccc else None,
        )
    if isinstance(form, TreatmentForm):
        return TreatmentContent(
            modality=form.modality,
            protocol=form.protocol,
            intent=form.intent,
            start_day=(form.start_date - diagnosed).days,
            end_day=day(form.end_date),
        )
    return FollowUpContent(
        last_contact_day=(form.last_contact_date - diagnosed).days,
        vital_status=form.vital_status,
        death_day=day(form.death_date),
        relapse_day=day(form.relapse.relapse_date) if form.relapse else None,
        relapse_site=form.relapse.site if form.relapse else None,
        late_effects_count=len(form.late_effects),
    )
