"""Data minimisation: what a transfer record may contain, proven on the schema and on built records."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.export.domain.record import (
    ExportIds,
    TransferRecord,
    build_records,
    canonical_bytes,
    canonical_json,
    depending_on,
)
from services.export.domain.sources import Source, record_key
from services.export.tests import factories as f
from shared.events import SubmissionValidated
from shared.events.forms import Modality, Sex
from shared.hospitals import BY_ID

SCHEMA_FILE = Path(__file__).parents[1] / "domain" / "transfer-record-v1.schema.json"

# Every field a v1 record can carry, at any depth. A new one fails here until it is reviewed.
ALLOWED_FIELDS = {
    "schema_name", "schema_version", "record_id", "revision", "child_id", "tumour_id", "country", "region",
    "content", "kind",
    "birth_year_month", "sex", "diagnosis_year_month", "age_at_diagnosis_days", "topography", "morphology",
    "behaviour", "grade", "laterality", "basis_of_diagnosis", "stage", "iccc_main_group", "iccc_subgroup",
    "iccc_division",
    "modality", "protocol", "intent", "start_day", "end_day",
    "last_contact_day", "vital_status", "death_day", "relapse_day", "relapse_site", "late_effects_count",
}  # fmt: skip
FORBIDDEN_FIELDS = {
    "national_id", "identity_number", "fodselsnummer", "name", "first_name", "last_name", "surname",
    "pseudonym", "child_pseudonym", "birth_date", "hospital_id", "hospital", "tumour_ref", "submission_id",
    "received_event_id", "event_id", "diagnosis_date", "start_date", "end_date", "last_contact_date",
    "death_date", "relapse_date", "late_effects", "findings", "coder_overrides", "received_at", "report_id",
    "supersedes",
}  # fmt: skip


def _field_names(schema: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        names |= set(definition.get("properties", {}))
    return names


def test_the_schema_holds_only_the_allowed_fields_and_none_forbidden() -> None:
    names = _field_names(TransferRecord.model_json_schema())
    assert names == ALLOWED_FIELDS
    assert not names & FORBIDDEN_FIELDS


def test_no_field_can_be_added_to_a_record() -> None:
    record = _build([f.diagnosis(f.child(1, date(2015, 1, 1)), date(2020, 1, 1))])[0]
    data = record.model_dump(mode="json")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TransferRecord.model_validate({**data, "national_id": "15108695088"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TransferRecord.model_validate({**data, "content": {**data["content"], "birth_date": "2015-01-01"}})


def test_the_published_json_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == TransferRecord.model_json_schema()


def _build(events: list[SubmissionValidated], key: bytes = f.KEY) -> list[TransferRecord]:
    return list(build_records([Source(record_key(e), e) for e in events], ExportIds(key)).records.values())


def _values(data: Any) -> list[Any]:
    if isinstance(data, dict):
        return [v for value in data.values() for v in _values(value)]
    if isinstance(data, list):
        return [v for value in data for v in _values(value)]
    return [data]


tumour_refs = st.from_regex(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,20}$", fullmatch=True)
hospitals = st.sampled_from([*BY_ID, "private-clinic"])


@settings(max_examples=200)
@given(
    n=st.integers(0, 10**9),
    diagnosed=st.dates(date(2019, 1, 1), date(2026, 12, 31)),
    age_days=st.integers(0, 18 * 365),  # under 18 years: every record is in scope
    tumour=tumour_refs,
    hospital=hospitals,
    sex=st.sampled_from(Sex),
    # Prefixed so that it can only be found in a record by leaking: bare generated text can be a piece of
    # the record's own field names ("diagnosis_da").
    late_effect=st.text(min_size=12, max_size=40).filter(str.strip).map(lambda text: f"Late effect: {text}"),
)
def test_built_records_carry_no_identifying_value(
    n: int, diagnosed: date, age_days: int, tumour: str, hospital: str, sex: Sex, late_effect: str
) -> None:
    born = diagnosed - timedelta(days=age_days)
    who = f.child(n, born, sex)
    events = [
        f.diagnosis(who, diagnosed, tumour=tumour, hospital=hospital),
        f.treatment(who, diagnosed + timedelta(days=3), tumour=tumour, hospital=hospital),
        f.follow_up(
            who, diagnosed + timedelta(days=400), tumour=tumour, hospital=hospital, late_effects=(late_effect,)
        ),
    ]
    records = _build(events)
    assert len(records) == 3
    text = b"".join(canonical_json(r) for r in records).decode()
    secrets = [who.pseudonym, tumour, late_effect, born.isoformat(), diagnosed.isoformat()]
    secrets += [str(e.submission_id) for e in events] + [str(e.received_event_id) for e in events]
    for secret in secrets:
        assert secret not in text
    values = [v for r in records for v in _values(r.model_dump(mode="json"))]
    assert hospital not in values
    if hospital in BY_ID:
        assert BY_ID[hospital].name not in values
    for record in records:
        assert record.country == "NO"
        assert record.region == (BY_ID[hospital].region if hospital in BY_ID else None)


def test_dates_are_reduced_and_intervals_kept() -> None:
    who = f.child(2, date(2015, 6, 15))
    records = {
        r.content.kind: r
        for r in _build(
            [
                f.diagnosis(who, date(2020, 3, 1)),
                f.treatment(who, date(2020, 2, 28)),
                f.follow_up(who, date(2021, 3, 1), late_effects=("hearing loss, see dr. Hansen",)),
            ]
        )
    }
    dx = records["diagnosis"].model_dump()["content"]
    assert (dx["birth_year_month"], dx["diagnosis_year_month"], dx["age_at_diagnosis_days"]) == (
        "2015-06",
        "2020-03",
        1721,
    )
    assert records["treatment"].model_dump()["content"]["start_day"] == -2  # started before the diagnosis date
    follow_up = records["follow_up"].model_dump()["content"]
    assert (follow_up["last_contact_day"], follow_up["late_effects_count"]) == (365, 1)


def test_export_pseudonyms_link_a_childs_records_but_depend_on_the_export_key() -> None:
    who = f.child(3, date(2015, 6, 15))
    events = [f.diagnosis(who, date(2020, 3, 1)), f.treatment(who, date(2020, 3, 2))]
    records = _build(events)
    assert len({r.child_id for r in records}) == 1
    assert len({r.tumour_id for r in records}) == 1
    assert records[0].child_id != who.pseudonym
    assert records[0].child_id == _build(events)[0].child_id  # stable across transfers
    other_key = _build(events, key=b"another-export-key".ljust(32, b"k"))
    assert other_key[0].child_id != records[0].child_id
    assert {r.record_id for r in other_key}.isdisjoint({r.record_id for r in records})


def test_a_correction_keeps_the_record_id() -> None:
    who = f.child(4, date(2015, 6, 15))
    first = _build([f.diagnosis(who, date(2020, 3, 1))])[0]
    corrected = _build([f.diagnosis(who, date(2020, 3, 9))])[0]
    assert corrected.record_id == first.record_id
    assert corrected != first


def test_reports_without_an_accepted_diagnosis_are_held() -> None:
    who = f.child(5, date(2015, 6, 15))
    built = build_records(
        [Source(record_key(e), e) for e in [f.treatment(who, date(2020, 3, 2)), f.follow_up(who, date(2021, 1, 1))]],
        ExportIds(f.KEY),
    )
    assert (built.records, built.held) == ({}, 2)


def test_submission_ids_do_not_split_a_chain() -> None:
    who = f.child(6, date(2015, 6, 15))
    original = f.treatment(who, date(2020, 3, 2))
    correction = f.treatment(who, date(2020, 3, 3), corrects=original)
    assert record_key(original) == record_key(correction)
    # Also when the version it corrects was rejected and never reached export: the report id names the chain.
    rejected = uuid.uuid4()  # another report's original
    fixed = f.treatment(who, date(2020, 4, 1)).model_copy(update={"report_id": rejected, "supersedes": rejected})
    again = f.treatment(who, date(2020, 4, 2), corrects=fixed)
    assert record_key(fixed) == record_key(again) != record_key(original)


def test_each_treatment_and_follow_up_report_is_a_record_of_its_own() -> None:
    who = f.child(7, date(2015, 6, 15))
    diagnosis = f.diagnosis(who, date(2020, 3, 1))
    chemotherapy = f.treatment(who, date(2020, 3, 2))
    surgery = f.treatment(who, date(2020, 5, 2), modality=Modality.SURGERY, protocol="SIOP")
    first_year, third_year = f.follow_up(who, date(2021, 3, 1)), f.follow_up(who, date(2023, 3, 1))
    records = _build([diagnosis, chemotherapy, surgery, first_year, third_year])
    assert len({r.record_id for r in records}) == 5
    assert len({r.tumour_id for r in records}) == 1
    assert sorted(r.content.kind for r in records) == ["diagnosis", "follow_up", "follow_up", "treatment", "treatment"]
    # A second diagnosis form for the tumour is its diagnosis corrected (intake's rule): the same record.
    assert record_key(f.diagnosis(who, date(2020, 3, 2))) == record_key(diagnosis)


def test_a_diagnosis_changes_its_tumours_records_and_any_other_report_its_own() -> None:
    who = f.child(8, date(2015, 6, 15))
    diagnosis, treatment = f.diagnosis(who, date(2020, 3, 1)), f.treatment(who, date(2020, 3, 2))
    follow_up = f.follow_up(who, date(2021, 3, 1))
    other_tumour = [f.diagnosis(who, date(2021, 1, 1), tumour="T2"), f.treatment(who, date(2021, 1, 2), tumour="T2")]
    sources = [Source(record_key(e), e) for e in [diagnosis, treatment, follow_up, *other_tumour]]
    corrected = f.diagnosis(who, date(2020, 3, 9), corrects=diagnosis)
    assert depending_on([Source(record_key(corrected), corrected)], sources) == {s.record_key for s in sources[:3]}
    assert depending_on([sources[1]], sources) == {sources[1].record_key}
    new = f.treatment(who, date(2020, 4, 1))  # not among the stored reports yet
    assert depending_on([Source(record_key(new), new)], sources) == {record_key(new)}
    assert depending_on([], sources) == set()


def test_building_some_records_builds_them_as_building_all_does() -> None:
    who = f.child(9, date(2015, 6, 15))
    events = [f.diagnosis(who, date(2020, 3, 1)), f.treatment(who, date(2020, 3, 2))]
    sources = [Source(record_key(e), e) for e in [*events, f.follow_up(who, date(2021, 3, 1))]]
    ids = ExportIds(f.KEY)
    every = build_records(sources, ids).records
    some = build_records(sources, ids, {sources[1].record_key}).records
    assert list(some) == [ids.record(sources[1].record_key)]
    assert {k: canonical_json(r) for k, r in some.items()} == {k: canonical_json(every[k]) for k in some}


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=6))
def test_canonical_bytes_are_those_every_stored_hash_was_made_from(data: dict[str, Any]) -> None:
    # Any text: ASCII, control characters, DEL, Norwegian letters, characters beyond the BMP.
    assert canonical_bytes(data) == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def test_a_record_with_a_norwegian_region_is_escaped_as_before() -> None:
    assert canonical_bytes({"region": "Helse Sør-Øst", "x": "\x7f\U0001f600"}) == (
        b'{"region":"Helse S\\u00f8r-\\u00d8st","x":"\\u007f\\ud83d\\ude00"}'
    )
