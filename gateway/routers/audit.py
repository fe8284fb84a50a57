"""The audit trail's public face: the latest signed tree head and consistency between two heads.

With the head's signature (Ed25519, key id in the head) and these proofs a client checks that the
event log it saw earlier is a prefix of today's, without trusting the gateway.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gateway import problems
from gateway.auth import Principal
from gateway.deps import ViewsDep, allow
from gateway.schemas.queries import ConsistencyProofPublic, TreeHeadPublic
from projections.queries import consistency_proof, tree_head

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Json = dict[str, Any]


@router.get(
    "/tree-head",
    summary="The latest signed tree head of the audit log",
    description="404 `no_tree_head` until the audit projection has signed its first head.",
    operation_id="tree_head",
    response_model=TreeHeadPublic,
    responses=problems.responses(401, 403, 404),
)
def get_tree_head(_: Annotated[Principal, Depends(allow("tree-head"))], views: ViewsDep) -> Json:
    return tree_head(views)


@router.get(
    "/consistency",
    summary="Proof that the tree of `first` leaves is a prefix of the tree of `second` leaves",
    operation_id="consistency_proof",
    response_model=ConsistencyProofPublic,
    responses=problems.responses(401, 403, 422),
)
def get_consistency(
    _: Annotated[Principal, Depends(allow("consistency-proof"))],
    views: ViewsDep,
    first: Annotated[int, Query(description="The older tree size (≥ 1).", examples=[16])],
    second: Annotated[
        int, Query(description="The newer tree size (≤ the current size).", examples=[32])
    ],
) -> Json:
    return consistency_proof(views, first, second)
