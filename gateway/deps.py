"""FastAPI dependencies as `Annotated` aliases: what an endpoint needs, named by what it is."""

from __future__ import annotations

from collections.abc import Callable
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


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_service(resources: ResourcesDep) -> CaseService:
    return resources.service


def get_views(resources: ResourcesDep) -> Engine:
    return resources.views


def get_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


ServiceDep = Annotated[CaseService, Depends(get_service)]
ViewsDep = Annotated[Engine, Depends(get_views)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_principal(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise AuthError("missing_token", "send `Authorization: Bearer <token>`")
    return decode_token(settings, credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def allow(endpoint: str) -> Callable[[Principal], Principal]:
    """A dependency that lets through only the roles `gateway.policy.POLICY` names for `endpoint`."""

    def check(principal: PrincipalDep) -> Principal:
        if not allowed(principal, endpoint):
            raise forbidden(f"role {principal.role} may not call {endpoint}")
        return principal

    check.__name__ = f"allow_{endpoint.replace('-', '_')}"
    return check
