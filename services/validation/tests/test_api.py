"""The coding route: thin over the coder, behind a token, RFC 7807 errors for bad codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.validation.app import create_app
from services.validation.settings import ValidationSettings
from shared.auth import Role, TokenEntry, TokenStore, digest

TOKEN = "coder-token"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ValidationSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"))
    app.state.tokens = TokenStore([TokenEntry(name="coder", role=Role.STAFF, sha256=digest(TOKEN))])
    transport = httpx.ASGITransport(app=app)  # no lifespan: the route needs neither broker nor database
    async with httpx.AsyncClient(transport=transport, base_url="http://validation") as client:
        yield client


async def test_codes_a_diagnosis(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/iccc",
        params={"topography": "C71.6", "morphology": "9470", "behaviour": 3},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    assert response.json()["iccc"] == {
        "main_group": "III",
        "subgroup": "IIIc",
        "division": "IIIc.1",
        "recode": "033",
        "extended": "020",
    }


async def test_unclassified_is_null(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/iccc",
        params={"topography": "C71.6", "morphology": "9470", "behaviour": 2},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.json()["iccc"] is None


async def test_malformed_codes_are_problems_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/iccc",
        params={"topography": "C716", "morphology": "9470", "behaviour": 3},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["query.topography"]


async def test_a_token_is_required(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/iccc", params={"topography": "C71.6", "morphology": "9470", "behaviour": 3})
    assert response.status_code == 401
