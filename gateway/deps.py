"""FastAPI dependencies as `Annotated` aliases: what an endpoint needs, named by what it is.

Every dependency here is `async def` although none awaits anything: FastAPI runs a plain `def`
dependency in its thread pool, and the five hops a request took that way cost more CPU than the
command itself (docs/BENCHMARKS.md). They only read app state and check a token: nothing blocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from domain.service import CaseService
from gateway.auth import AuthError, Principal, decode_token
from gateway.policy import allowed
from gateway.problems import forbidden
from gateway.resources import Resources
from infra.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="`whistleloop token issue --role …`")


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_service(resources: ResourcesDep) -> CaseService:
    return resources.service


async def get_views(resources: ResourcesDep) -> Engine:
    return resources.views


async def get_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


ServiceDep = Annotated[CaseService, Depends(get_service)]
ViewsDep = Annotated[Engine, Depends(get_views)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_principal(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise AuthError("missing_token", "send `Authorization: Bearer <token>`")
    return decode_token(settings, credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def allow(endpoint: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through only the roles `gateway.policy.POLICY` names for `endpoint`."""

    async def check(principal: PrincipalDep) -> Principal:
        if not allowed(principal, endpoint):
            raise forbidden(f"role {principal.role} may not call {endpoint}")
        return principal

    check.__name__ = f"allow_{endpoint.replace('-', '_')}"
    return check
