"""Open311 GeoReport v2 under `/open311/v2`: services from the duty list, requests as cases.

Every resource exists as `.json` and `.xml` (one route each, so each has its own operation and
media type in the OpenAPI document). Reads are public, as the spec has them; POST requests takes an
`api_key`, which is a bearer token of a reporting role (`whistleloop token issue`). Errors on these
paths are the spec's `errors` documents in the requested format, never problem+json: an Open311
client understands only those. See `gateway.open311` for the mapping itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from domain.clock import CHINA_TZ
from domain.errors import DomainError
from domain.reference import DutyItem
from gateway import problems
from gateway.auth import AuthError, Principal, decode_token
from gateway.body_limit import json_document
from gateway.deps import ResourcesDep
from gateway.idempotency import domain_key
from gateway.open311.intake import flat_fields, read_submission, report_arguments
from gateway.open311.render import (
    Format,
    Open311Error,
    XMLResponse,
    error_response,
    from_auth,
    from_domain,
    render,
)
from gateway.open311.schemas import (
    SPEC_URL,
    Discovery,
    Endpoint,
    RequestCreated,
    Service,
    ServiceDefinition,
    ServiceRequest,
    SpecError,
    TokenAnswer,
)
from gateway.open311.service_requests import RequestQuery, find_requests, parse_query
from gateway.open311.services import find_item, service_definition, service_list
from gateway.policy import allowed
from gateway.problems import language
from gateway.resources import Resources

PREFIX = "/open311/v2"
#: When the shape of this API last changed (the discovery document's changeset).
CHANGESET = datetime(2026, 3, 1, tzinfo=CHINA_TZ)
MAX_FORM_FIELDS = 64

router = APIRouter(prefix=PREFIX, tags=["open311"])


# --- answering --------------------------------------------------------------------------------


async def answer(
    request: Request, fmt: Format, work: Callable[[], Awaitable[Response]]
) -> Response:
    """Runs the endpoint's work; every error it meets leaves as a spec error in `fmt`."""
    try:
        return await work()
    except Open311Error as error:
        return error_response(fmt, error)
    except AuthError as error:
        return error_response(fmt, from_auth(error))
    except DomainError as error:
        return error_response(
            fmt, from_domain(error, language(request.headers.get("accept-language")))
        )


async def duty_items(resources: Resources) -> list[DutyItem]:
    """The duty list in force now: its items are the services."""
    _version, items = await asyncio.to_thread(resources.service.duty_items)
    return items


async def service_names(resources: Resources) -> dict[str, str]:
    """Service code → name, for the list in force and, for codes since revised away, the shipped one."""
    names = {code: item.name for code, item in resources.reference.duty_items.items()}
    names.update({item.code: item.name for item in await duty_items(resources)})
    return names


def unknown_service(code: str, status: int = 404) -> Open311Error:
    return Open311Error(status, "unknown_service_code", f"no service {code[:64]!r}")


# --- OpenAPI ----------------------------------------------------------------------------------

XML_CONTENT = {
    "text/xml": {
        "schema": {"type": "string", "description": "The JSON variant's fields as elements."},
    }
}


def ok_docs(fmt: Format, model: Any, status: int = 200) -> dict[int | str, dict[str, Any]]:
    if fmt is Format.JSON:
        return {status: {"model": model, "description": HTTPStatus(status).phrase}}
    return {status: {"description": HTTPStatus(status).phrase, "content": XML_CONTENT}}


#: Any client error these paths answer: FastAPI would otherwise document a 422 `HTTPValidationError`
#: that never comes (every parameter is a plain string; the handlers judge them, spec-style).
CLIENT_ERRORS = "4XX"


def error_docs(fmt: Format, *statuses: int | str) -> dict[int | str, dict[str, Any]]:
    """The spec's `errors` document for each status (what these paths return instead of problems)."""
    described = [
        (s, HTTPStatus(s).phrase if isinstance(s, int) else "Client error") for s in statuses
    ]
    if fmt is Format.JSON:
        return {s: {"model": list[SpecError], "description": text} for s, text in described}
    return {s: {"description": text, "content": XML_CONTENT} for s, text in described}


def docs(
    fmt: Format, model: Any, *errors: int, status: int = 200
) -> dict[int | str, dict[str, Any]]:
    return {**ok_docs(fmt, model, status), **error_docs(fmt, *errors, CLIENT_ERRORS)}


#: What the gateway's middleware answers on a POST before the Open311 handler runs: a body over the
#: limit, a bad or reused Idempotency-Key, a caller over its write rate, a store that dropped its
#: connection. Those are problem documents, on every path alike; `model`
#: is dropped, or FastAPI would list the problem under this route's own media type (text/xml) too.
MIDDLEWARE_ERRORS = {
    status: {key: value for key, value in doc.items() if key != "model"}
    for status, doc in problems.responses(413, 422, 429, 503).items()
}


POST_BODY_EXAMPLE = {
    "api_key": "<token from `whistleloop token issue --role resident`>",
    "service_code": "CG-001",
    "attribute[street]": "jianwai",
    "attribute[community]": "jianwai_c01",
    "address_string": "建国门外大街 1 号院东侧",
    "description": "院内新搭建彩钢板房，占用消防通道",
    "email": "resident@example.cn",
    "phone": "138****0001",
}
POST_BODY_PROPERTIES = {
    name: {"type": "string"}
    for name in (
        "api_key",
        "service_code",
        "attribute[street]",
        "attribute[community]",
        "lat",
        "long",
        "address_string",
        "address_id",
        "description",
        "email",
        "phone",
        "first_name",
        "last_name",
        "device_id",
        "account_id",
        "media_url",
    )
}
POST_BODY_SCHEMA = {
    "type": "object",
    "required": ["api_key", "service_code", "attribute[street]"],
    "properties": POST_BODY_PROPERTIES,
}
POST_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": POST_BODY_SCHEMA,
                "example": POST_BODY_EXAMPLE,
            },
            "application/json": {"schema": POST_BODY_SCHEMA, "example": POST_BODY_EXAMPLE},
        },
    }
}

ServiceRequestIds = Annotated[
    str | None,
    Query(
        description="Comma-separated ids; when given, every other filter is ignored.",
        examples=["0c6f8e5a-8d1e-5a8e-9d57-1c2f3b4a5d6e"],
    ),
]
ServiceCode = Annotated[str | None, Query(examples=["CG-001"])]
StartDate = Annotated[
    str | None,
    Query(
        description="W3C datetime with offset; the window is at most 90 days (default: the last 90).",
        examples=["2026-03-01T00:00:00+08:00"],
    ),
]
EndDate = Annotated[str | None, Query(examples=["2026-03-31T23:59:59+08:00"])]
StatusFilter = Annotated[
    str | None, Query(description="open, closed, or open,closed", examples=["open"])
]


# --- routes -----------------------------------------------------------------------------------


def add_routes(fmt: Format) -> None:
    """The six spec methods (and tokens) in one format."""
    suffix = f" ({fmt.value.upper()})"
    response_class = XMLResponse if fmt is Format.XML else JSONResponse

    @router.get(
        f"/discovery.{fmt}",
        summary="Open311 service discovery" + suffix,
        operation_id=f"open311_discovery_{fmt}",
        response_model=None,
        response_class=response_class,
        responses=docs(fmt, Discovery),
    )
    async def discovery(request: Request, resources: ResourcesDep) -> Response:
        document = Discovery(
            changeset=CHANGESET,
            contact=f"{resources.reference.district} 城市运行指挥中心",
            key_service="api_key: a bearer token from `whistleloop token issue --role resident`",
            endpoints=[
                Endpoint(
                    specification=SPEC_URL,
                    url=str(request.url_for(f"open311_services_{Format.XML}")).rsplit("/", 1)[0],
                    changeset=CHANGESET,
                    type="test" if resources.settings.dev_mode else "production",
                    formats=[Format.XML.media_type, Format.JSON.media_type],
                )
            ],
        )
        return render(fmt, "discovery", document)

    @router.get(
        f"/services.{fmt}",
        name=f"open311_services_{fmt}",
        summary="Open311 services: the duty-list items in force" + suffix,
        operation_id=f"open311_services_{fmt}",
        response_model=None,
        response_class=response_class,
        responses=docs(fmt, list[Service]),
    )
    async def services(resources: ResourcesDep) -> Response:
        items = await duty_items(resources)
        return render(fmt, "services", service_list(items, resources.reference))

    @router.get(
        f"/services/{{service_code}}.{fmt}",
        summary="Open311 service definition: the street and community attributes" + suffix,
        operation_id=f"open311_service_definition_{fmt}",
        response_model=None,
        response_class=response_class,
        responses=docs(fmt, ServiceDefinition, 404),
    )
    async def definition(request: Request, service_code: str, resources: ResourcesDep) -> Response:
        async def work() -> Response:
            item = find_item(await duty_items(resources), service_code)
            if item is None:
                raise unknown_service(service_code)
            return render(fmt, "service_definition", service_definition(item, resources.reference))

        return await answer(request, fmt, work)

    @router.post(
        f"/requests.{fmt}",
        status_code=201,
        summary="Open311 POST service request: report a case" + suffix,
        operation_id=f"open311_create_request_{fmt}",
        response_model=None,
        response_class=response_class,
        responses={
            **docs(fmt, list[RequestCreated], 400, 401, 403, 404, 409, status=201),
            **MIDDLEWARE_ERRORS,
        },
        openapi_extra=POST_OPENAPI,
    )
    async def create_request(request: Request, resources: ResourcesDep) -> Response:
        return await answer(request, fmt, partial(report, request, resources, fmt))

    @router.get(
        f"/requests.{fmt}",
        summary="Open311 GET service requests: cases, newest first" + suffix,
        operation_id=f"open311_requests_{fmt}",
        response_model=None,
        response_class=response_class,
        responses=docs(fmt, list[ServiceRequest], 400),
    )
    async def requests(
        request: Request,
        resources: ResourcesDep,
        service_request_id: ServiceRequestIds = None,
        service_code: ServiceCode = None,
        start_date: StartDate = None,
        end_date: EndDate = None,
        status: StatusFilter = None,
    ) -> Response:
        async def work() -> Response:
            query = parse_query(
                resources.clock.now(),
                service_request_id=service_request_id,
                service_code=service_code,
                start_date=start_date,
                end_date=end_date,
                status=status,
            )
            names = await service_names(resources)
            found = await asyncio.to_thread(
                find_requests, resources.views, query, names, resources.reference
            )
            return render(fmt, "service_requests", found)

        return await answer(request, fmt, work)

    @router.get(
        f"/requests/{{service_request_id}}.{fmt}",
        summary="Open311 GET service request: one case" + suffix,
        operation_id=f"open311_request_{fmt}",
        response_model=None,
        response_class=response_class,
        responses=docs(fmt, list[ServiceRequest], 404),
    )
    async def one_request(
        request: Request, service_request_id: str, resources: ResourcesDep
    ) -> Response:
        async def work() -> Response:
            found = await one(resources, service_request_id)
            return render(fmt, "service_requests", found)

        return await answer(request, fmt, work)

    @router.get(
        f"/tokens/{{token}}.{fmt}",
        summary="Open311 GET service_request_id from a token" + suffix,
        operation_id=f"open311_token_{fmt}",
        response_model=None,
        response_class=response_class,
        responses=docs(fmt, list[TokenAnswer], 404),
    )
    async def token(request: Request, token: str, resources: ResourcesDep) -> Response:
        async def work() -> Response:
            case_id = await stored_case(resources, token)
            return render(
                fmt, "service_requests", [TokenAnswer(service_request_id=case_id, token=token)]
            )

        return await answer(request, fmt, work)


# --- the work behind the routes ---------------------------------------------------------------


async def report(request: Request, resources: Resources, fmt: Format) -> Response:
    """POST requests: the key's reporter reports a case with the request's service as its item."""
    fields = await submitted_fields(request)
    principal = reporter(resources, fields.get("api_key"))
    submission = read_submission(fields)
    item = find_item(await duty_items(resources), submission.service_code)
    if item is None:
        raise unknown_service(submission.service_code, 400)
    with resources.metrics.timed_command("report"):
        case_id = await asyncio.to_thread(
            partial(
                resources.service.report,
                principal.actor(),
                idempotency_key=domain_key(request.scope, principal, api="open311"),
                **report_arguments(submission, item),
            )
        )
    street = resources.reference.streets[submission.street].name
    created = RequestCreated(
        service_request_id=str(case_id),
        token=str(case_id),
        service_notice=f"已转{street}受理 / forwarded to {street}",
        account_id=None,
    )
    location = f"{PREFIX}/requests/{case_id}.{fmt}"
    return render(fmt, "service_requests", [created], status=201, headers={"Location": location})


async def submitted_fields(request: Request) -> dict[str, str]:
    """The POST body's fields, form-encoded (the spec's way) or JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            return flat_fields(json_document(await request.body()))
        except (ValueError, UnicodeDecodeError):
            raise Open311Error(400, "invalid_body", "the body is not valid JSON") from None
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise Open311Error(
            400, "unsupported_content_type", "send application/x-www-form-urlencoded or JSON"
        )
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    except (MultiPartException, UnicodeDecodeError) as error:
        raise Open311Error(400, "invalid_body", f"the form is not readable: {error}") from None
    except HTTPException as error:  # Starlette's own limits: too many fields, any file
        raise Open311Error(400, "invalid_body", str(error.detail)) from None
    return {key: value for key, value in form.items() if not isinstance(value, UploadFile)}


def reporter(resources: Resources, api_key: str | None) -> Principal:
    """Who reports: the api_key is a bearer token, and its role must be one that reports."""
    if not api_key:
        raise Open311Error(401, "missing_api_key", "api_key is required to post a request")
    principal = decode_token(resources.settings, api_key)
    if not allowed(principal, "report"):
        raise Open311Error(403, "forbidden", f"role {principal.role} may not report")
    return principal


async def one(resources: Resources, service_request_id: str) -> list[ServiceRequest]:
    """GET requests/{id}: the case as the board has it (404 until the board has it)."""
    missing = Open311Error(404, "request_not_found", f"no request {service_request_id[:64]!r}")
    case_id = case_id_of(service_request_id, missing)
    names = await service_names(resources)
    found = await asyncio.to_thread(
        find_requests, resources.views, RequestQuery(ids=(case_id,)), names, resources.reference
    )
    if not found:
        raise missing
    return found


def case_id_of(text: str, missing: Open311Error) -> str:
    """Request ids and tokens are case ids; anything else names nothing here."""
    try:
        return str(UUID(text))
    except ValueError:
        raise missing from None


async def stored_case(resources: Resources, token: str) -> str:
    """The case a token names: the token is the case id, known as soon as the case is stored."""
    missing = Open311Error(404, "token_not_found", f"no token {token[:64]!r}")
    case_id = case_id_of(token, missing)
    try:
        await asyncio.to_thread(resources.service.case, UUID(case_id))
    except DomainError:
        raise missing from None
    return case_id


for _fmt in Format:
    add_routes(_fmt)


@router.api_route("/{path:path}", methods=["GET", "POST"], include_in_schema=False)
async def not_found(request: Request, path: str) -> Response:
    """Anything else under /open311/v2 (a resource or format that does not exist), spec-style."""
    return error_response(
        Format.of_path(path), Open311Error(404, "not_found", f"no such resource: {path[:100]}")
    )
