"""The HTTP API on SQLite, without a broker: what is stored, what the outbox holds, what the client sees."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from services.intake.storage import Submission, VaultEntry
from services.intake.tests.conftest import OUS, STAFF, UNN, Harness
from services.intake.tests.factories import (
    CHILD,
    OTHER_CHILD,
    diagnosis,
    encode,
    follow_up,
    make_id,
    submission,
    treatment,
)
from shared.events import ReceiptIssued, ReservationRegistered, ReservationWithdrawn, SubmissionReceived
from shared.events.forms import Sex
from shared.topics import RECEIPTS, RESERVATIONS, SUBMISSIONS_RECEIVED


async def post(harness: Harness, body: dict[str, Any] | bytes, headers: dict[str, str] = OUS) -> Any:
    content = body if isinstance(body, bytes) else encode(body)
    return await harness.client.post(
        "/v1/submissions", content=content, headers=headers | {"Content-Type": "application/json"}
    )


async def stored(harness: Harness) -> int:
    async with harness.service.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Submission)) or 0)


# --- submitting ---------------------------------------------------------------------------------------


async def test_a_submission_is_accepted_with_a_receipt_and_its_events_wait_in_the_outbox(harness: Harness) -> None:
    body = submission()
    response = await post(harness, body)

    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["submission_id"] == body["submission_id"]
    assert receipt["status"] == "received"
    assert receipt["supersedes"] is None
    assert response.headers["location"] == f"/v1/receipts/{body['submission_id']}"

    rows = await harness.outbox()
    assert [row.topic for row in rows] == [SUBMISSIONS_RECEIVED.name, RECEIPTS.name]
    event = SubmissionReceived.from_json(rows[0].payload)
    assert event.child.birth_date == date(2015, 6, 1)
    assert event.child.sex is Sex.FEMALE
    assert rows[0].key == event.child.pseudonym
    assert rows[1].key == "ous"
    assert ReceiptIssued.from_json(rows[1].payload).status == "received"
    # The identity number is in no event and not in the database in clear.
    assert all(CHILD not in row.payload for row in rows)
    async with harness.service.sessions() as session:
        vault = (await session.scalars(select(VaultEntry))).one()
    assert CHILD not in vault.national_id_sealed and vault.pseudonym == event.child.pseudonym


async def test_the_same_submission_again_returns_the_same_receipt(harness: Harness) -> None:
    body = submission()
    first = await post(harness, body)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()  # same content, other bytes
    again = await post(harness, reordered)

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    assert await stored(harness) == 1
    assert len(await harness.outbox()) == 2


async def test_the_same_submission_id_with_another_content_is_a_conflict(harness: Harness) -> None:
    body = submission()
    await post(harness, body)
    changed = body | {"form": diagnosis(grade=1)}
    response = await post(harness, changed)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert await stored(harness) == 1


async def test_a_later_diagnosis_for_the_same_tumour_corrects_the_current_one(harness: Harness) -> None:
    first = submission()
    await post(harness, first)
    await post(harness, submission(form=treatment()))  # other form type: a report of its own
    correction = submission(form=diagnosis(grade=1), made_at=datetime(2024, 3, 5, tzinfo=UTC))
    response = await post(harness, correction)

    assert response.status_code == 202
    assert response.json()["supersedes"] == first["submission_id"]
    assert response.json()["report_id"] == first["submission_id"]
    again = submission(form=diagnosis(grade=2), made_at=datetime(2024, 3, 6, tzinfo=UTC))
    assert (await post(harness, again | {"corrects": correction["submission_id"]})).status_code == 202
    events = [SubmissionReceived.from_json(row.payload) for row in await harness.outbox(SUBMISSIONS_RECEIVED.name)]
    assert [str(e.supersedes) if e.supersedes else None for e in events] == [
        None,
        None,
        first["submission_id"],
        correction["submission_id"],
    ]
    assert [str(e.report_id) for e in events] == [
        first["submission_id"],
        str(events[1].submission_id),
        first["submission_id"],
        first["submission_id"],
    ]
    assert await stored(harness) == 4  # history kept


async def test_each_treatment_and_follow_up_is_a_report_until_a_correction_names_it(harness: Harness) -> None:
    await post(harness, submission())
    chemotherapy = submission(form=treatment())
    surgery = submission(
        form=treatment(modality="surgery", start_date="2024-04-02"), made_at=datetime(2024, 4, 9, tzinfo=UTC)
    )
    year_one = submission(form=follow_up(), made_at=datetime(2025, 3, 9, tzinfo=UTC))
    year_two = submission(form=follow_up(last_contact_date="2026-03-01"), made_at=datetime(2025, 3, 10, tzinfo=UTC))
    for body in (chemotherapy, surgery, year_one, year_two):
        response = await post(harness, body)
        assert response.status_code == 202, response.text
        assert (response.json()["report_id"], response.json()["supersedes"]) == (body["submission_id"], None)

    fix = submission(form=treatment(start_date="2024-03-11"), made_at=datetime(2024, 4, 10, tzinfo=UTC))
    response = await post(harness, fix | {"corrects": chemotherapy["submission_id"]})
    assert response.status_code == 202, response.text
    assert (response.json()["report_id"], response.json()["supersedes"]) == (
        chemotherapy["submission_id"],
        chemotherapy["submission_id"],
    )
    # A correction of the correction stays on the chemotherapy report; the surgery report is untouched.
    refix = submission(form=treatment(start_date="2024-03-12"), made_at=datetime(2024, 4, 11, tzinfo=UTC))
    response = await post(harness, refix | {"corrects": fix["submission_id"]})
    assert (response.json()["report_id"], response.json()["supersedes"]) == (
        chemotherapy["submission_id"],
        fix["submission_id"],
    )
    receipt = (await harness.client.get(f"/v1/receipts/{surgery['submission_id']}", headers=OUS)).json()
    assert receipt["report_id"] == surgery["submission_id"]


async def test_a_correction_naming_what_it_cannot_correct_is_refused_with_the_reason(harness: Harness) -> None:
    diagnosed = submission()
    chemotherapy = submission(form=treatment())
    year_one = submission(form=follow_up(), made_at=datetime(2024, 3, 3, tzinfo=UTC))
    for body in (diagnosed, chemotherapy, year_one):
        assert (await post(harness, body)).status_code == 202
    later = datetime(2024, 3, 4, tzinfo=UTC)
    fix = submission(form=treatment(start_date="2024-03-11"), made_at=later, corrects=chemotherapy["submission_id"])
    assert (await post(harness, fix)).status_code == 202
    elsewhere = submission("unn", national_id=OTHER_CHILD, form=treatment("U-1"))
    await post(harness, submission("unn", national_id=OTHER_CHILD, form=diagnosis("U-1", sex="male")), UNN)
    assert (await post(harness, elsewhere, UNN)).status_code == 202

    def correcting(target: dict[str, Any], form: dict[str, Any] | None = None) -> dict[str, Any]:
        return submission(form=form or treatment(), made_at=later, corrects=target["submission_id"])

    unknown = _errors(await post(harness, submission(form=treatment(), made_at=later, corrects=str(uuid.uuid4()))))
    assert unknown == {"corrects": "names no earlier submission of this hospital with tumour reference 'T-1'"}
    # Another hospital's submission, or another tumour's, is not one this form can correct.
    assert list(_errors(await post(harness, correcting(elsewhere)))) == ["corrects"]
    assert _errors(await post(harness, correcting(diagnosed))) == {
        "corrects": "names a diagnosis form; a treatment form corrects a treatment form"
    }
    assert list(_errors(await post(harness, correcting(chemotherapy, follow_up())))) == ["corrects"]
    assert list(_errors(await post(harness, correcting(year_one, diagnosis())))) == ["corrects"]
    assert _errors(await post(harness, correcting(chemotherapy))) == {
        "corrects": f"names submission {chemotherapy['submission_id']}, which submission {fix['submission_id']}"
        f" already corrects; a correction names the report's current version, {fix['submission_id']}"
    }
    older = submission(form=treatment(), made_at=datetime(2024, 3, 1, tzinfo=UTC), corrects=fix["submission_id"])
    assert list(_errors(await post(harness, older))) == ["made_at"]
    assert await stored(harness) == 6


async def test_a_draft_may_correct_a_submission(harness: Harness) -> None:
    await post(harness, submission())
    chemotherapy = submission(form=treatment())
    await post(harness, chemotherapy)
    content = {
        "made_at": "2024-03-05T10:00:00+00:00",
        "patient": {"national_id": CHILD},
        "form": treatment(start_date="2024-03-11"),
        "corrects": chemotherapy["submission_id"],
    }
    created = await harness.client.post("/v1/drafts", json={"hospital_id": "ous", "content": content}, headers=OUS)
    assert created.status_code == 201, created.text
    assert created.json()["content"]["corrects"] == chemotherapy["submission_id"]
    url = f"/v1/drafts/{created.json()['draft_id']}/submit"
    submitted = await harness.client.post(url, json={"submission_id": str(uuid.uuid4())}, headers=OUS)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["supersedes"] == chemotherapy["submission_id"]


async def test_a_correction_older_than_the_original_is_refused(harness: Harness) -> None:
    await post(harness, submission(made_at=datetime(2024, 3, 5, tzinfo=UTC)))
    response = await post(harness, submission(made_at=datetime(2024, 3, 4, tzinfo=UTC)))

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["made_at"]


async def test_a_tumour_reference_belongs_to_one_child(harness: Harness) -> None:
    await post(harness, submission())
    response = await post(harness, submission(national_id=OTHER_CHILD, form=diagnosis(sex="male")))

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "form.tumour_ref", "reason": "is already used by this hospital for another child"}
    ]
    # Another hospital may use the same reference for its own patient.
    other = await post(harness, submission("unn", national_id=OTHER_CHILD, form=diagnosis(sex="male")), UNN)
    assert other.status_code == 202


async def test_d_numbers_and_synthetic_numbers_are_accepted(harness: Harness) -> None:
    for n, number in enumerate(
        [make_id(date(2014, 2, 3), day_offset=40), make_id(date(2014, 2, 3), month_offset=80, nth=1)]
    ):
        response = await post(harness, submission(national_id=number, form=diagnosis(tumour_ref=f"T-{n}")))
        assert response.status_code == 202, response.text


# --- authentication and authorization -------------------------------------------------------------------


async def test_missing_or_unknown_token_is_401(harness: Harness) -> None:
    assert (await post(harness, submission(), headers={})).status_code == 401
    response = await post(harness, submission(), headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await harness.client.get(f"/v1/receipts/{uuid.uuid4()}")).status_code == 401


async def test_a_hospital_submits_only_as_itself_and_reads_only_its_own(harness: Harness) -> None:
    assert (await post(harness, submission("ous"), UNN)).status_code == 403
    assert await stored(harness) == 0

    own = (await post(harness, submission("ous"), OUS)).json()
    assert (await harness.client.get(f"/v1/receipts/{own['submission_id']}", headers=UNN)).status_code == 403
    assert (await harness.client.get(f"/v1/receipts/{own['submission_id']}", headers=OUS)).status_code == 200
    assert (await harness.client.get(f"/v1/receipts/{own['submission_id']}", headers=STAFF)).status_code == 200
    assert (await harness.client.get("/v1/receipts?hospital_id=ous", headers=UNN)).status_code == 403
    assert (await harness.client.get("/v1/receipts", headers=UNN)).json()["items"] == []

    draft = await harness.client.post("/v1/drafts", json={"hospital_id": "ous", "content": {}}, headers=OUS)
    draft_url = f"/v1/drafts/{draft.json()['draft_id']}"
    assert (await harness.client.get(draft_url, headers=UNN)).status_code == 403
    assert (await harness.client.put(draft_url, json={"content": {}}, headers=UNN)).status_code == 403
    assert (await harness.client.delete(draft_url, headers=UNN)).status_code == 403
    submit = await harness.client.post(f"{draft_url}/submit", json={"submission_id": str(uuid.uuid4())}, headers=UNN)
    assert submit.status_code == 403
    assert (
        await harness.client.post("/v1/drafts", json={"hospital_id": "ous", "content": {}}, headers=UNN)
    ).status_code == 403


async def test_reservations_are_for_registry_staff_only(harness: Harness) -> None:
    response = await harness.client.post("/v1/reservations", json={"national_id": CHILD}, headers=OUS)
    assert response.status_code == 403
    assert await harness.outbox() == []


# --- bad input --------------------------------------------------------------------------------------------


def _errors(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["title"]
    return {error["field"]: error["reason"] for error in problem["errors"]}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b | {"form_version": "1"}, "form_version"),  # a string where an int belongs
        (lambda b: b | {"form_version": 2}, "form_version"),
        (lambda b: b | {"surprise": True}, "surprise"),  # unknown field
        (lambda b: b | {"form": diagnosis(shoe_size=42)}, "form.shoe_size"),
        (lambda b: b | {"form": diagnosis(behaviour="3")}, "form.behaviour"),
        (lambda b: b | {"form": diagnosis(diagnosis_date="2024-02-30")}, "form.diagnosis_date"),  # impossible date
        (lambda b: b | {"form": diagnosis(topography="C716")}, "form.topography"),  # invalid code
        (lambda b: b | {"form": diagnosis(morphology="94700")}, "form.morphology"),
        (lambda b: b | {"form": diagnosis(behaviour=6)}, "form.behaviour"),
        (lambda b: b | {"form": diagnosis(grade=0)}, "form.grade"),
        (lambda b: b | {"form": diagnosis(basis=10)}, "form.basis"),
        (lambda b: b | {"form": diagnosis(laterality="middle")}, "form.laterality"),
        (lambda b: b | {"form": {"form_type": "autopsy"}}, "form"),
        (lambda b: b | {"made_at": "2024-03-02T12:00:00"}, "made_at"),  # no time zone
        (lambda b: b | {"submission_id": "42"}, "submission_id"),
        (lambda b: b | {"hospital_id": "Not A Hospital"}, "hospital_id"),
        (lambda b: {k: v for k, v in b.items() if k != "patient"}, "patient"),
        (lambda b: b | {"patient": {"national_id": 15108695088}}, "patient.national_id"),
    ],
)
async def test_schema_violations_name_the_field(harness: Harness, mutate: Any, field: str) -> None:
    errors = _errors(await post(harness, mutate(submission())))
    assert field in errors, errors
    assert await stored(harness) == 0 and await harness.outbox() == []


async def test_every_error_of_a_body_is_listed(harness: Harness) -> None:
    body = submission(form=diagnosis(grade=0, basis=10, topography="X"), form_version=3)
    assert set(_errors(await post(harness, body))) == {"form.grade", "form.basis", "form.topography", "form_version"}


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[]", b"null", b'{"submission_id": }', '{"a": "\udc80"}'.encode("utf-8", "surrogatepass")]
)
async def test_malformed_json_is_422(harness: Harness, content: bytes) -> None:
    response = await post(harness, content)
    assert response.status_code == 422
    assert response.json()["errors"]


async def test_an_invalid_identity_number_is_refused_without_echoing_it(harness: Harness) -> None:
    wrong = CHILD[:-1] + str((int(CHILD[-1]) + 1) % 10)
    response = await post(harness, submission(national_id=wrong))

    assert _errors(response) == {"patient.national_id": "the second control digit does not match"}
    assert wrong not in response.text and wrong[:6] not in response.text
    malformed = await post(harness, submission(national_id="1234567890X"))
    assert "1234567890X" not in malformed.text


async def test_a_form_contradicting_the_identity_number_is_refused(harness: Harness) -> None:
    body = submission(form=diagnosis(sex="male"))
    body["patient"]["birth_date"] = "2015-06-02"
    errors = _errors(await post(harness, body))
    assert set(errors) == {"form.sex", "patient.birth_date"}


async def test_a_form_made_in_the_future_is_refused(harness: Harness) -> None:
    body = submission(made_at=datetime.now(UTC) + timedelta(hours=1))
    assert set(_errors(await post(harness, body))) == {"made_at"}


async def test_an_unknown_hospital_is_refused(harness: Harness) -> None:
    assert set(_errors(await post(harness, submission("nowhere"), STAFF))) == {"hospital_id"}


async def test_bodies_over_the_limit_are_413_before_parsing(harness: Harness) -> None:
    big = submission(form=treatment(protocol="x" * 80)) | {"padding": "x" * (256 * 1024)}
    response = await post(harness, big)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"

    async def chunks() -> Any:  # no Content-Length: the limit holds while streaming
        for _ in range(300):
            yield b"x" * 1024

    streamed = await harness.client.post("/v1/submissions", content=chunks(), headers=OUS)
    assert streamed.status_code == 413
    assert await stored(harness) == 0


# --- receipts -------------------------------------------------------------------------------------------


async def test_receipts_are_listed_by_status_and_time_in_pages(harness: Harness) -> None:
    ids = []
    for n in range(5):
        response = await post(harness, submission(form=diagnosis(tumour_ref=f"T-{n}")))
        ids.append(response.json()["submission_id"])
    await post(harness, submission("unn", form=diagnosis(tumour_ref="U-1")), UNN)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "status": "received"}
        if cursor:
            params["cursor"] = cursor
        page = (await harness.client.get("/v1/receipts", params=params, headers=OUS)).json()
        seen += [item["submission_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    assert (await harness.client.get("/v1/receipts", params={"status": "accepted"}, headers=OUS)).json()["items"] == []
    everyone = (await harness.client.get("/v1/receipts", headers=STAFF)).json()["items"]
    assert len(everyone) == 6
    later = datetime.now(UTC) + timedelta(minutes=1)
    params = {"received_from": later.isoformat()}
    assert (await harness.client.get("/v1/receipts", params=params, headers=OUS)).json()["items"] == []
    assert (await harness.client.get("/v1/receipts", params={"cursor": "bogus"}, headers=OUS)).status_code == 422
    assert (await harness.client.get(f"/v1/receipts/{uuid.uuid4()}", headers=OUS)).status_code == 404


# --- drafts ---------------------------------------------------------------------------------------------


async def test_a_draft_is_created_updated_listed_and_submitted(harness: Harness) -> None:
    created = await harness.client.post(
        "/v1/drafts", json={"hospital_id": "ous", "content": {"form": {"form_type": "diagnosis"}}}, headers=OUS
    )
    assert created.status_code == 201, created.text
    draft = created.json()
    url = f"/v1/drafts/{draft['draft_id']}"
    assert created.headers["etag"] == '"1"'

    content = {"patient": {"national_id": CHILD}, "form": diagnosis()}
    updated = await harness.client.put(url, json={"content": content}, headers=OUS | {"If-Match": '"1"'})
    assert updated.status_code == 200 and updated.json()["version"] == 2
    stale = await harness.client.put(url, json={"content": content}, headers=OUS | {"If-Match": '"1"'})
    assert stale.status_code == 412

    read = (await harness.client.get(url, headers=OUS)).json()
    assert read["content"]["patient"]["national_id"] == CHILD and read["tumour_ref"] == "T-1"
    listed = (await harness.client.get("/v1/drafts", headers=OUS)).json()["items"]
    assert [d["draft_id"] for d in listed] == [draft["draft_id"]] and "content" not in listed[0]

    submission_id = str(uuid.uuid4())
    submitted = await harness.client.post(f"{url}/submit", json={"submission_id": submission_id}, headers=OUS)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["status"] == "received"
    again = await harness.client.post(f"{url}/submit", json={"submission_id": submission_id}, headers=OUS)
    assert again.status_code == 200 and again.json() == submitted.json()
    assert (await harness.client.get(url, headers=OUS)).status_code == 404
    assert len(await harness.outbox(SUBMISSIONS_RECEIVED.name)) == 1


async def test_an_incomplete_draft_cannot_be_submitted_and_stays(harness: Harness) -> None:
    created = await harness.client.post(
        "/v1/drafts", json={"hospital_id": "ous", "content": {"form": {"form_type": "treatment"}}}, headers=OUS
    )
    url = f"/v1/drafts/{created.json()['draft_id']}"
    response = await harness.client.post(f"{url}/submit", json={"submission_id": str(uuid.uuid4())}, headers=OUS)
    assert set(_errors(response)) >= {"patient.national_id", "form.tumour_ref", "form.modality", "form.start_date"}
    assert (await harness.client.get(url, headers=OUS)).status_code == 200
    assert await stored(harness) == 0


async def test_drafts_are_sealed_at_rest_and_deleted_on_request(harness: Harness) -> None:
    content = {"patient": {"national_id": CHILD}}
    created = await harness.client.post("/v1/drafts", json={"hospital_id": "ous", "content": content}, headers=OUS)
    url = f"/v1/drafts/{created.json()['draft_id']}"
    async with harness.service.engine.connect() as connection:
        raw = (await connection.exec_driver_sql("select content_sealed from drafts")).scalar_one()
    assert CHILD not in raw
    assert (await harness.client.delete(url, headers=OUS)).status_code == 204
    assert (await harness.client.delete(url, headers=OUS)).status_code == 404


async def test_a_draft_content_is_checked_at_the_top_level_only(harness: Harness) -> None:
    bad = await harness.client.post("/v1/drafts", json={"hospital_id": "ous", "content": {"from": {}}}, headers=OUS)
    assert set(_errors(bad)) == {"content.from"}
    partial = {"form": {"form_type": "diagnosis", "grade": "not yet"}}
    ok = await harness.client.post("/v1/drafts", json={"hospital_id": "ous", "content": partial}, headers=OUS)
    assert ok.status_code == 201


# --- reservations ---------------------------------------------------------------------------------------


async def test_reservations_are_registered_and_withdrawn_with_events_keyed_by_pseudonym(harness: Harness) -> None:
    registered = await harness.client.post("/v1/reservations", json={"national_id": CHILD}, headers=STAFF)
    assert registered.status_code == 201, registered.text
    view = registered.json()
    assert view["status"] == "active" and view["recorded_by"] == "coder.anna"
    assert CHILD not in registered.text
    again = await harness.client.post("/v1/reservations", json={"national_id": CHILD}, headers=STAFF)
    assert again.status_code == 200 and again.json()["reservation_id"] == view["reservation_id"]

    withdrawn = await harness.client.post("/v1/reservations/withdrawals", json={"national_id": CHILD}, headers=STAFF)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    none_left = await harness.client.post("/v1/reservations/withdrawals", json={"national_id": CHILD}, headers=STAFF)
    assert none_left.status_code == 404
    lookup = await harness.client.post("/v1/reservations/lookup", json={"national_id": CHILD}, headers=STAFF)
    assert lookup.json()["status"] == "withdrawn"

    rows = await harness.outbox(RESERVATIONS.name)
    events = [ReservationRegistered.from_json(rows[0].payload), ReservationWithdrawn.from_json(rows[1].payload)]
    assert {row.key for row in rows} == {events[0].child_pseudonym}
    assert {str(e.reservation_id) for e in events} == {view["reservation_id"]}

    # A submission about the same child carries the same pseudonym.
    await post(harness, submission())
    received = await harness.outbox_events(SUBMISSIONS_RECEIVED.name, SubmissionReceived)
    assert isinstance(received[0], SubmissionReceived)
    assert received[0].child.pseudonym == events[0].child_pseudonym


async def test_a_reservation_needs_a_valid_identity_number(harness: Harness) -> None:
    response = await harness.client.post("/v1/reservations", json={"national_id": "12345678901"}, headers=STAFF)
    assert set(_errors(response)) == {"national_id"}
    assert "12345678901" not in response.text


# --- documentation --------------------------------------------------------------------------------------


async def test_the_openapi_document_describes_the_request_bodies(harness: Harness) -> None:
    document = (await harness.client.get("/openapi.json")).json()
    body = document["paths"]["/v1/submissions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/HospitalSubmission"}
    schemas = document["components"]["schemas"]
    for name in ("HospitalSubmission", "PatientIdentity", "DiagnosisForm", "TreatmentForm", "FollowUpForm", "Receipt"):
        assert name in schemas
    references = {ref for ref in _refs(document)}
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in references)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_concurrent_resends_register_one_submission(harness: Harness) -> None:
    body = submission()
    responses = await asyncio.gather(*(post(harness, body) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert await stored(harness) == 1


async def test_outcomes_are_counted_by_hospital_and_form_type(harness: Harness) -> None:
    def count(outcome: str, hospital: str = "ous", form_type: str = "diagnosis") -> float:
        labels = {"hospital": hospital, "form_type": form_type, "outcome": outcome}
        return REGISTRY.get_sample_value("intake_submissions_total", labels) or 0.0

    before = {o: count(o) for o in ("received", "duplicate", "conflict", "refused")}
    unknown_before = count("refused", "unknown", "unknown")
    body = submission()
    await post(harness, body)
    await post(harness, body)
    await post(harness, body | {"form": diagnosis(grade=2)})
    await post(harness, submission(form=diagnosis(sex="male")))
    await post(harness, b"{")
    assert {o: count(o) - before[o] for o in before} == {"received": 1, "duplicate": 1, "conflict": 1, "refused": 1}
    assert count("refused", "unknown", "unknown") - unknown_before == 1
