"""The event contracts every service relies on: strict decoding, stable envelopes, topic ownership."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events import (
    Child,
    DiagnosisForm,
    Event,
    ReservationRegistered,
    SubmissionReceived,
    SubmissionValidated,
    TreatmentForm,
    derived_event_id,
)
from shared.events.submissions import HospitalSubmission
from shared.kafka.codec import decoder_for
from shared.topics import ALL_TOPICS, RESERVATIONS, STATS_SNAPSHOTS, Cleanup, Key

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def received(**overrides: Any) -> SubmissionReceived:
    submission_id = uuid.uuid4()
    fields: dict[str, Any] = dict(
        submission_id=submission_id,
        hospital_id="ous",
        child=Child(pseudonym="a" * 32, birth_date=date(2015, 1, 1), sex="male"),
        form_version=1,
        form=DiagnosisForm(
            tumour_ref="T1",
            sex="male",
            diagnosis_date=date(2024, 2, 1),
            topography="C71.6",
            morphology="9470",
            behaviour=3,
            grade=9,
            basis=7,
        ),
        made_at=NOW,
        received_at=NOW,
        channel="http",
        report_id=submission_id,
    )
    return SubmissionReceived(**(fields | overrides))


def test_round_trip_keeps_every_field() -> None:
    event = received()
    assert SubmissionReceived.from_json(event.to_json()) == event


def test_envelope_is_pinned() -> None:
    body = json.loads(received().to_json())
    assert (body["event_type"], body["schema_version"], body["producer"]) == ("submission.received", 1, "intake")
    body["schema_version"] = 2
    with pytest.raises(ValidationError, match="schema_version"):
        SubmissionReceived.from_json(json.dumps(body))


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("form", "behaviour"), "3", "valid integer"),  # strict: no string-to-int coercion
        (("form", "topography"), "C716", "pattern"),
        (("form", "grade"), 0, "greater than or equal to 1"),
        (("child", "sex"), "boy", "'male' or 'female'"),
        (("made_at",), "2024-03-01T12:00:00", "timezone"),  # naive datetimes are ambiguous
        (("form", "diagnosis_date"), "2023-02-30", "date"),
    ],
)
def test_wrong_types_are_rejected_with_the_field(path: tuple[str, ...], value: object, error: str) -> None:
    body = json.loads(received().to_json())
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as excinfo:
        SubmissionReceived.from_json(json.dumps(body))
    [err] = excinfo.value.errors()
    # The discriminated union names the member it tried: form.diagnosis.<field>.
    location = [str(p) for p in err["loc"]]
    if location[:2] == ["form", "diagnosis"]:
        del location[1]
    assert location == list(path)
    assert error in err["msg"]


def test_every_report_carries_its_report_id_and_a_correction_what_it_supersedes() -> None:
    original = received()
    correction = received(report_id=original.report_id, supersedes=original.submission_id)
    assert SubmissionReceived.from_json(correction.to_json()) == correction
    assert original.report_id == original.submission_id and correction.report_id == original.submission_id
    body = json.loads(original.to_json())
    del body["report_id"]
    with pytest.raises(ValidationError, match="report_id"):
        SubmissionReceived.from_json(json.dumps(body))
    outcome = SubmissionValidated(
        submission_id=correction.submission_id,
        received_event_id=correction.event_id,
        hospital_id=correction.hospital_id,
        child=correction.child,
        form=correction.form,
        received_at=correction.received_at,
        report_id=correction.report_id,
        supersedes=correction.supersedes,
    )
    body = json.loads(outcome.to_json())
    assert (body["report_id"], body["supersedes"]) == (str(original.submission_id),) * 2
    del body["report_id"]
    with pytest.raises(ValidationError, match="report_id"):
        SubmissionValidated.from_json(json.dumps(body))


def test_a_hospital_names_what_its_message_corrects_or_nothing() -> None:
    body = {
        "submission_id": str(uuid.uuid4()),
        "hospital_id": "ous",
        "form_version": 1,
        "made_at": NOW.isoformat(),
        "patient": {"national_id": "15108695088"},
        "form": {"form_type": "treatment", "tumour_ref": "T1", "modality": "surgery", "start_date": "2024-02-03"},
    }
    assert HospitalSubmission.from_json(json.dumps(body)).corrects is None
    corrected = uuid.uuid4()
    assert HospitalSubmission.from_json(json.dumps(body | {"corrects": str(corrected)})).corrects == corrected
    with pytest.raises(ValidationError, match="corrects"):
        HospitalSubmission.from_json(json.dumps(body | {"corrects": "the chemotherapy report"}))


def test_unknown_fields_are_rejected_everywhere() -> None:
    body = json.loads(received().to_json())
    body["form"]["national_id"] = "01010112345"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SubmissionReceived.from_json(json.dumps(body))


def test_form_union_is_discriminated_by_form_type() -> None:
    treatment = TreatmentForm(tumour_ref="T1", modality="chemotherapy", start_date=date(2024, 2, 3))
    event = received(form=treatment)
    assert isinstance(SubmissionReceived.from_json(event.to_json()).form, TreatmentForm)


def test_events_never_carry_identity_fields() -> None:
    def field_names(model: type) -> set[str]:
        names: set[str] = set()
        for name, info in model.model_fields.items():
            names.add(name)
            annotation = info.annotation
            for candidate in getattr(annotation, "__args__", (annotation,)):
                if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
                    names |= field_names(candidate)
        return names

    forbidden = {"national_id", "fodselsnummer", "name", "first_name", "last_name"}
    for spec in ALL_TOPICS:
        for event_type in spec.events:
            assert not field_names(event_type) & forbidden, event_type.__name__


def test_derived_ids_are_deterministic_and_distinct() -> None:
    source = uuid.uuid4()
    assert derived_event_id(source, "validated") == derived_event_id(source, "validated")
    assert derived_event_id(source, "validated") != derived_event_id(source, "receipt")


def test_derived_ids_are_the_uuid5_ids_already_on_the_topics() -> None:
    namespace = uuid.UUID("6f1d2a52-8a0e-4f0b-9e55-2b7f3c0f9a11")
    for source in (uuid.uuid4(), uuid.UUID(int=0), "stats.snapshot:registry", "ø-é"):
        for purpose in ("validation:0f3a", "receipt", "", "3"):
            assert derived_event_id(source, purpose) == uuid.uuid5(namespace, f"{source}:{purpose}")
    assert derived_event_id(uuid.UUID(int=1), "receipt") == uuid.UUID("61998fb1-ce67-5630-a76a-6ef6689233d3")


def test_every_event_type_lives_on_exactly_one_topic() -> None:
    owners: dict[type[Event], str] = {}
    for spec in ALL_TOPICS:
        for event_type in spec.events:
            assert event_type not in owners, f"{event_type.__name__} on {owners.get(event_type)} and {spec.name}"
            owners[event_type] = spec.name
    assert len({spec.name for spec in ALL_TOPICS}) == len(ALL_TOPICS)


def test_state_topics_are_compacted_and_keyed() -> None:
    assert RESERVATIONS.cleanup is Cleanup.COMPACT and RESERVATIONS.key is Key.CHILD_PSEUDONYM
    assert STATS_SNAPSHOTS.cleanup is Cleanup.COMPACT and STATS_SNAPSHOTS.key is Key.SCOPE
    assert RESERVATIONS.config(min_insync_replicas=2)["min.insync.replicas"] == "2"


def test_union_topics_decode_each_member() -> None:
    decode = decoder_for(RESERVATIONS)
    event = ReservationRegistered(
        reservation_id=uuid.uuid4(), child_pseudonym="b" * 32, recorded_by="coder.anna", effective_at=NOW
    )
    assert decode(event.to_json()) == event
    with pytest.raises(ValidationError):
        decode(b'{"event_type": "reservation.unknown"}')
