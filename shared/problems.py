"""RFC 7807 problem details for every HTTP error, with one entry per offending field.

Validation errors list the field's location and the reason, never the submitted value: a rejected
identity number must not be echoed back (or logged) in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db.engine import database_unavailable

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    field: str
    reason: str


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] = []


def field_errors(errors: Iterable[Any], skip: Sequence[str] = ("body",)) -> list[FieldError]:
    result = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if str(p) not in skip]
        result.append(FieldError(field=".".join(loc) or "<body>", reason=err["msg"]))
    return result


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, errors=errors or [])
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def validation_problem(exc: ValidationError | RequestValidationError, status: int = 422) -> JSONResponse:
    errors = exc.errors(include_input=False) if isinstance(exc, ValidationError) else exc.errors()
    return problem_response(status, "Invalid request", "The request does not match the schema.", field_errors(errors))


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, _title(exc.status_code), detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc)

    @app.exception_handler(ValidationError)
    async def _model_validation(_: Request, exc: ValidationError) -> JSONResponse:
        return validation_problem(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Still raised on to the server, which logs it; the client gets a problem, never a stack trace.
        if database_unavailable(exc):
            return problem_response(
                503,
                "Service Unavailable",
                "The service's database does not answer; send the same request again shortly.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return problem_response(500, "Internal Server Error", "The request could not be completed.")


# A database that does not answer is a moment's outage, not a fault of the request: 503 and Retry-After,
# so a hospital's system sends the same submission again (its submission id makes that harmless).
RETRY_AFTER_S = 5


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
