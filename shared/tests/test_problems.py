"""Errors nobody anticipated are problem documents too: a database that does not answer is a 503 with
Retry-After (send the same request again), anything else a 500 that shows nothing of its cause."""

from __future__ import annotations

import httpx
from asyncpg.exceptions import CannotConnectNowError
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from shared.problems import PROBLEM_JSON, install_problem_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/database-away")
    async def database_away() -> None:
        raise OperationalError("select 1", {}, ConnectionRefusedError("connection refused"))

    @app.get("/database-starting")
    async def database_starting() -> None:  # asyncpg raises this one unwrapped
        raise CannotConnectNowError("the database system is starting up")

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internals")

    return app


async def test_a_database_outage_is_a_503_problem_with_retry_after_and_a_bug_a_bare_500_problem() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        away, starting = await client.get("/database-away"), await client.get("/database-starting")
        bug = await client.get("/bug")
    for answer in (away, starting):
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert bug.status_code == 500 and "secret internals" not in bug.text
    for answer in (away, starting, bug):
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert answer.json()["status"] == answer.status_code
