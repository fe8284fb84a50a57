"""Bearer tokens (HS256 JWTs) and the principal they carry.

A token names a role and, for the roles that act for one unit, its scope: a department's code, a
street's code, a community's code. The gateway turns the principal into the domain's `Actor`, so the
aggregate's own rules (only a whistled department reports in, a street acts on its own cases) apply
to what arrives over HTTP exactly as to what arrives in-process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any
from uuid import uuid4

import jwt

from domain.actors import Actor
from domain.actors import Role as DomainRole
from domain.reference import ReferenceData
from infra.settings import DEFAULT_JWT_SECRET, Settings

ALGORITHM = "HS256"
ISSUER = "whistleloop"
#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash (32 bytes).
MIN_SECRET_BYTES = 32
#: A subject becomes the actor id of unscoped roles and part of idempotency keys (`role:subject:key`),
#: so it is a plain identifier: no separators, no spaces.
SUBJECT = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class Role(StrEnum):
    COMMAND_CENTRE = "command_centre"
    STREET = "street"
    COMMUNITY = "community"
    DEPARTMENT = "department"
    INSPECTOR = "inspector"
    RESIDENT = "resident"
    VIEWER = "viewer"  # the dashboard: reads, never acts


#: The scope claim each role must carry (None: no scope).
SCOPE_OF: dict[Role, str | None] = {
    Role.COMMAND_CENTRE: None,
    Role.STREET: "street",
    Role.COMMUNITY: "community",
    Role.DEPARTMENT: "dept",
    Role.INSPECTOR: None,
    Role.RESIDENT: None,
    Role.VIEWER: None,
}


class AuthError(Exception):
    """The request carries no usable token (401); `code` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigError(Exception):
    """The gateway must not start with these settings."""


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    dept: str | None = None
    street: str | None = None
    community: str | None = None
    token_id: str = ""

    @property
    def scope(self) -> str | None:
        """The unit the principal acts for (its dept, street or community code)."""
        name = SCOPE_OF[self.role]
        return getattr(self, name) if name else None

    def actor(self) -> Actor:
        """Who the domain records: a scoped role acts as its unit, the others as their subject."""
        if self.role is Role.VIEWER:
            raise AuthError("viewer_cannot_act", "a viewer token reads, never acts")
        return Actor(DomainRole(self.role.value), self.scope or self.subject)


def check_secret(settings: Settings) -> None:
    """Refuses the well-known default secret (and short ones) unless in dev mode."""
    if settings.dev_mode:
        return
    if settings.jwt_secret == DEFAULT_JWT_SECRET:
        raise ConfigError(
            "WL_JWT_SECRET is the default secret: set your own (e.g. `openssl rand -hex 32`), "
            "or WL_DEV_MODE=true on a development machine"
        )
    if len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"WL_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")


def check_scope(
    reference: ReferenceData,
    role: Role,
    *,
    dept: str | None = None,
    street: str | None = None,
    community: str | None = None,
) -> None:
    """The role has exactly the scope it needs, and the scope names a unit that exists."""
    given = {"dept": dept, "street": street, "community": community}
    needed = SCOPE_OF[role]
    extra = [name for name, value in given.items() if value is not None and name != needed]
    if extra:
        raise ValueError(f"role {role} takes no --{extra[0]}")
    if needed is None:
        return
    value = given[needed]
    if not value:
        raise ValueError(f"role {role} needs --{needed}")
    units: dict[str, Mapping[str, object]] = {
        "dept": reference.departments,
        "street": reference.streets,
        "community": reference.communities,
    }
    known = units[needed]
    if value not in known:
        raise ValueError(f"unknown {needed}: {value}")


def issue_token(
    settings: Settings,
    role: Role,
    *,
    subject: str | None = None,
    dept: str | None = None,
    street: str | None = None,
    community: str | None = None,
    ttl: int | None = None,
    now: float | None = None,
) -> str:
    if subject is not None and not SUBJECT.match(subject):
        raise ValueError("--subject is 1–64 letters, digits or _.@- (no spaces, no colons)")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": subject or dept or street or community or role.value,
        "role": role.value,
        "iat": issued,
        "exp": issued + (ttl if ttl is not None else settings.token_ttl),
        "jti": uuid4().hex,
    }
    for name, value in (("dept", dept), ("street", street), ("community", community)):
        if value is not None:
            claims[name] = value
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_token(settings: Settings, token: str) -> Principal:
    """The principal a valid, unexpired token names; `AuthError` otherwise."""
    principal, expires = _verified(settings.jwt_secret, token)
    if expires <= time.time():
        raise AuthError("token_expired", "the token has expired")
    return principal


@lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[Principal, float]:
    """Checks a token's signature and claims once, then remembers it (with its expiry, which
    `decode_token` checks on every use): clients send the same token with every request, and
    PyJWT's checks cost a tenth of the gateway's CPU per command (docs/BENCHMARKS.md). Failures
    are exceptions, which `lru_cache` never stores."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "role"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token_expired", "the token has expired") from None
    except jwt.InvalidTokenError as error:
        raise AuthError("invalid_token", f"the token is not valid: {error}") from None
    try:
        role = Role(claims["role"])
    except ValueError:
        raise AuthError("invalid_token", f"unknown role {claims['role']!r}") from None
    principal = Principal(
        role=role,
        subject=str(claims["sub"])[:64],
        dept=_claim(claims, "dept"),
        street=_claim(claims, "street"),
        community=_claim(claims, "community"),
        token_id=str(claims.get("jti", "")),
    )
    if SCOPE_OF[role] is not None and not principal.scope:
        raise AuthError("invalid_token", f"a {role} token must carry its {SCOPE_OF[role]}")
    return principal, float(claims["exp"])


def _claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return str(value) if value is not None else None
