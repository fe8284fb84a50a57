"""The role × endpoint matrix of docs/SECURITY.md, read from the document, and what walks it.

The matrix is parsed from the Markdown itself, so the tests that use it check the document: a row
that says `own` is called once inside the principal's scope (it must succeed) and once outside it
(it must be 403). Inside and outside are two "worlds" built alike — a street, a community, a
resident and a lead department each — so the two calls differ only in whose case they touch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

from domain.actors import Actor
from domain.service import CaseService
from gateway.auth import Role

DOC = Path(__file__).resolve().parents[3] / "docs" / "SECURITY.md"
SECTION = "## Role × endpoint matrix"

Json = dict[str, Any]


class Cell(StrEnum):
    ANY = "✓"  # allowed, whatever the scope
    OWN = "own"  # allowed within the principal's scope, 403 outside it
    NONE = "—"  # 403

    @property
    def allowed(self) -> bool:
        return self is not Cell.NONE


@dataclass(frozen=True)
class Row:
    endpoint: str
    request: str  # as the document shows it: "POST /api/v1/cases/{case_id}/accept"
    cells: Mapping[Role, Cell]

    @property
    def method(self) -> str:
        return self.request.split(" ", 1)[0]

    @property
    def path(self) -> str:
        """The path template, without the query the document may show (`?as_of=`)."""
        return self.request.split(" ", 1)[1].split("?", 1)[0]

    def matches(self, method: str, path: str) -> bool:
        """Whether an app route (`{name}` placeholders) is this row's request."""
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.path))
        return self.method == method and re.fullmatch(pattern, path) is not None


def read_matrix(text: str) -> dict[str, Row]:
    """The first table after the matrix heading: endpoint → row, cells by the header's roles."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, rows = _cells(lines[0]), lines[2:]  # lines[1] is the |---| separator
    assert header[:2] == ["endpoint", "request"], header
    roles = [Role(name) for name in header[2:]]
    matrix: dict[str, Row] = {}
    for line in rows:
        endpoint, request, *marks = _cells(line)
        assert endpoint not in matrix, f"{endpoint} twice in the matrix"
        matrix[endpoint] = Row(endpoint, request, dict(zip(roles, map(Cell, marks), strict=True)))
    return matrix


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def load_matrix() -> dict[str, Row]:
    return read_matrix(DOC.read_text(encoding="utf-8"))


# --- who calls, and on whose cases ---------------------------------------------------------------

#: The roles whose tokens carry a scope (a resident's is its own reports).
SCOPED = frozenset({Role.STREET, Role.COMMUNITY, Role.DEPARTMENT, Role.RESIDENT})
ITEM = "CG-001"  # 违法建设: cgzf leads, ghzr and zj cooperate — so each world can lead under it


@dataclass(frozen=True)
class World:
    street: str
    community: str
    resident: str
    lead: str  # the case's lead department
    partner: str  # the department that hands the case to the lead (the `handed_off` stage)

    def report_body(self) -> Json:
        return {
            "source": "hotline_12345",
            "street": self.street,
            "community": self.community,
            "title": "楼顶违建",
            "description": "3 号楼楼顶正在搭建彩钢房",
        }


#: Every principal's own world, and one that is nobody's in it: another street, community,
#: resident and lead department (ghzr is on both worlds' handed-off cases, but no token is ghzr).
HOME = World("jianwai", "jianwai_c01", "r-1", "cgzf", "ghzr")
AWAY = World("hujialou", "hujialou_c01", "r-2", "zj", "ghzr")

#: The token claims of each role, all scoped to HOME.
CLAIMS: dict[Role, dict[str, str]] = {
    Role.COMMAND_CENTRE: {},
    Role.STREET: {"street": HOME.street},
    Role.COMMUNITY: {"community": HOME.community},
    Role.DEPARTMENT: {"dept": HOME.lead},
    Role.INSPECTOR: {"subject": "inspector-1"},
    Role.RESIDENT: {"subject": HOME.resident},
    Role.VIEWER: {},
}


def worlds(role: Role, cell: Cell) -> list[tuple[World, bool]]:
    """Where to call a cell and whether it must then be allowed: an `own` cell is 403 away."""
    if not cell.allowed:
        return [(HOME, False)]
    if role not in SCOPED:
        return [(HOME, True)]
    return [(HOME, True), (AWAY, cell is Cell.ANY)]


# --- cases in the stage a command needs ----------------------------------------------------------

Step = Callable[[CaseService, UUID, World], object]


def _street(w: World) -> Actor:
    return Actor.of("street", w.street)


def _dept(code: str) -> Actor:
    return Actor.of("department", code)


STEPS: dict[str, Step] = {
    "accept": lambda s, c, w: s.accept(c, _street(w), "属实，受理"),
    "whistle": lambda s, c, w: s.whistle(c, _street(w), lead=w.lead, duty_item=ITEM),
    "whistle_partner": lambda s, c, w: s.whistle(c, _street(w), lead=w.partner, duty_item=ITEM),
    "hand_off": lambda s, c, w: s.hand_off(c, _dept(w.partner), w.lead, "属对方职责"),
    "dispute": lambda s, c, w: s.dispute_hand_off(c, _dept(w.lead), "不属本部门职责"),
    "report_in": lambda s, c, w: s.report_in(c, _dept(w.lead), "on_site"),
    "report_handling": lambda s, c, w: s.report_handling(c, _dept(w.lead), "resolved"),
    "close": lambda s, c, w: s.close_case(c, _street(w), "现场核查已整改"),
    "rate_unsatisfied": lambda s, c, w: s.rate_by_resident(
        c, Actor.of("resident", w.resident), "unsatisfied", False
    ),
}
_HANDLED = ("accept", "whistle", "report_in", "report_handling")
STAGES: dict[str, tuple[str, ...]] = {
    "reported": (),
    "accepted": ("accept",),
    "whistled": ("accept", "whistle"),
    "handed_off": ("accept", "whistle_partner", "hand_off"),  # to the lead, who may dispute
    "disputed": ("accept", "whistle_partner", "hand_off", "dispute"),
    "in_handling": ("accept", "whistle", "report_in"),
    "handled": _HANDLED,
    "closed": (*_HANDLED, "close"),
    "rated_unsatisfied": (*_HANDLED, "close", "rate_unsatisfied"),
}


def case_at(service: CaseService, world: World, stage: str) -> UUID:
    """A case of `world`, reported by its resident and driven to `stage` through the service."""
    fields = world.report_body()
    case_id = service.report(Actor.of("resident", world.resident), **fields)
    for name in STAGES[stage]:
        STEPS[name](service, case_id, world)
    return case_id


# --- the requests ---------------------------------------------------------------------------------

Body = Callable[[Role, World], Json]


def _fixed(body: Json) -> Body:
    return lambda role, world: body


@dataclass(frozen=True)
class Command:
    """The stage a command succeeds in (None: it makes the case) and the body it sends."""

    stage: str | None
    body: Body
    stage_for: Mapping[Role, str] = field(default_factory=dict)

    def stage_of(self, role: Role) -> str | None:
        return self.stage_for.get(role, self.stage)


def _rating(role: Role, world: World) -> Json:
    if role is Role.RESIDENT:
        return {"satisfaction": "satisfied", "solved": True}
    return {"scores": {world.lead: 85}}


COMMANDS: dict[str, Command] = {
    "report": Command(None, lambda role, world: world.report_body()),
    "accept": Command("reported", _fixed({"note": "属实，受理"})),
    "reject": Command("reported", _fixed({"reason": "not_public", "note": "属私人纠纷"})),
    "whistle": Command("accepted", lambda r, w: {"lead": w.lead, "duty_item": ITEM}),
    "report-in": Command("whistled", _fixed({"mode": "on_site"})),
    "hand-off": Command("whistled", lambda r, w: {"to_department": w.partner, "reason": "属规划"}),
    "dispute": Command("handed_off", _fixed({"reason": "违建查处属城管执法"})),
    "determine": Command("disputed", lambda r, w: {"department": w.lead, "basis": "职责清单"}),
    "consult": Command(
        "whistled", lambda r, w: {"departments": [w.lead, w.partner], "plan": "联合"}
    ),
    "report-handling": Command("in_handling", _fixed({"result": "resolved"})),
    "rework": Command("handled", _fixed({"reason": "现场未整改"})),
    "close": Command("handled", _fixed({"note": "现场核查"})),
    "rate": Command("closed", _rating),
    "reopen": Command(
        "closed", _fixed({"reason": "问题复发"}), stage_for={Role.RESIDENT: "rated_unsatisfied"}
    ),
    "supervise": Command(
        "whistled",
        lambda r, w: {"colour": "yellow", "department": w.lead, "reason": "尽快报到"},
    ),
    "escalate": Command("whistled", lambda r, w: {"department": w.lead, "reason": "超时未报到"}),
    "cancel": Command("reported", _fixed({"reason": "来电人撤诉"})),
}

#: The parts behind `GET /api/v1/reference/{part}`.
REFERENCE_PARTS = ("departments", "duty-items", "streets", "communities")
#: The list filter that names a scoped role's unit.
UNIT_FILTER = {Role.STREET: "street", Role.COMMUNITY: "community", Role.DEPARTMENT: "department"}


def unit_of(role: Role, world: World) -> str:
    return {"street": world.street, "community": world.community, "department": world.lead}[
        UNIT_FILTER[role]
    ]


def query_params(endpoint: str, role: Role, world: World, as_of: str) -> dict[str, str]:
    """What a read sends besides its path: a scoped list asks for its world's unit by name."""
    if endpoint == "list-cases" and role in UNIT_FILTER:
        return {UNIT_FILTER[role]: unit_of(role, world)}
    if endpoint == "get-case-as-of":
        return {"as_of": as_of}
    if endpoint == "consistency-proof":
        return {"first": "1", "second": "2"}
    return {}


def paths(row: Row, world: World, case_id: UUID | None) -> list[str]:
    """The row's path filled in for the world (every part, for the reference row)."""
    values = {"case_id": str(case_id), "department": world.lead, "dept": world.lead}
    parts = REFERENCE_PARTS if "{part}" in row.path else ("",)
    return [row.path.format(part=part, **values) for part in parts]
