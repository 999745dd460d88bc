"""The HTTP API: hospital tokens see their own hospital, staff see everything; problems for errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest
from fastapi import FastAPI

from services.stats.app import MIGRATIONS, create_app
from services.stats.application import StatsApplication
from services.stats.tests.conftest import ManualClock, stats_settings
from services.stats.tests.factories import STORY_TODAY, story
from shared.auth import Role, TokenEntry, TokenStore, digest
from shared.db.migrations import upgrade

OUS, STAFF, HAUKELAND = "ous-token", "staff-token", "haukeland-token"


@pytest.fixture
async def app(sqlite_url: str, clock: ManualClock) -> AsyncIterator[FastAPI]:
    app = create_app(stats_settings(sqlite_url), clock)  # no lifespan: no broker needed for the API
    app.state.tokens = TokenStore(
        [
            TokenEntry(name="ous-portal", role=Role.HOSPITAL, hospital_id="ous", sha256=digest(OUS)),
            TokenEntry(name="hk-portal", role=Role.HOSPITAL, hospital_id="haukeland", sha256=digest(HAUKELAND)),
            TokenEntry(name="coder", role=Role.STAFF, sha256=digest(STAFF)),
        ]
    )
    service = app.state.service
    await upgrade(service.engine, MIGRATIONS)
    stats: StatsApplication = app.state.stats
    clock.set_day(STORY_TODAY)
    await stats.apply(story().events, announce=False)
    stats.publish = _discard
    await stats.flush()
    yield app
    await service.engine.dispose()


async def _discard(_: object) -> None:
    return None


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://stats") as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_hospital_sees_its_own_figures(client: httpx.AsyncClient) -> None:
    response = await client.get("/stats/ous", headers=auth(OUS))
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == "ous"
    assert body["total"]["tumours"] == 4
    assert body["total"]["with_treatment_report"] == {
        "numerator": 3,
        "denominator": 4,
        "ratio": 0.75,
        "target": 0.8,
        "target_is_maximum": False,
    }


@pytest.mark.parametrize("path", ["/stats/haukeland", "/stats/registry", "/stats/haukeland/years/2024"])
async def test_a_hospital_may_not_see_other_scopes(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers=auth(OUS))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_staff_see_every_scope(client: httpx.AsyncClient) -> None:
    for scope, tumours in (("ous", 4), ("haukeland", 1), ("registry", 5), ("st-olav", 0)):
        response = await client.get(f"/stats/{scope}", headers=auth(STAFF))
        assert response.status_code == 200, scope
        assert response.json()["total"]["tumours"] == tumours


async def test_unknown_scopes_and_missing_tokens(client: httpx.AsyncClient) -> None:
    assert (await client.get("/stats/ous")).status_code == 401
    assert (await client.get("/stats/ous", headers=auth("forged"))).status_code == 401
    assert (await client.get("/stats/nowhere", headers=auth(STAFF))).status_code == 404
    assert (await client.get("/stats/Not_A_Scope", headers=auth(STAFF))).status_code == 422


async def test_figures_of_a_diagnosis_year(client: httpx.AsyncClient) -> None:
    response = await client.get("/stats/ous/years/2023", headers=auth(OUS))
    assert response.status_code == 200
    body = response.json()
    assert (body["diagnosis_year"], body["figures"]["tumours"]) == (2023, 1)
    assert body["figures"]["case_mix_main_group"] == {"XII": 1}


async def test_daily_snapshots_over_a_range(client: httpx.AsyncClient) -> None:
    day = STORY_TODAY.isoformat()
    response = await client.get(
        "/stats/ous/daily", params={"from": "2025-01-30", "to": day, "diagnosis_year": 2024}, headers=auth(OUS)
    )
    assert response.status_code == 200
    [only] = response.json()  # nothing was kept before the day the figures were first published
    assert only["day"] == day and only["figures"]["tumours"] == 3

    backwards = await client.get("/stats/ous/daily", params={"from": day, "to": "2025-01-01"}, headers=auth(OUS))
    assert backwards.status_code == 422
    other = await client.get("/stats/haukeland/daily", params={"from": day, "to": day}, headers=auth(OUS))
    assert other.status_code == 403


async def test_outstanding_reminders_per_hospital(client: httpx.AsyncClient) -> None:
    own = await client.get("/reminders", headers=auth(OUS))
    assert own.status_code == 200
    assert sorted((r["tumour_ref"], r["kind"], r["missing_form"]) for r in own.json()) == [
        ("C1", "treatment_report_missing", "treatment"),
        ("E1", "follow_up_due", "follow_up"),
    ]
    assert all("pseudonym" not in r for r in own.json())
    assert (await client.get("/reminders", params={"hospital": "haukeland"}, headers=auth(OUS))).status_code == 403

    everyone = await client.get("/reminders", headers=auth(STAFF))
    assert {r["hospital_id"] for r in everyone.json()} == {"ous", "haukeland"}
    haukeland = await client.get("/reminders", params={"hospital": "haukeland"}, headers=auth(STAFF))
    assert [(r["tumour_ref"], r["due_date"]) for r in haukeland.json()] == [("H-7", date(2024, 7, 1).isoformat())]
