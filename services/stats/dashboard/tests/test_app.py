"""The dashboard's pages, sign-in, access per principal, languages and event streams, on the app in
process (no broker: the state is fed directly, as the consumer would)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.stats.dashboard.app import create_app
from services.stats.dashboard.i18n import LABELS
from services.stats.dashboard.settings import DashboardSettings
from services.stats.dashboard.state import DashboardState
from services.stats.dashboard.stream import Hub, event_stream
from services.stats.dashboard.tests.factories import OUS, STAFF, TOKENS, reminder, snapshot
from shared.events.stats import ReminderChanged, StatsSnapshot
from shared.settings import KafkaSettings

STATIC = Path(__file__).parents[1] / "static"
OUS_TZ = ZoneInfo("Europe/Oslo")


def settings() -> DashboardSettings:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    # Nothing listens on port 9: these tests need no broker.
    return DashboardSettings(session_key=SecretStr(key), kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))


@pytest.fixture
def app() -> FastAPI:
    app = create_app(settings(), tokens=list(TOKENS.values()))
    state: DashboardState = app.state.dashboard
    for scope in ("registry", "ous", "unn"):
        state.apply_snapshot(snapshot(scope, 1, received=3, accepted=2, rejected=1))
    state.apply_reminder(reminder("ous", tumour_ref="OUS-7"))
    state.apply_reminder(reminder("unn", tumour_ref="UNN-9"))
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        yield client


async def sign_in(client: httpx.AsyncClient, token: str, next_path: str = "/") -> httpx.Response:
    return await client.post("/login", data={"token": token, "next": next_path})


def embedded_state(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="initial-state">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


async def test_pages_ask_for_a_sign_in_first(client: httpx.AsyncClient) -> None:
    for path in ("/", "/hospitals/ous"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={path}"
    assert (await client.get("/api/state")).status_code == 401
    assert (await client.get("/events")).status_code == 401


async def test_sign_in_sets_a_strict_http_only_session_cookie_without_the_token(client: httpx.AsyncClient) -> None:
    form = await client.get("/login?next=/hospitals/ous")
    assert form.status_code == 200
    assert 'name="token"' in form.text and 'type="password"' in form.text
    assert 'value="/hospitals/ous"' in form.text

    response = await sign_in(client, "staff-token", "/hospitals/ous")
    assert response.status_code == 303
    assert response.headers["location"] == "/hospitals/ous"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("dashboard_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Max-Age=43200" in cookie  # twelve hours
    assert "staff-token" not in cookie
    assert (await client.get("/")).status_code == 200


async def test_an_unknown_token_is_refused_on_the_form(client: httpx.AsyncClient) -> None:
    response = await sign_in(client, "not-a-token")
    assert response.status_code == 401
    assert 'role="alert"' in response.text and 'aria-invalid="true"' in response.text
    assert "set-cookie" not in response.headers


async def test_sign_in_stays_on_this_site(client: httpx.AsyncClient) -> None:
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = await sign_in(client, "staff-token", elsewhere)
        assert response.headers["location"] == "/"
    foreign = await client.post("/login", data={"token": "staff-token"}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403


async def test_staff_see_the_overview_with_every_scope(client: httpx.AsyncClient) -> None:
    await sign_in(client, "staff-token")
    page = await client.get("/")
    assert page.status_code == 200
    assert 'data-view="overview"' in page.text
    assert set(embedded_state(page.text)["scopes"]) == {"registry", "ous", "unn"}
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    for hospital in ("/hospitals/ous", "/hospitals/unn", "/hospitals/haukeland"):
        assert hospital in page.text  # the menu
    assert (await client.get("/hospitals/unn")).status_code == 200


async def test_a_hospital_sees_its_own_page_and_is_refused_another(client: httpx.AsyncClient) -> None:
    await sign_in(client, "ous-token")
    landing = await client.get("/")
    assert landing.status_code == 303 and landing.headers["location"] == "/hospitals/ous"

    own = await client.get("/hospitals/ous")
    assert own.status_code == 200
    shown = embedded_state(own.text)
    assert set(shown["scopes"]) == {"ous"}
    assert set(shown["reminders"]) == {"ous"}
    assert "UNN-9" not in own.text and "/hospitals/unn" not in own.text

    other = await client.get("/hospitals/unn")
    assert other.status_code == 403
    assert "Ingen tilgang" in other.text and "UNN-9" not in other.text
    assert 'href="/hospitals/ous"' in other.text
    # An unknown unit is refused the same way: a hospital learns nothing about what exists.
    assert (await client.get("/hospitals/nowhere")).status_code == 403


async def test_an_unknown_unit_is_not_found_for_staff(client: httpx.AsyncClient) -> None:
    await sign_in(client, "staff-token")
    assert (await client.get("/hospitals/nowhere")).status_code == 404


async def test_the_state_as_json_for_a_session_or_a_bearer_token(client: httpx.AsyncClient) -> None:
    by_bearer = await client.get("/api/state", headers={"Authorization": "Bearer unn-token"})
    assert by_bearer.status_code == 200
    assert set(by_bearer.json()["scopes"]) == {"unn"}
    assert [r["tumour_ref"] for r in by_bearer.json()["reminders"]["unn"]] == ["UNN-9"]

    await sign_in(client, "staff-token")
    everything = (await client.get("/api/state")).json()
    assert set(everything["scopes"]) == {"registry", "ous", "unn"}
    assert everything["scopes"]["ous"]["snapshot"]["total"]["submissions"]["diagnosis"]["accepted"] == 2


async def test_sign_out_ends_the_session(client: httpx.AsyncClient) -> None:
    await sign_in(client, "staff-token")
    response = await client.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert 'dashboard_session=""' in response.headers["set-cookie"]
    assert (await client.get("/")).status_code == 303


async def test_bokmal_by_default_english_on_request_and_remembered(client: httpx.AsyncClient) -> None:
    await sign_in(client, "staff-token")
    norwegian = await client.get("/")
    assert '<html lang="nb">' in norwegian.text and "Hele registeret" in norwegian.text
    assert '"received": "Meldinger mottatt"' in norwegian.text

    english = await client.get("/?lang=en")
    assert '<html lang="en">' in english.text and "The whole registry" in english.text
    assert "dashboard_lang=en" in english.headers["set-cookie"]
    assert '<html lang="en">' in (await client.get("/hospitals/ous")).text  # remembered
    assert '<html lang="nb">' in (await client.get("/?lang=nb")).text


async def test_ready_once_the_topics_are_read(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/ready")).status_code == 503
    app.state.feed.caught_up.set()
    assert (await client.get("/ready")).status_code == 200


async def test_static_files_are_served(client: httpx.AsyncClient) -> None:
    script = await client.get("/static/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert (await client.get("/static/dashboard.css")).status_code == 200


# -- the event stream --------------------------------------------------------------------------------------


def parse(chunk: str) -> tuple[str, dict]:
    event = re.search(r"^event: (.+)$", chunk, re.M)
    data = re.search(r"^data: (.+)$", chunk, re.M)
    assert event is not None and data is not None, chunk
    return event.group(1), json.loads(data.group(1))


def feed(state: DashboardState, hub: Hub, *changes: StatsSnapshot | ReminderChanged) -> None:
    for item in changes:
        change = state.apply_snapshot(item) if isinstance(item, StatsSnapshot) else state.apply_reminder(item)
        assert change is not None
        hub.publish(change)


async def test_a_hospital_stream_carries_only_its_own_hospital() -> None:
    state, hub = DashboardState(OUS_TZ), Hub()
    feed(state, hub, snapshot("registry", 1), snapshot("ous", 1), snapshot("unn", 1))
    stream = event_stream(OUS, state, hub, lambda: date(2025, 3, 10), heartbeat_s=60)

    kind, first = parse(await anext(stream))
    assert kind == "state" and set(first["scopes"]) == {"ous"}

    feed(state, hub, snapshot("unn", 2), reminder("unn"), snapshot("registry", 2), snapshot("ous", 2), reminder("ous"))
    kind, scope = parse(await anext(stream))
    assert (kind, scope["scope"], scope["snapshot"]["version"]) == ("scope", "ous", 2)
    kind, opened = parse(await anext(stream))
    assert (kind, opened["hospital_id"]) == ("reminder", "ous")
    await stream.aclose()
    assert len(hub) == 0


async def test_a_staff_stream_carries_everything() -> None:
    state, hub = DashboardState(OUS_TZ), Hub()
    stream = event_stream(STAFF, state, hub, lambda: date(2025, 3, 10), heartbeat_s=60)
    assert parse(await anext(stream))[0] == "state"
    feed(state, hub, snapshot("registry", 1), snapshot("unn", 1), reminder("unn"))
    seen = [parse(await anext(stream)) for _ in range(3)]
    assert [(k, d.get("scope") or d.get("hospital_id")) for k, d in seen] == [
        ("scope", "registry"),
        ("scope", "unn"),
        ("reminder", "unn"),
    ]
    await stream.aclose()


async def test_an_idle_stream_sends_keep_alive_comments() -> None:
    stream = event_stream(STAFF, DashboardState(OUS_TZ), Hub(), lambda: date(2025, 3, 10), heartbeat_s=0.01)
    await anext(stream)
    assert await anext(stream) == ": keep-alive\n\n"
    await stream.aclose()


async def test_a_stream_too_slow_to_keep_up_ends_and_closing_the_hub_ends_them_all() -> None:
    state, hub = DashboardState(OUS_TZ), Hub(queue_size=2)
    slow = event_stream(STAFF, state, hub, lambda: date(2025, 3, 10), heartbeat_s=60)
    await anext(slow)
    feed(state, hub, *(snapshot("ous", v) for v in range(1, 5)))
    assert [chunk async for chunk in slow] == []  # ended: the browser reconnects and gets the whole state

    idle = event_stream(STAFF, state, hub, lambda: date(2025, 3, 10), heartbeat_s=60)
    await anext(idle)
    waiting = asyncio.ensure_future(anext(idle))
    await asyncio.sleep(0)
    hub.close()
    with pytest.raises(StopAsyncIteration):
        await waiting


# -- words -------------------------------------------------------------------------------------------------


def test_both_languages_have_every_label() -> None:
    assert LABELS["nb"].keys() == LABELS["en"].keys()


def test_every_label_the_script_asks_for_exists() -> None:
    script = (STATIC / "dashboard.js").read_text()
    asked = set(re.findall(r'\bt\("([a-z0-9_]+)"', script))
    assert asked, "the script's labels were not found"
    assert asked <= LABELS["en"].keys(), asked - LABELS["en"].keys()
    # Labels built from data: form types, reminder kinds, ICCC-3 main groups.
    for form in ("diagnosis", "treatment", "follow_up"):
        assert f"form_{form}" in LABELS["en"]
    for kind in ("treatment_report_missing", "follow_up_due"):
        assert f"kind_{kind}" in LABELS["en"]
    for group in ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"):
        assert f"group_{group}" in LABELS["en"]
