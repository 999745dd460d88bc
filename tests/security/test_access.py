"""Who may do what, on the running services: a hospital acts only as itself and sees only its own; staff
endpoints are for staff; every route but the health probes wants a token.

The other hospital's data is real (a submission, a draft, figures, reminders), created through the API
with that hospital's token, so a leak would have something to leak.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from deploy.synthetic.identity import synthetic_number
from tests.fault.harness import PLATFORM_SERVICES, FaultPlatform, settle
from tests.fixtures.forms import diagnosis_submission

pytestmark = [pytest.mark.security, pytest.mark.kafka, pytest.mark.slow, pytest.mark.e2e]

ME, OTHER = "ous", "haukeland"
PUBLIC = {"/health", "/ready", "/metrics"}  # probes and metrics: no data of anyone
THEIR_DRAFT = {"form_type": "diagnosis", "tumour_ref": "THEIR-DRAFT-1"}


@dataclass
class Theirs:
    """What the other hospital has."""

    submission_id: str
    tumour_ref: str
    draft_id: str


def _diagnosis(hospital: str, national_id: str, tumour_ref: str) -> dict[str, Any]:
    return diagnosis_submission(hospital, national_id, tumour_ref, diagnosed=date.today() - timedelta(days=45))


def _child(individual: int) -> str:
    for n in range(individual, individual + 40, 2):
        if number := synthetic_number(date(2013, 9, 9), male=False, individual=n):
            return number
    raise AssertionError("no synthetic number")


@pytest.fixture(scope="module")
async def theirs(security_platform: FaultPlatform) -> Theirs:
    platform = security_platform
    body = _diagnosis(OTHER, _child(810), f"SECRET-{uuid.uuid4().hex[:6]}")
    async with httpx.AsyncClient(base_url=platform.url("intake"), headers=platform.headers(OTHER)) as client:
        answer = await client.post("/v1/submissions", json=body)
        assert answer.status_code == 202, answer.text
        draft = await client.post("/v1/drafts", json={"hospital_id": OTHER, "content": {"form": THEIR_DRAFT}})
        assert draft.status_code == 201, draft.text
    await settle(platform)
    return Theirs(body["submission_id"], body["form"]["tumour_ref"], draft.json()["draft_id"])


def _refused(answer: httpx.Response, *statuses: int) -> None:
    assert answer.status_code in statuses, f"{answer.request.method} {answer.request.url}: {answer.status_code}"
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text


async def test_a_hospital_cannot_submit_or_draft_as_another(security_platform: FaultPlatform) -> None:
    platform = security_platform
    async with httpx.AsyncClient(base_url=platform.url("intake"), headers=platform.headers(ME)) as client:
        body = _diagnosis(OTHER, _child(850), "FORGED-1")
        _refused(await client.post("/v1/submissions", json=body), 403)
        _refused(await client.post("/v1/drafts", json={"hospital_id": OTHER, "content": {}}), 403)
    async with httpx.AsyncClient(base_url=platform.url("intake"), headers=platform.headers(OTHER)) as client:
        _refused(await client.get(f"/v1/receipts/{body['submission_id']}"), 404)  # nothing was registered


async def test_a_hospital_cannot_read_or_change_anything_of_another(
    security_platform: FaultPlatform, theirs: Theirs
) -> None:
    platform = security_platform
    intake, stats = platform.url("intake"), platform.url("stats")
    today = date.today()
    async with httpx.AsyncClient(headers=platform.headers(ME), timeout=30.0) as client:
        refusals = [
            await client.get(f"{intake}/v1/receipts/{theirs.submission_id}"),
            await client.get(f"{intake}/v1/receipts", params={"hospital_id": OTHER}),
            await client.get(f"{intake}/v1/drafts/{theirs.draft_id}"),
            await client.put(f"{intake}/v1/drafts/{theirs.draft_id}", json={"content": {"form": {"tumour_ref": "X"}}}),
            await client.delete(f"{intake}/v1/drafts/{theirs.draft_id}"),
            await client.post(
                f"{intake}/v1/drafts/{theirs.draft_id}/submit", json={"submission_id": str(uuid.uuid4())}
            ),
            await client.get(f"{intake}/v1/drafts", params={"hospital_id": OTHER}),
            await client.get(f"{stats}/stats/{OTHER}"),
            await client.get(f"{stats}/stats/{OTHER}/years/{today.year}"),
            await client.get(f"{stats}/stats/{OTHER}/daily", params={"from": str(today), "to": str(today)}),
            await client.get(f"{stats}/stats/registry"),
            await client.get(f"{stats}/reminders", params={"hospital": OTHER}),
        ]
        for answer in refusals:
            _refused(answer, 403, 404)
            assert theirs.tumour_ref not in answer.text and theirs.submission_id not in answer.text.replace(
                str(answer.request.url), ""
            )
        # What a hospital may list is its own only.
        mine = [
            (await client.get(f"{intake}/v1/receipts", params={"limit": 500})).json()["items"],
            (await client.get(f"{intake}/v1/drafts")).json()["items"],
            (await client.get(f"{stats}/reminders")).json(),
        ]
        for listing in mine:
            assert all(entry["hospital_id"] == ME for entry in listing), listing[:3]
    async with httpx.AsyncClient(base_url=intake, headers=platform.headers(OTHER)) as client:
        draft = await client.get(f"/v1/drafts/{theirs.draft_id}")
        assert draft.status_code == 200 and draft.json()["content"]["form"] == THEIR_DRAFT  # untouched


async def test_a_hospital_cannot_reach_staff_endpoints(security_platform: FaultPlatform) -> None:
    platform = security_platform
    intake, export = platform.url("intake"), platform.url("export")
    child = {"national_id": _child(870)}
    async with httpx.AsyncClient(headers=platform.headers(ME), timeout=30.0) as client:
        for answer in (
            await client.post(f"{intake}/v1/reservations", json=child),
            await client.post(f"{intake}/v1/reservations/withdrawals", json=child),
            await client.post(f"{intake}/v1/reservations/lookup", json=child),
            await client.get(f"{export}/export/status"),
            await client.get(f"{export}/export/audit"),
            await client.get(f"{export}/export/audit.csv"),
        ):
            _refused(answer, 403)


def _filled(path: str) -> str:
    values = {"submission_id": str(uuid.uuid4()), "draft_id": str(uuid.uuid4()), "scope": ME, "year": "2024"}
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"a path parameter this test does not know: {path}"
    return path


@pytest.mark.parametrize("service", PLATFORM_SERVICES)
async def test_every_route_wants_a_known_token(security_platform: FaultPlatform, service: str) -> None:
    """Every operation in the service's OpenAPI document, without a token and with an unknown one: 401,
    as a problem document, before anything else is looked at."""
    base = security_platform.url(service)
    unknown = {"Authorization": f"Bearer {'x' * 43}"}
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as client:
        document = (await client.get("/openapi.json")).json()
        checked = 0
        for path, operations in document["paths"].items():
            if path in PUBLIC:
                continue
            for method in operations:
                url = _filled(path)
                params = {"from": "2024-01-01", "to": "2024-01-02"} if path.endswith("/daily") else {}
                for headers in ({}, unknown):
                    answer = await client.request(method, url, params=params, headers=headers, json={})
                    _refused(answer, 401)
                    assert answer.headers.get("www-authenticate") == "Bearer"
                checked += 1
    assert checked >= 1
