"""Reading cases: the list (scoped to the caller's unit), one case, its time travel, history and proofs.

The list and the detail come from the read models, but who may see a case is decided on its
authoritative state in the event store (`CaseService.case`), so a lagging projection never widens
or narrows what a department or street sees. Time travel (`?as_of=`) replays the store itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query

from domain.errors import InvalidInput
from domain.service import CaseService
from gateway import problems
from gateway.auth import Principal, Role
from gateway.deps import ResourcesDep, ServiceDep, SettingsDep, ViewsDep, allow
from gateway.policy import allowed, for_principal, sees_case
from gateway.problems import forbidden
from gateway.schemas.queries import (
    CaseAsOfPublic,
    CaseDetailPublic,
    CaseListQuery,
    CasePagePublic,
    CaseProofPublic,
    CaseVerificationPublic,
    HistoryEntryPublic,
)
from infra.event_codec import canonical_json, iso_utc
from projections.queries import (
    CaseFilters,
    audit_public_key,
    case_detail,
    case_history,
    inclusion_proof,
    list_cases,
    tree_head,
    verify_case,
)

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])

Json = dict[str, Any]
CaseId = Annotated[
    UUID,
    Path(description="The case's id (a UUID).", examples=["6353ba58-389f-45d6-978c-47c55476054c"]),
]

#: The filter a scoped role is pinned to: its own unit, whatever it asks for. A department lists
#: every case it is or was on (`involved`), as it may open each of them.
SCOPED_FILTER: dict[Role, str] = {
    Role.STREET: "street",
    Role.COMMUNITY: "community",
    Role.DEPARTMENT: "involved",
}


def scoped_filters(principal: Principal, query: CaseListQuery) -> CaseFilters:
    """The filters as asked, with a street, community or department pinned to its own unit."""
    fields = query.model_dump(exclude={"cursor", "limit"})
    name = SCOPED_FILTER.get(principal.role)
    if name is not None:
        asked = [fields[name]] + (
            [fields["department"]] if principal.role is Role.DEPARTMENT else []
        )
        if any(value is not None and value != principal.scope for value in asked):
            raise forbidden(f"a {principal.role} token lists only its own cases")
        fields[name] = principal.scope
    return CaseFilters(**fields)


def visible_case(service: CaseService, principal: Principal, case_id: UUID) -> Json:
    """The case's current state from the store, if the principal may see it (404 / 403 otherwise)."""
    state = service.case(case_id)
    if not sees_case(principal, state):
        raise forbidden("this case is outside your scope")
    return state


def parse_as_of(value: str) -> datetime:
    """An ISO-8601 moment with its offset, in UTC; anything else is `invalid_as_of` (422).

    Converting to UTC here also refuses moments whose offset pushes them past year 1 or 9999.
    """
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise InvalidInput(
                "invalid_as_of", "时间须带时区", "as_of needs a time zone", field="as_of"
            )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(
            "invalid_as_of",
            "as_of 须为带时区的 ISO-8601 时间",
            "as_of is an ISO-8601 time with an offset",
            field="as_of",
        ) from None


def json_ready(value: Any) -> Any:
    """The aggregate's state as JSON values, times as ISO-8601 UTC (the event bodies' encoding)."""
    return json.loads(canonical_json(value))


@router.get(
    "",
    summary="List cases, newest report first",
    description=(
        "Keyset-paged: pass `next_cursor` back as `cursor`. A street, community or department "
        "token is pinned to its own unit; asking for another one is 403."
    ),
    operation_id="list_cases",
    response_model=CasePagePublic,
    responses=problems.responses(401, 403, 422),
)
def get_cases(
    principal: Annotated[Principal, Depends(allow("list-cases"))],
    query: Annotated[CaseListQuery, Query()],
    resources: ResourcesDep,
) -> Json:
    filters = scoped_filters(principal, query)
    page = list_cases(
        resources.views, filters, query.cursor, query.limit, now=resources.clock.now()
    )
    return page.as_dict()


@router.get(
    "/{case_id}",
    summary="One case: its board row, open deadlines and obligations, or its state at a moment",
    description=(
        "Without `as_of`: the read models' view of the case. With `as_of` (command centre and "
        "inspectors only): `{as_of, version, case}` replayed from the event store as it stood then."
    ),
    operation_id="get_case",
    response_model=CaseDetailPublic | CaseAsOfPublic,
    responses=problems.responses(401, 403, 404, 422),
)
def get_case(
    case_id: CaseId,
    principal: Annotated[Principal, Depends(allow("get-case"))],
    service: ServiceDep,
    views: ViewsDep,
    as_of: Annotated[
        str | None,
        Query(
            max_length=64,
            description="ISO-8601 moment with an offset, e.g. `2026-03-02T09:30:00+08:00`.",
            examples=["2026-03-02T09:30:00+08:00"],
        ),
    ] = None,
) -> Json:
    if as_of is not None and not allowed(principal, "get-case-as-of"):
        raise forbidden(f"role {principal.role} may not read a case as of a past moment")
    moment = parse_as_of(as_of) if as_of is not None else None
    visible_case(service, principal, case_id)
    if moment is None:
        return case_detail(views, str(case_id))
    state = service.case(case_id, as_of=moment)
    case = for_principal(principal, json_ready(state))
    return {"as_of": iso_utc(moment), "version": state["version"], "case": case}


@router.get(
    "/{case_id}/history",
    summary="Every event of the case, from the audit log",
    operation_id="case_history",
    response_model=list[HistoryEntryPublic],
    responses=problems.responses(401, 403, 404, 422),
)
def get_case_history(
    case_id: CaseId,
    principal: Annotated[Principal, Depends(allow("case-history"))],
    service: ServiceDep,
    views: ViewsDep,
) -> list[Json]:
    visible_case(service, principal, case_id)
    return for_principal(principal, case_history(views, str(case_id)))


@router.get(
    "/{case_id}/proof",
    summary="Inclusion proofs of the case's events in the latest signed tree head",
    description=(
        "Each audited event with its audit path to the head's root; events the head does not "
        "cover yet are listed in `pending`. 404 `no_tree_head` before the first head is signed."
    ),
    operation_id="case_proof",
    response_model=CaseProofPublic,
    responses=problems.responses(401, 403, 404, 422),
)
def get_case_proof(
    case_id: CaseId,
    principal: Annotated[Principal, Depends(allow("case-proof"))],
    service: ServiceDep,
    views: ViewsDep,
) -> Json:
    visible_case(service, principal, case_id)
    head = tree_head(views)
    size = head["tree_size"]
    events = case_history(views, str(case_id))
    proved = [
        {
            "version": event["version"],
            "event_type": event["event_type"],
            **inclusion_proof(views, event["notification_id"], size),
        }
        for event in events
        if event["leaf_index"] < size
    ]
    pending = [event["notification_id"] for event in events if event["leaf_index"] >= size]
    return {"case_id": str(case_id), "tree_head": head, "events": proved, "pending": pending}


@router.get(
    "/{case_id}/verify",
    summary="Check the case's audit trail against the event store and the latest signed head",
    description=(
        "Recomputes each event's leaf hash and the case's hash chain from the event store (the "
        "source of truth), compares them with the audit log, proves each leaf against the latest "
        "signed tree head and checks that head's Ed25519 signature. Events after the head are "
        "`pending`, not failures."
    ),
    operation_id="verify_case",
    response_model=CaseVerificationPublic,
    responses=problems.responses(401, 403, 404, 422),
)
def get_case_verification(
    case_id: CaseId,
    principal: Annotated[Principal, Depends(allow("verify-case"))],
    service: ServiceDep,
    views: ViewsDep,
    settings: SettingsDep,
) -> Json:
    visible_case(service, principal, case_id)
    return verify_case(service, views, str(case_id), audit_public_key(settings.audit_key_file()))
