"""The command endpoints: each POST becomes one `CaseService` command, run as the caller's actor.

Three checks guard a command (see `gateway.policy`): the role check (`allow`), a scope check for the
roles the aggregate does not scope itself (`SCOPE_CHECKED`), and the aggregate's own rules, whose
errors become problem documents in `gateway.problems`. Endpoints are plain `def`: the store is
blocking, so FastAPI runs them in its threadpool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from pydantic import BaseModel

from domain.actors import Actor
from domain.service import CaseService
from gateway import problems
from gateway.auth import Principal, Role
from gateway.deps import ResourcesDep, allow
from gateway.idempotency import MAX_KEY_LENGTH, domain_key
from gateway.policy import sees_case
from gateway.resources import Resources
from gateway.schemas.commands import (
    CASE_ID_EXAMPLE,
    AcceptCreate,
    CancelCreate,
    CloseCreate,
    CommandResult,
    ConsultCreate,
    DetermineCreate,
    DisputeCreate,
    EscalateCreate,
    HandOffCreate,
    RateCreate,
    RejectCreate,
    ReopenCreate,
    ReportCreate,
    ReportHandlingCreate,
    ReportInCreate,
    ResidentRatingCreate,
    ReworkCreate,
    StreetRatingCreate,
    SuperviseCreate,
    WhistleCreate,
)

B = TypeVar("B", bound=BaseModel)

PREFIX = "/api/v1/cases"
#: 400: a body that is not UTF-8 JSON at all (FastAPI's "error parsing the body"); 422: one that is
#: JSON but not a valid command.
ERRORS = problems.responses(400, 401, 403, 404, 409, 413, 422, 429, 503)

#: Roles whose reach the aggregate does not check on every command. A department never on a case
#: would otherwise learn of it from a 409 (`not_whistled`), and the aggregate lets any resident rate
#: or reopen; streets and the command centre are scoped by the aggregate itself (`other_street`).
SCOPE_CHECKED = frozenset({Role.DEPARTMENT, Role.RESIDENT})

CaseId = Annotated[UUID, Path(description="The case's id.", examples=[CASE_ID_EXAMPLE])]


async def _idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=MAX_KEY_LENGTH,
            description="Retry-safe key: a repeat with the same body gets the first response.",
        ),
    ] = None,
) -> None:
    """Only documents the header: `gateway.idempotency` acts on it before the endpoint runs."""


router = APIRouter(prefix=PREFIX, tags=["commands"], dependencies=[Depends(_idempotency_key)])


def _route(name: str, summary: str, description: str | None) -> dict[str, Any]:
    """What every command operation declares in OpenAPI (the body's docstring describes it)."""
    return {
        "summary": summary,
        "description": description or "",
        "operation_id": name.replace("-", "_"),
        "response_model": CommandResult,
        "responses": ERRORS,
    }


def _require_scope(service: CaseService, principal: Principal, case_id: UUID) -> None:
    if principal.role in SCOPE_CHECKED and not sees_case(principal, service.case(case_id)):
        raise problems.GatewayError(
            403, "case_out_of_scope", f"case {case_id} is outside what a {principal.role} acts on"
        )


def _execute(
    resources: Resources,
    principal: Principal,
    name: str,
    case_id: UUID,
    run: Callable[[CaseService, Actor], int],
) -> CommandResult:
    """The shared path of every command on an existing case: scope, then the domain, timed."""
    service = resources.service

    def call() -> int:
        _require_scope(service, principal, case_id)
        return run(service, principal.actor())

    with resources.metrics.timed_command(name):
        return CommandResult(case_id=case_id, version=call())


def _case_command(
    name: str,
    summary: str,
    body: type[B],
    run: Callable[[CaseService, UUID, Actor, B], int],
) -> None:
    """Adds `POST /cases/{case_id}/<name>`: `body` in, `run(service, case_id, actor, body)` done.

    The endpoint is built here rather than written out fifteen times; FastAPI reads its parameters
    from the annotations, so the body model and the role check are filled in per command.
    """

    def endpoint(
        case_id: CaseId, body: Any, principal: Principal, resources: ResourcesDep
    ) -> CommandResult:
        return _execute(
            resources, principal, name, case_id, lambda s, actor: run(s, case_id, actor, body)
        )

    endpoint.__annotations__.update(body=body, principal=Annotated[Principal, Depends(allow(name))])
    endpoint.__name__ = endpoint.__qualname__ = name.replace("-", "_")
    router.post(f"/{{case_id}}/{name}", **_route(name, summary, body.__doc__))(endpoint)


# --- intake ------------------------------------------------------------------------------------


@router.post("", status_code=201, **_route("report", "收集 Report a problem", ReportCreate.__doc__))
def report(
    body: ReportCreate,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(allow("report"))],
    resources: ResourcesDep,
) -> CommandResult:
    fields = _report_fields(body, principal)
    key = domain_key(request.scope, principal)
    with resources.metrics.timed_command("report"):
        case_id = resources.service.report(principal.actor(), idempotency_key=key, **fields)
    response.headers["Location"] = f"{PREFIX}/{case_id}"
    return CommandResult(case_id=case_id, version=1)


def _report_fields(body: ReportCreate, principal: Principal) -> dict[str, Any]:
    """A community reports in its own area (as the aggregate holds a street to its own)."""
    fields = body.model_dump(exclude_none=True)
    if principal.role is not Role.COMMUNITY:
        return fields
    if fields.setdefault("community", principal.community) != principal.community:
        raise problems.GatewayError(
            403, "other_community", "a community reports problems in its own area"
        )
    return fields


# --- commands on a case ------------------------------------------------------------------------
# Each `run` is (service, case_id, actor, body) -> the case's new version.

_case_command(
    "accept", "受理 Accept a case", AcceptCreate, lambda s, c, a, b: s.accept(c, a, b.note)
)
_case_command(
    "reject",
    "不予受理 Reject a case",
    RejectCreate,
    lambda s, c, a, b: s.reject(c, a, b.reason, b.note, b.duplicate_of),
)
_case_command(
    "whistle",
    "吹哨 Whistle the responsible departments",
    WhistleCreate,
    lambda s, c, a, b: s.whistle(
        c,
        a,
        lead=b.lead,
        assisting=tuple(b.assisting),
        duty_item=b.duty_item,
        urgency=b.urgency,
        justification=b.justification,
    ),
)
_case_command(
    "report-in",
    "报到 Report in as a whistled department",
    ReportInCreate,
    lambda s, c, a, b: s.report_in(c, a, b.mode, b.note),
)
_case_command(
    "hand-off",
    "移交 Hand the case off to another department",
    HandOffCreate,
    lambda s, c, a, b: s.hand_off(c, a, b.to_department, b.reason),
)
_case_command(
    "dispute",
    "Dispute a hand-off",
    DisputeCreate,
    lambda s, c, a, b: s.dispute_hand_off(c, a, b.reason),
)
_case_command(
    "determine",
    "责任认定 Determine responsibility",
    DetermineCreate,
    lambda s, c, a, b: s.determine_responsibility(c, a, b.department, b.basis),
)
_case_command(
    "consult",
    "会商 Hold a consultation",
    ConsultCreate,
    lambda s, c, a, b: s.hold_consultation(c, a, tuple(b.departments), b.plan),
)
_case_command(
    "report-handling",
    "处置反馈 Report the handling's outcome",
    ReportHandlingCreate,
    lambda s, c, a, b: s.report_handling(c, a, b.result, b.note),
)
_case_command(
    "rework",
    "Send the handling back for rework",
    ReworkCreate,
    lambda s, c, a, b: s.send_back_for_rework(c, a, b.reason),
)
_case_command(
    "close",
    "核查结案 Close a handled case",
    CloseCreate,
    lambda s, c, a, b: s.close_case(c, a, b.note),
)
_case_command(
    "reopen", "重启 Reopen a closed case", ReopenCreate, lambda s, c, a, b: s.reopen(c, a, b.reason)
)
_case_command(
    "supervise",
    "督办 Supervise a department on the case",
    SuperviseCreate,
    lambda s, c, a, b: s.issue_supervision(c, a, b.colour, b.department, b.reason, b.obligation),
)
_case_command(
    "escalate",
    "上报区级 Escalate a department to the district",
    EscalateCreate,
    lambda s, c, a, b: s.escalate_to_district(c, a, b.department, b.reason),
)
_case_command(
    "cancel", "撤销 Cancel a case", CancelCreate, lambda s, c, a, b: s.cancel(c, a, b.reason)
)


# --- rating: one endpoint, two bodies ----------------------------------------------------------


@router.post(
    "/{case_id}/rate",
    **_route(
        "rate",
        "评价 Rate a closed case",
        "A resident rates satisfaction (`ResidentRatingCreate`); the case's street scores each "
        "department that worked it (`StreetRatingCreate`).",
    ),
)
def rate(
    case_id: CaseId,
    body: RateCreate,
    principal: Annotated[Principal, Depends(allow("rate"))],
    resources: ResourcesDep,
) -> CommandResult:
    return _execute(resources, principal, "rate", case_id, _rating(principal, body, case_id))


def _rating(
    principal: Principal, body: RateCreate, case_id: UUID
) -> Callable[[CaseService, Actor], int]:
    """The rating the caller's role gives: a resident's satisfaction or a street's scores."""
    if principal.role is Role.RESIDENT and isinstance(body, ResidentRatingCreate):
        rating = body
        return lambda s, a: s.rate_by_resident(
            case_id, a, rating.satisfaction, rating.solved, rating.comment
        )
    if principal.role is Role.STREET and isinstance(body, StreetRatingCreate):
        scores = body
        return lambda s, a: s.rate_by_street(case_id, a, dict(scores.scores), scores.comment)
    raise problems.GatewayError(
        422,
        "rating_does_not_fit_role",
        "a resident rates {satisfaction, solved}; a street rates {scores}",
    )
