"""RFC 9457 problem details: every error the gateway returns, in one shape.

`code` is the domain's stable error code (or the gateway's own, e.g. `invalid_token`), so a client
branches on it rather than on the prose; `title` is English, `detail` is in the language the client
asked for (Accept-Language, Chinese by default).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from eventsourcing.persistence import OperationalError as StoreOperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.errors import DomainError, ErrorKind
from gateway.auth import AuthError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
#: RFC 9457 members (and `problem_response`'s own arguments), which no extra member may replace.
RESERVED = frozenset({"type", "title", "status", "detail", "code", "instance", "errors", "headers"})

STATUS_OF_KIND = {
    ErrorKind.INVALID: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.CONFLICT: 409,
}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field("about:blank", examples=["https://whistleloop.org/problems/case_not_found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["案件不存在"])
    code: str = Field(examples=["case_not_found"], description="Stable machine code.")
    instance: str | None = Field(None, examples=["/api/v1/cases/0c6f…"])
    errors: list[dict[str, Any]] | None = Field(
        None, description="Field errors of a 422: location, message, type."
    )


class GatewayError(Exception):
    """An error the gateway raises itself (403 for a role, 413, 409 for an idempotency clash…)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def forbidden(detail: str = "this role may not do this") -> GatewayError:
    return GatewayError(403, "forbidden", detail)


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://whistleloop.org/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None and k not in body})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


#: A dropped connection as SQLAlchemy raises it (the idempotency claim, the read side) and as the
#: event store's recorder wraps it (a command's load or save).
STORE_DOWN = (OperationalError, StoreOperationalError)


def store_unavailable(error: Exception, path: str | None) -> JSONResponse:
    """The database dropped the connection (a restart, a failover): the transaction rolled back,
    the pool reconnects, and the same request with its Idempotency-Key may be sent again."""
    log.warning("store unavailable: %s", error, extra={"path": path})
    return problem_response(
        503,
        "store_unavailable",
        "the event store is unavailable; send the request again",
        instance=path,
        headers={"Retry-After": "1"},
    )


class StoreOutage:
    """ASGI middleware: a 503 for a dropped connection wherever a request meets it, in a route or
    in a middleware inside this one (the idempotency claim, which the app's handlers never see, and
    which releases its key on the way out)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except STORE_DOWN as error:
            if started or scope["type"] != "http":
                raise
            await store_unavailable(error, scope.get("path"))(scope, receive, send)


def language(accept_language: str | None) -> str:
    """The language of a message: what Accept-Language asks for, Chinese by default."""
    return (accept_language or "zh").strip().lower() or "zh"


def install(app: FastAPI) -> None:
    """Turns every exception a request can raise into a problem document (never a bare 500 page)."""

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> JSONResponse:
        # A detail named like a problem member (IllegalState's `status`: the case's) is renamed.
        details: dict[str, Any] = {
            (f"case_{k}" if k in RESERVED else k): _plain(v) for k, v in error.details.items()
        }
        return problem_response(
            STATUS_OF_KIND[error.kind],
            error.code,
            error.message(language(request.headers.get("accept-language"))),
            instance=request.url.path,
            **details,
        )

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, error: AuthError) -> JSONResponse:
        return problem_response(
            401,
            error.code,
            error.message,
            instance=request.url.path,
            headers={"WWW-Authenticate": 'Bearer realm="whistleloop"'},
        )

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> JSONResponse:
        return problem_response(
            error.status, error.code, error.detail, instance=request.url.path, **error.extra
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return problem_response(
            422,
            "invalid_request",
            "the request is not valid",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # FastAPI raises a bare 400 only when it cannot parse a body at all (not UTF-8, JSON
        # nested too deep): every other refusal of ours has its own code.
        codes = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(error.status_code, "http_error")
        return problem_response(
            error.status_code, code, str(error.detail), instance=request.url.path
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(
            500, "internal_error", "an internal error occurred", instance=request.url.path
        )


def _plain(value: object) -> object:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the given error statuses, each a problem document."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
