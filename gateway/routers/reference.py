"""The district's reference data: departments, streets, communities and the duty list in force.

Codes a client sends in commands and filters come from here; the duty list is read from the event
store (`CaseService.duty_items`), so a revision shows at once, not the shipped TOML.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gateway import problems
from gateway.auth import Principal
from gateway.deps import ServiceDep, allow
from gateway.schemas.queries import CommunityPublic, DepartmentPublic, DutyListPublic, StreetPublic

router = APIRouter(prefix="/api/v1/reference", tags=["reference"])

Json = dict[str, Any]
Reader = Annotated[Principal, Depends(allow("reference"))]


@router.get(
    "/departments",
    summary="Departments and their liaisons",
    operation_id="reference_departments",
    response_model=list[DepartmentPublic],
    responses=problems.responses(401, 403),
)
def get_departments(_: Reader, service: ServiceDep) -> list[Json]:
    return [asdict(dept) for dept in service.reference.departments.values()]


@router.get(
    "/streets",
    summary="Streets and townships (街乡)",
    operation_id="reference_streets",
    response_model=list[StreetPublic],
    responses=problems.responses(401, 403),
)
def get_streets(_: Reader, service: ServiceDep) -> list[Json]:
    return [asdict(street) for street in service.reference.streets.values()]


@router.get(
    "/communities",
    summary="Communities (社区) with their grids",
    operation_id="reference_communities",
    response_model=list[CommunityPublic],
    responses=problems.responses(401, 403, 422),
)
def get_communities(
    _: Reader,
    service: ServiceDep,
    street: Annotated[
        str | None, Query(description="Only this street's communities.", examples=["jianwai"])
    ] = None,
) -> list[Json]:
    reference = service.reference
    if street is not None:
        reference.street(street)  # unknown_street (422)
    return [
        asdict(community)
        for community in reference.communities.values()
        if street is None or community.street == street
    ]


@router.get(
    "/duty-items",
    summary="The duty list (职责清单) in force now",
    operation_id="reference_duty_items",
    response_model=DutyListPublic,
    responses=problems.responses(401, 403),
)
def get_duty_items(_: Reader, service: ServiceDep) -> Json:
    version, items = service.duty_items()
    return {"version": version, "items": [item.to_state() for item in items]}
