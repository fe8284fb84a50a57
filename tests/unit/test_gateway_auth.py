"""Tokens and principals: what a token may claim, and who the domain records as the actor."""

from __future__ import annotations

import jwt
import pytest

from domain.actors import Actor
from domain.reference import ReferenceData
from gateway.auth import (
    AuthError,
    ConfigError,
    Principal,
    Role,
    check_scope,
    check_secret,
    decode_token,
    issue_token,
)
from gateway.cli import parse_ttl
from gateway.policy import sees_case, sees_department
from infra.settings import DEFAULT_JWT_SECRET, Settings

SECRET = "s" * 64
SETTINGS = Settings(jwt_secret=SECRET)


def test_a_token_round_trips_role_and_scope() -> None:
    token = issue_token(SETTINGS, Role.DEPARTMENT, dept="cgzf")
    principal = decode_token(SETTINGS, token)
    assert (principal.role, principal.dept, principal.subject) == (Role.DEPARTMENT, "cgzf", "cgzf")
    assert principal.actor() == Actor.of("department", "cgzf")


def test_unscoped_roles_act_as_their_subject() -> None:
    token = issue_token(SETTINGS, Role.INSPECTOR, subject="jw-3")
    assert decode_token(SETTINGS, token).actor() == Actor.of("inspector", "jw-3")


def test_a_viewer_cannot_act() -> None:
    principal = decode_token(SETTINGS, issue_token(SETTINGS, Role.VIEWER))
    with pytest.raises(AuthError) as caught:
        principal.actor()
    assert caught.value.code == "viewer_cannot_act"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (issue_token(SETTINGS, Role.VIEWER, ttl=-1), "token_expired"),
        (issue_token(Settings(jwt_secret="t" * 40), Role.VIEWER), "invalid_token"),
        ("not-a-jwt", "invalid_token"),
        (
            jwt.encode(
                {"sub": "x", "role": "boss", "iss": "whistleloop", "iat": 1, "exp": 9e9}, SECRET
            ),
            "invalid_token",
        ),
        (
            jwt.encode(
                {"sub": "x", "role": "street", "iss": "whistleloop", "iat": 1, "exp": 9e9}, SECRET
            ),
            "invalid_token",
        ),
        (jwt.encode({"sub": "x", "role": "viewer", "iat": 1, "exp": 9e9}, SECRET), "invalid_token"),
        (
            jwt.encode(
                {"sub": "x", "role": "viewer", "iss": "whistleloop", "iat": 1, "exp": 9e9},
                SECRET,
                algorithm="HS512",
            ),
            "invalid_token",
        ),
    ],
    ids=[
        "expired",
        "other-secret",
        "garbage",
        "unknown-role",
        "street-without-street",
        "no-issuer",
        "other-algorithm",
    ],
)
def test_bad_tokens_are_refused_with_a_code(token: str, code: str) -> None:
    with pytest.raises(AuthError) as caught:
        decode_token(SETTINGS, token)
    assert caught.value.code == code


def test_the_default_secret_is_refused_outside_dev_mode() -> None:
    with pytest.raises(ConfigError):
        check_secret(Settings(jwt_secret=DEFAULT_JWT_SECRET, dev_mode=False))
    with pytest.raises(ConfigError):
        check_secret(Settings(jwt_secret="short", dev_mode=False))
    check_secret(Settings(jwt_secret=DEFAULT_JWT_SECRET, dev_mode=True))
    check_secret(SETTINGS)


def test_scopes_must_fit_the_role_and_exist(reference: ReferenceData) -> None:
    check_scope(reference, Role.DEPARTMENT, dept="cgzf")
    check_scope(reference, Role.VIEWER)
    for role, scope in [
        (Role.DEPARTMENT, {}),
        (Role.DEPARTMENT, {"dept": "nope"}),
        (Role.VIEWER, {"street": "jianwai"}),
        (Role.STREET, {"dept": "cgzf"}),
    ]:
        with pytest.raises(ValueError, match=r"--|unknown"):
            check_scope(reference, role, **scope)


@pytest.mark.parametrize("subject", ["", "a:b", "with space", "x" * 65])
def test_subjects_are_plain_identifiers(subject: str) -> None:
    with pytest.raises(ValueError, match="--subject"):
        issue_token(SETTINGS, Role.RESIDENT, subject=subject)


def test_ttl_units() -> None:
    assert [parse_ttl(t) for t in ("90", "90s", "30m", "8h", "7d")] == [90, 90, 1800, 28800, 604800]
    for bad in ("", "h", "-1h", "1.5h", "0"):
        with pytest.raises(ValueError, match="--ttl"):
            parse_ttl(bad)


CASE = {
    "street": "jianwai",
    "community": "jianwai-c1",
    "obligations": {"cgzf": {"active": True}, "ghzr": {"active": False}},
    "reporter": {"role": "resident", "id": "r-1"},
}


@pytest.mark.parametrize(
    ("principal", "sees"),
    [
        (Principal(Role.STREET, "jianwai", street="jianwai"), True),
        (Principal(Role.STREET, "chaowai", street="chaowai"), False),
        (Principal(Role.COMMUNITY, "c", community="jianwai-c1"), True),
        (Principal(Role.COMMUNITY, "c", community="other"), False),
        (Principal(Role.DEPARTMENT, "cgzf", dept="cgzf"), True),
        (Principal(Role.DEPARTMENT, "ghzr", dept="ghzr"), True),  # handed off: still was on it
        (Principal(Role.DEPARTMENT, "zj", dept="zj"), False),
        (Principal(Role.RESIDENT, "r-1"), True),
        (Principal(Role.RESIDENT, "r-2"), False),
        (Principal(Role.VIEWER, "v"), True),
        (Principal(Role.INSPECTOR, "i"), True),
    ],
)
def test_who_sees_a_case(principal: Principal, sees: bool) -> None:
    assert sees_case(principal, CASE) is sees


def test_a_department_sees_only_its_own_measures() -> None:
    cgzf = Principal(Role.DEPARTMENT, "cgzf", dept="cgzf")
    assert sees_department(cgzf, "cgzf")
    assert not sees_department(cgzf, "zj")
    assert sees_department(Principal(Role.VIEWER, "v"), "zj")
    assert not sees_department(Principal(Role.RESIDENT, "r"), "zj")
