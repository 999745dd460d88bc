"""The staff API: status and the audit log as JSON pages and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest
from fastapi import FastAPI

from services.export import api
from services.export.tests.factories import child, diagnosis, reserved, treatment
from services.export.tests.harness import Harness
from shared.auth import Role, TokenEntry, TokenStore, digest
from shared.problems import install_problem_handlers

STAFF, HOSPITAL = "staff-token", "hospital-token"
KID = child(200, date(2015, 1, 1))


@pytest.fixture
async def client(sql_harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    await sql_harness.consume(diagnosis(KID, date(2020, 1, 1)), treatment(KID, date(2020, 1, 3)))
    await sql_harness.deliver()
    await sql_harness.consume(reserved(KID))
    await sql_harness.deliver()
    app = FastAPI()
    install_problem_handlers(app)
    app.state.tokens = TokenStore(
        [
            TokenEntry(name="coder", role=Role.STAFF, sha256=digest(STAFF)),
            TokenEntry(name="ous-portal", role=Role.HOSPITAL, hospital_id="ous", sha256=digest(HOSPITAL)),
        ]
    )
    app.state.export_sessions = sql_harness.sessions
    app.include_router(api.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://export") as http:
        yield http


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/export/status", "/export/audit", "/export/audit.csv"])
async def test_staff_only(client: httpx.AsyncClient, path: str) -> None:
    anonymous = await client.get(path)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert (await client.get(path, headers=auth(HOSPITAL))).status_code == 403


async def test_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/export/status", headers=auth(STAFF))
    assert response.json() == {
        "pending": 0,
        "sent": 2,
        "retracted": 2,
        "failed": 0,
        "cancelled": 0,
        "reserved_children": 1,
        "held_reports": 0,
    }


async def test_audit_pages(client: httpx.AsyncClient, sql_harness: Harness) -> None:
    first = (await client.get("/export/audit", params={"limit": 3}, headers=auth(STAFF))).json()
    assert [e["action"] for e in first["entries"]] == ["transfer", "transfer", "retraction"]
    assert {e["legal_basis"] for e in first["entries"]} == {"NOPHO-Care"}
    assert all(len(e["record_sha256"]) == 64 for e in first["entries"])
    rest = (
        await client.get("/export/audit", params={"after": first["next_after"], "limit": 3}, headers=auth(STAFF))
    ).json()
    assert ([e["action"] for e in rest["entries"]], rest["next_after"]) == (["retraction"], None)

    child_id = sql_harness.ids.child(KID.pseudonym)
    mine = (await client.get("/export/audit", params={"child_id": child_id}, headers=auth(STAFF))).json()
    assert len(mine["entries"]) == 4
    bad = await client.get("/export/audit", params={"child_id": KID.pseudonym[:20]}, headers=auth(STAFF))
    assert bad.status_code == 422
    later = (await client.get("/export/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=auth(STAFF))).json()
    assert later["entries"] == []
    naive = await client.get("/export/audit", params={"since": "2024-01-01T00:00:00"}, headers=auth(STAFF))
    assert naive.status_code == 422  # a time without its zone is ambiguous


async def test_audit_csv(client: httpx.AsyncClient) -> None:
    response = await client.get("/export/audit.csv", headers=auth(STAFF))
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["action"] for r in rows] == ["transfer", "transfer", "retraction", "retraction"]
    assert set(rows[0]) == set(api.FIELDS)
    assert KID.pseudonym not in response.text  # the registry pseudonym never leaves export
