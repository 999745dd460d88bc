"""Intake's HTTP API: submissions, receipts, drafts, reservations. Routes only; the use cases are in
application.py.

Request bodies are read as bytes and parsed strictly by the use cases (FastAPI's own parsing would turn
`"3"` into 3); their schemas are still in the OpenAPI document, from the same models. Every error is an
RFC 7807 problem; field errors name the field and the reason, never the value sent.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake.application import (
    Conflict,
    DraftSummary,
    DraftView,
    Forbidden,
    Intake,
    NotFound,
    Page,
    PreconditionFailed,
    Receipt,
    ReservationView,
)
from services.intake.domain.drafts import DraftUpdate, NewDraft, SubmitDraft
from services.intake.domain.reservations import ChildRequest, ReservationRequest
from services.intake.domain.submissions import Issue, Refused
from shared.auth import CurrentPrincipal, StaffPrincipal
from shared.events import ReceiptStatus
from shared.events.submissions import HospitalSubmission
from shared.problems import PROBLEM_JSON, FieldError, Problem, problem_response

router = APIRouter(prefix="/v1")

_REQUEST_SCHEMAS: dict[str, Any] = {}  # added to the OpenAPI components by `install`


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting `model` as the request body the route parses itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _REQUEST_SCHEMAS.update(schema.pop("$defs", {}))
    _REQUEST_SCHEMAS[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "content": {PROBLEM_JSON: {}}} for code in codes}


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.removeprefix("W/").strip('"'))
    except ValueError:
        raise Refused([Issue("If-Match", 'must be the ETag of the draft, e.g. "3"')]) from None


# --- submissions and receipts -------------------------------------------------------------------------


@router.post(
    "/submissions",
    tags=["submissions"],
    summary="Submit a form",
    description="202 and the receipt for a new submission; 200 and the same receipt when the same "
    "`submission_id` is sent again with the same content; 409 when it comes with another content.",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Receipt,
    responses={
        200: {"model": Receipt, "description": "The same submission again"},
        **_problems(401, 403, 409, 413, 422),
    },
    openapi_extra=json_body(HospitalSubmission),
)
async def submit(request: Request, principal: CurrentPrincipal) -> Response:
    # The hot path of the API: the receipt, built by intake itself, is serialised once, here, instead of
    # FastAPI validating it against the response model again and then serialising it.
    receipt, created = await _intake(request).submit(await request.body(), principal)
    return Response(
        receipt.model_dump_json(),
        status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        {"Location": f"/v1/receipts/{receipt.submission_id}"},
        media_type="application/json",
    )


@router.get(
    "/receipts/{submission_id}", tags=["receipts"], summary="Read a receipt", responses=_problems(401, 403, 404)
)
async def read_receipt(submission_id: uuid.UUID, request: Request, principal: CurrentPrincipal) -> Receipt:
    return await _intake(request).receipt(submission_id, principal)


@router.get(
    "/receipts",
    tags=["receipts"],
    summary="List receipts in the order received",
    description="A hospital token lists its own hospital's receipts; staff list one hospital's or all. "
    "Pass `next_cursor` back as `cursor` for the next page.",
    responses=_problems(401, 403, 422),
)
async def list_receipts(
    request: Request,
    principal: CurrentPrincipal,
    hospital_id: str | None = None,
    status: ReceiptStatus | None = None,
    received_from: Annotated[AwareDatetime | None, Query(description="Inclusive")] = None,
    received_before: Annotated[AwareDatetime | None, Query(description="Exclusive")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[Receipt]:
    return await _intake(request).receipts(
        principal,
        hospital_id=hospital_id,
        status=status,
        received_from=received_from,
        received_before=received_before,
        cursor=cursor,
        limit=limit,
    )


# --- drafts -------------------------------------------------------------------------------------------


@router.post(
    "/drafts",
    tags=["drafts"],
    summary="Keep a form in intermediate storage",
    status_code=status.HTTP_201_CREATED,
    responses=_problems(401, 403, 413, 422),
    openapi_extra=json_body(NewDraft),
)
async def create_draft(request: Request, principal: CurrentPrincipal, response: Response) -> DraftView:
    draft = await _intake(request).create_draft(await request.body(), principal)
    response.headers["Location"] = f"/v1/drafts/{draft.draft_id}"
    response.headers["ETag"] = _etag(draft.version)
    return draft


@router.get("/drafts", tags=["drafts"], summary="List drafts", responses=_problems(401, 403, 422))
async def list_drafts(
    request: Request,
    principal: CurrentPrincipal,
    hospital_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[DraftSummary]:
    return await _intake(request).drafts(principal, hospital_id=hospital_id, cursor=cursor, limit=limit)


@router.get("/drafts/{draft_id}", tags=["drafts"], summary="Read a draft", responses=_problems(401, 403, 404))
async def read_draft(
    draft_id: uuid.UUID, request: Request, principal: CurrentPrincipal, response: Response
) -> DraftView:
    draft = await _intake(request).draft(draft_id, principal)
    response.headers["ETag"] = _etag(draft.version)
    return draft


@router.put(
    "/drafts/{draft_id}",
    tags=["drafts"],
    summary="Replace a draft's content",
    description="With `If-Match` (the draft's ETag), the update fails with 412 if the draft changed meanwhile.",
    responses=_problems(401, 403, 404, 412, 413, 422),
    openapi_extra=json_body(DraftUpdate),
)
async def update_draft(
    draft_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> DraftView:
    draft = await _intake(request).update_draft(draft_id, await request.body(), principal, _if_match(if_match))
    response.headers["ETag"] = _etag(draft.version)
    return draft


@router.delete(
    "/drafts/{draft_id}",
    tags=["drafts"],
    summary="Delete a draft",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_problems(401, 403, 404),
)
async def delete_draft(draft_id: uuid.UUID, request: Request, principal: CurrentPrincipal) -> None:
    await _intake(request).delete_draft(draft_id, principal)


@router.post(
    "/drafts/{draft_id}/submit",
    tags=["drafts"],
    summary="Submit a draft",
    description="The draft becomes a submission (checked like any other) and is deleted. 202 and the receipt; "
    "200 and the same receipt when the same `submission_id` is sent again.",
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": Receipt, "description": "Submitted before"}, **_problems(401, 403, 404, 409, 422)},
    openapi_extra=json_body(SubmitDraft),
)
async def submit_draft(
    draft_id: uuid.UUID, request: Request, principal: CurrentPrincipal, response: Response
) -> Receipt:
    receipt, created = await _intake(request).submit_draft(draft_id, await request.body(), principal)
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/receipts/{receipt.submission_id}"
    return receipt


# --- reservations (registry staff) --------------------------------------------------------------------
# Identity numbers travel in request bodies only, never in URLs (which end up in access logs).


@router.post(
    "/reservations",
    tags=["reservations"],
    summary="Register a family's NOPHO-Care reservation",
    description="201 for a new reservation; 200 with the child's active reservation if there is one.",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ReservationView, "description": "Already reserved"}, **_problems(401, 403, 422)},
    openapi_extra=json_body(ReservationRequest),
)
async def register_reservation(request: Request, principal: StaffPrincipal, response: Response) -> ReservationView:
    reservation, created = await _intake(request).register_reservation(await request.body(), principal)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return reservation


@router.post(
    "/reservations/withdrawals",
    tags=["reservations"],
    summary="Withdraw the child's active reservation",
    responses=_problems(401, 403, 404, 422),
    openapi_extra=json_body(ChildRequest),
)
async def withdraw_reservation(request: Request, principal: StaffPrincipal) -> ReservationView:
    return await _intake(request).withdraw_reservation(await request.body(), principal)


@router.post(
    "/reservations/lookup",
    tags=["reservations"],
    summary="The child's latest reservation",
    responses=_problems(401, 403, 404, 422),
    openapi_extra=json_body(ChildRequest),
)
async def lookup_reservation(request: Request, principal: StaffPrincipal) -> ReservationView:
    return await _intake(request).reservation(await request.body())


# --- wiring -------------------------------------------------------------------------------------------


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413 before anything parses them: reads at most the
    limit (plus one chunk), whether or not the client declared a Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        too_large = problem_response(413, "Content Too Large", f"The request body exceeds {self.max_bytes} bytes.")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await too_large(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def install(app: FastAPI, intake: Intake, max_body_bytes: int) -> None:
    """Attach the use cases, the body limit, the error mapping and the request schemas to `app`."""
    app.state.intake = intake
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(Refused)
    async def _refused(_: Request, exc: Refused) -> Response:
        errors = [FieldError(field=issue.field, reason=issue.reason) for issue in exc.issues]
        return problem_response(422, "Invalid request", "The request cannot be registered as it is.", errors)

    statuses = {Forbidden: 403, NotFound: 404, Conflict: 409, PreconditionFailed: 412}
    for error_type, code in statuses.items():

        async def _handler(_: Request, exc: Exception, code: int = code) -> Response:
            return problem_response(code, HTTPStatus(code).phrase, str(exc))

        app.add_exception_handler(error_type, _handler)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            components = generate().setdefault("components", {}).setdefault("schemas", {})  # cached by FastAPI
            for name, definition in _REQUEST_SCHEMAS.items():
                components.setdefault(name, definition)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
