"""The dashboard's HTTP app: pages (overview, one per hospital, sign-in), the event stream, the state as
JSON, health and readiness, and the static script and styles.

Who is asking comes from the session cookie (browsers) or a bearer token (scripts), and decides
everything shown: a hospital sees its own hospital, registry staff see every hospital and the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path as FilePath
from typing import Annotated
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Path, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from services.stats.dashboard import pages
from services.stats.dashboard.consumer import Feed
from services.stats.dashboard.i18n import LANGUAGES, Lang, pick, t
from services.stats.dashboard.session import COOKIE, Sessions
from services.stats.dashboard.settings import DashboardSettings
from services.stats.dashboard.state import DashboardState, StateView
from services.stats.dashboard.stream import Hub, event_stream
from shared.auth import AuthSettings, Principal, Role, TokenEntry, TokenStore
from shared.events.stats import REGISTRY_SCOPE
from shared.hospitals import BY_ID
from shared.observability.health import health_router
from shared.problems import install_problem_handlers
from shared.settings import key_bytes

STATIC = FilePath(__file__).parent / "static"
LANG_COOKIE = "dashboard_lang"
MAX_LOGIN_BODY = 4096  # a token and where to go next; anything bigger is not a sign-in
# Scripts, styles and connections from this origin only: no inline script, nothing from a CDN.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send "Origin: null" on sign-in
    "Cache-Control": "no-store",  # pages carry one person's view of the figures
}
HospitalPath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{1,31}$")]


def create_app(settings: DashboardSettings, tokens: list[TokenEntry] | None = None) -> FastAPI:
    tz = ZoneInfo(settings.timezone)
    state = DashboardState(tz)
    hub = Hub()
    feed = Feed(settings.kafka, state, hub)
    entries = TokenStore.entries_in(AuthSettings().tokens_file) if tokens is None else tokens
    sessions = Sessions(key_bytes(settings.session_key), entries, int(settings.session_hours * 3600))

    def today() -> date:
        return datetime.now(tz).date()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(feed.run(), name="dashboard-feed")
        try:
            yield
        finally:
            hub.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="Stats dashboard",
        description="Live reporting figures per hospital and registry-wide, from the stats topics.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.state.dashboard = state
    app.state.hub = hub
    app.state.feed = feed
    app.state.sessions = sessions

    async def caught_up() -> bool:
        return feed.caught_up.is_set()

    app.include_router(health_router({"stats topics read": caught_up}))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def principal_of(request: Request) -> Principal | None:
        principal = sessions.principal(request.cookies.get(COOKIE))
        if principal is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                principal = sessions.authenticate(token.strip())
        return principal

    def required(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in at /login, or send a bearer token")
        return principal

    def frame(request: Request, principal: Principal | None, current: str | None = None) -> pages.Frame:
        visible = tuple(h for h in state.hospitals() if principal and principal.may_see(h.id))
        return pages.Frame(_lang(request), request.url.path, principal, visible, current)

    def to_login(request: Request) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status.HTTP_303_SEE_OTHER)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(request: Request, next: str = "/") -> Response:
        if principal_of(request) is not None:
            return RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
        page = pages.login_page(frame(request, None), _safe_next(next), False, settings.session_hours)
        return _html(request, page)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not _same_origin(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "sign-in from another site")
        fields = await _form(request)
        next_path = _safe_next(fields.get("next", "/"))
        cookie = sessions.issue(fields.get("token", "").strip())
        if cookie is None:
            page = pages.login_page(frame(request, None), next_path, True, settings.session_hours)
            return _html(request, page, status.HTTP_401_UNAUTHORIZED)
        response = RedirectResponse(next_path, status.HTTP_303_SEE_OTHER)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=sessions.max_age_s,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        if not _same_origin(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "sign-out from another site")
        response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview(request: Request) -> Response:
        principal = principal_of(request)
        if principal is None:
            return to_login(request)
        lang = _lang(request)
        if principal.role is not Role.STAFF:  # the registry-wide figures are staff's; a hospital has its own
            if principal.hospital_id is None:  # a hospital token naming no hospital sees nothing
                page = pages.message_page(
                    frame(request, principal), t(lang, "forbidden_heading"), t(lang, "forbidden_text")
                )
                return _html(request, page, status.HTTP_403_FORBIDDEN)
            return RedirectResponse(f"/hospitals/{principal.hospital_id}", status.HTTP_303_SEE_OTHER)
        page = pages.dashboard_page(
            frame(request, principal, REGISTRY_SCOPE),
            "overview",
            REGISTRY_SCOPE,
            t(lang, "registry"),
            t(lang, "overview"),
            state.view(principal, today()),
        )
        return _html(request, page)

    @app.get("/hospitals/{hospital_id}", response_class=HTMLResponse, include_in_schema=False)
    async def hospital(request: Request, hospital_id: HospitalPath) -> Response:
        principal = principal_of(request)
        if principal is None:
            return to_login(request)
        lang = _lang(request)
        if not principal.may_see(hospital_id):  # before the existence check: it reveals nothing
            own = BY_ID.get(principal.hospital_id or "")
            link = (f"/hospitals/{own.id}", t(lang, "to_own", name=own.name)) if own else None
            page = pages.message_page(
                frame(request, principal), t(lang, "forbidden_heading"), t(lang, "forbidden_text"), link
            )
            return _html(request, page, status.HTTP_403_FORBIDDEN)
        if not state.knows(hospital_id):
            page = pages.message_page(
                frame(request, principal), t(lang, "not_found_heading"), t(lang, "not_found_text")
            )
            return _html(request, page, status.HTTP_404_NOT_FOUND)
        known = BY_ID.get(hospital_id)
        page = pages.dashboard_page(
            frame(request, principal, hospital_id),
            "hospital",
            hospital_id,
            known.name if known else hospital_id,
            known.region if known else "",
            state.view(principal, today()),
        )
        return _html(request, page)

    @app.get("/events", summary="Server-sent events: the state, then every change the caller may see")
    async def events(request: Request) -> StreamingResponse:
        principal = required(request)
        return StreamingResponse(
            event_stream(principal, state, hub, today, settings.heartbeat_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},  # no proxy buffering
        )

    @app.get("/api/state", summary="Everything the caller may see: snapshots, open reminders")
    async def api_state(request: Request) -> StateView:
        return state.view(required(request), today())

    return app


def _lang(request: Request) -> Lang:
    return pick(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def _html(request: Request, body: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    response = HTMLResponse(body, status_code, headers=SECURITY_HEADERS)
    chosen = request.query_params.get("lang")
    if chosen in LANGUAGES:  # remembered for the next visit
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 24 * 3600, httponly=True, samesite="lax")
    return response


def _safe_next(path: str) -> str:
    """Only a path on this site: `next` must not send a person who just signed in elsewhere."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _same_origin(request: Request) -> bool:
    """A browser names the page a form was posted from; one on another site must not sign anyone in or out.
    Clients that send no Origin (scripts, old browsers) are not browsers on another site's page."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


async def _form(request: Request) -> dict[str, str]:
    """The sign-in form's fields (url-encoded), read up to a small limit."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "a sign-in form is small")
    try:
        parsed = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    except ValueError as exc:  # more fields than a sign-in form has
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not a sign-in form") from exc
    return {name: values[0] for name, values in parsed.items()}
