"""Who may call what: the role × endpoint matrix of docs/SECURITY.md, as data.

Two checks guard every endpoint. The role check (`POLICY`) runs first and refuses with 403 before
anything is read. The scope check runs on the case itself, read from the event store: a department
sees only cases it is or was on, a street or community only its own area, a resident only what they
reported. Commands meet a third check in the aggregate (e.g. only the lead reports handling), whose
`WrongActor` errors are 403 too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from gateway.auth import Principal, Role

CC, STREET, COMMUNITY, DEPT = Role.COMMAND_CENTRE, Role.STREET, Role.COMMUNITY, Role.DEPARTMENT
INSPECTOR, RESIDENT, VIEWER = Role.INSPECTOR, Role.RESIDENT, Role.VIEWER
EVERYONE = frozenset(Role)
STREET_WORK = frozenset({CC, STREET})
DEPARTMENT_WORK = frozenset({DEPT})
#: Who reads district-wide views (overview, linkage, ranking, any department's measures).
OVERSIGHT = frozenset({CC, STREET, INSPECTOR, VIEWER})

#: Endpoint name → the roles that may call it. Names are the OpenAPI operation ids' stems.
POLICY: Mapping[str, frozenset[Role]] = {
    # commands
    "report": frozenset({CC, STREET, COMMUNITY, RESIDENT}),
    "accept": STREET_WORK,
    "reject": STREET_WORK,
    "whistle": STREET_WORK,
    "report-in": DEPARTMENT_WORK,
    "hand-off": DEPARTMENT_WORK,
    "dispute": DEPARTMENT_WORK,
    "determine": frozenset({CC}),
    "consult": STREET_WORK,
    "report-handling": DEPARTMENT_WORK,
    "rework": STREET_WORK,
    "close": STREET_WORK,
    "rate": frozenset({STREET, RESIDENT}),
    "reopen": frozenset({CC, STREET, RESIDENT}),
    "supervise": frozenset({CC, INSPECTOR}),
    "escalate": STREET_WORK,
    "cancel": STREET_WORK,
    # queries
    "list-cases": frozenset({CC, STREET, COMMUNITY, DEPT, INSPECTOR, VIEWER}),
    "get-case": EVERYONE,
    "get-case-as-of": frozenset({CC, INSPECTOR}),
    "case-history": EVERYONE,
    "case-proof": EVERYONE,
    "verify-case": EVERYONE,
    "overview": OVERSIGHT,
    "linkage": OVERSIGHT,
    "supervision-board": OVERSIGHT,
    "trend": OVERSIGHT,
    "performance-ranking": OVERSIGHT,
    "measures-by": OVERSIGHT,
    "department-performance": OVERSIGHT | {DEPT},
    "reference": EVERYONE,
    "tree-head": EVERYONE,
    "consistency-proof": frozenset({CC, INSPECTOR, VIEWER}),
    # live feeds
    "ws-command-centre": frozenset({CC, INSPECTOR, VIEWER}),
    "ws-department": frozenset({CC, INSPECTOR, DEPT}),
    "ws-case": EVERYONE,
}


def allowed(principal: Principal, endpoint: str) -> bool:
    return principal.role in POLICY[endpoint]


def sees_department(principal: Principal, department: str) -> bool:
    """A department sees only itself; oversight roles see every department."""
    if principal.role is DEPT:
        return principal.dept == department
    return principal.role in OVERSIGHT | {CC, INSPECTOR}


def sees_case(principal: Principal, case: Mapping[str, Any]) -> bool:
    """Whether the principal may read this case (its public state as `CaseService.case` gives it)."""
    match principal.role:
        case Role.COMMAND_CENTRE | Role.INSPECTOR | Role.VIEWER:
            return True
        case Role.STREET:
            return bool(case.get("street") == principal.street)
        case Role.COMMUNITY:
            return bool(case.get("community") == principal.community)
        case Role.DEPARTMENT:
            return principal.dept in (case.get("obligations") or {})
        case Role.RESIDENT:
            reporter = case.get("reporter") or {}
            return bool(
                reporter.get("role") == "resident" and reporter.get("id") == principal.subject
            )
    return False


T = TypeVar("T")

#: The key a resident's contact details travel under, in events and in a case's state.
CONTACT = "contact"


def sees_contact(principal: Principal) -> bool:
    """Who may read a resident's contact details: every role that acts on a case or audits it
    (the street and department call the resident back, the resident sees their own). The viewer
    (the dashboard, wall screens) never needs them."""
    return principal.role is not Role.VIEWER


def without_contact(value: Any) -> Any:
    """`value` with every `contact` member, at any depth, replaced by None (a copy)."""
    if isinstance(value, dict):
        return {k: None if k == CONTACT else without_contact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_contact(item) for item in value]
    return value


def for_principal(principal: Principal, value: T) -> T:
    """What of a case's data this principal may read: all, or all but contact details."""
    return value if sees_contact(principal) else cast(T, without_contact(value))
