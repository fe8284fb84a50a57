"""Request bodies of the commands (`…Create`) and what every command answers (`CommandResult`).

The bodies bound sizes (so a client cannot make the gateway carry megabytes into the store) and refuse
unknown fields; the domain still judges every value. Choices (sources, modes, colours…) are listed in
the schema from the domain's own tuples but checked by the domain, whose 422 names the field with a
stable code (`invalid_mode`, `unknown_department`…). Text limits repeat the aggregate's upper bounds;
its lower bounds (e.g. a reason of at least two characters) stay its own.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from domain import case_rules
from domain.deadlines import Urgency
from domain.reference.loader import CODE_PATTERN, ITEM_PATTERN

CASE_ID_EXAMPLE = "6353ba58-389f-45d6-978c-47c55476054c"
#: At most this many departments in one whistle, consultation or street rating.
MAX_DEPARTMENTS = 20


def _enum(values: Collection[str]) -> dict[str, Any]:
    """Lists the domain's choices in OpenAPI without a second copy of them."""
    return {"enum": list(values)}


DeptCode = Annotated[
    str,
    Field(
        pattern=CODE_PATTERN.pattern,
        max_length=24,
        description="Department code (`/api/v1/reference/departments`).",
        examples=["cgzf"],
    ),
]
UnitCode = Annotated[str, Field(max_length=64, examples=["jianwai"])]
Note = Annotated[str, Field(max_length=4000, description="Free text for the record.")]
Reason = Annotated[str, Field(max_length=1000, description="Why (2–1000 characters).")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ReasonBody(_Body):
    """A command whose whole body is its reason."""

    reason: Reason


class CommandResult(BaseModel):
    """The case a command acted on and the version its event gave the case."""

    case_id: UUID = Field(examples=[CASE_ID_EXAMPLE])
    version: int = Field(ge=1, examples=[3], description="The case's version after the command.")


# --- intake ------------------------------------------------------------------------------------


class Contact(_Body):
    """A resident's contact details; stored encrypted, shown only to those handling the case."""

    name: str | None = Field(None, max_length=100, examples=["王女士"])
    phone: str | None = Field(None, max_length=100, examples=["13800000000"])
    email: str | None = Field(None, max_length=100, examples=["wang@example.org"])


class ReportCreate(_Body):
    """收集: a problem enters the loop."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "hotline_12345",
                    "street": "jianwai",
                    "community": "jianwai_c01",
                    "grid": "jianwai_c01_g01",
                    "title": "楼顶违建",
                    "description": "3 号楼楼顶正在搭建彩钢房",
                    "address": "建国门外大街 1 号院 3 号楼",
                    "suggested_item": "CG-001",
                    "contact": {"name": "王女士", "phone": "13800000000"},
                }
            ]
        }
    )

    source: str = Field(
        description="Where the report came from.",
        examples=[case_rules.SOURCES[0]],
        json_schema_extra=_enum(case_rules.SOURCES),
    )
    street: UnitCode = Field(description="Street (街乡) code.")
    community: UnitCode | None = Field(None, description="Community (社区) code.")
    grid: UnitCode | None = Field(None, description="Grid (网格) code; needs the community.")
    title: str = Field(max_length=200, examples=["楼顶违建"])
    description: str = Field(max_length=4000, examples=["3 号楼楼顶正在搭建彩钢房"])
    address: str = Field("", max_length=500, examples=["建国门外大街 1 号院 3 号楼"])
    suggested_item: str | None = Field(
        None, pattern=ITEM_PATTERN.pattern, description="Duty-list item the reporter suggests."
    )
    contact: Contact | None = None


# --- the street's triage -----------------------------------------------------------------------


class AcceptCreate(_Body):
    """受理."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "属实，受理"}]})

    note: Note = ""


class RejectCreate(_Body):
    """不予受理; a duplicate names the case it repeats."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"reason": "not_public", "note": "属私人纠纷"},
                {"reason": "duplicate", "duplicate_of": CASE_ID_EXAMPLE},
            ]
        }
    )

    reason: str = Field(
        description="Why the case is not taken.",
        examples=[case_rules.REJECT_REASONS[0]],
        json_schema_extra=_enum(case_rules.REJECT_REASONS),
    )
    note: Note = ""
    duplicate_of: UUID | None = Field(None, description="The case this one repeats.")


class WhistleCreate(_Body):
    """吹哨: name the lead and assisting departments under a duty item (or a justified emergency)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "lead": "cgzf",
                    "assisting": ["ghzr"],
                    "duty_item": "CG-001",
                    "urgency": "normal",
                }
            ]
        }
    )

    lead: DeptCode
    assisting: list[DeptCode] = Field(default_factory=list, max_length=MAX_DEPARTMENTS)
    duty_item: str | None = Field(
        None, pattern=ITEM_PATTERN.pattern, description="Duty-list item code.", examples=["CG-001"]
    )
    urgency: str = Field(
        "normal",
        description="How urgent.",
        examples=["normal"],
        json_schema_extra=_enum(list(Urgency)),
    )
    justification: str | None = Field(
        None, max_length=1000, description="Needed for an emergency outside the duty list."
    )


# --- departments -------------------------------------------------------------------------------


class ReportInCreate(_Body):
    """报到."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"mode": "on_site", "note": "已到场"}]}
    )

    mode: str = Field(
        description="How the department answers.",
        examples=[case_rules.REPORT_IN_MODES[0]],
        json_schema_extra=_enum(case_rules.REPORT_IN_MODES),
    )
    note: Note = ""


class HandOffCreate(_Body):
    """移交: the lead says the matter belongs to another department."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"to_department": "ghzr", "reason": "属规划许可问题，非本部门职责"}]
        }
    )

    to_department: DeptCode
    reason: Reason


class DisputeCreate(_ReasonBody):
    """The receiving department disputes a hand-off; the command centre will decide."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "违建查处属城管执法职责"}]}
    )


class DetermineCreate(_Body):
    """责任认定: the command centre settles a disputed hand-off."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"department": "cgzf", "basis": "职责清单 CG-001"}]}
    )

    department: DeptCode
    basis: str = Field(max_length=1000, description="The rule the decision rests on.")


class ConsultCreate(_Body):
    """会商: the street convenes the departments on a plan."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"departments": ["cgzf", "ghzr"], "plan": "联合拆除"}]}
    )

    departments: list[DeptCode] = Field(min_length=1, max_length=MAX_DEPARTMENTS)
    plan: str = Field(max_length=4000, description="What was agreed.")


class ReportHandlingCreate(_Body):
    """处置反馈: the lead reports the outcome; anything short of resolved needs a note."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"result": "resolved", "note": "已拆除"},
                {"result": "unresolvable", "note": "产权争议，需法院裁定"},
            ]
        }
    )

    result: str = Field(
        description="The outcome.",
        examples=[case_rules.HANDLING_RESULTS[0]],
        json_schema_extra=_enum(case_rules.HANDLING_RESULTS),
    )
    note: Note = ""


# --- the street, residents ---------------------------------------------------------------------


class ReworkCreate(_ReasonBody):
    """Sends the handling back to the lead."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "现场仍有残留"}]})


class CloseCreate(_Body):
    """核查结案."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "现场核查已拆除"}]})

    note: Note = ""


class ResidentRatingCreate(_Body):
    """A resident's rating: satisfaction and whether the problem was solved."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"satisfaction": "satisfied", "solved": True, "comment": "处理及时"}]
        }
    )

    satisfaction: str = Field(
        description="满意 / 基本满意 / 不满意.",
        examples=[case_rules.SATISFACTION[0]],
        json_schema_extra=_enum(case_rules.SATISFACTION),
    )
    solved: StrictBool
    comment: str = Field("", max_length=1000)


class StreetRatingCreate(_Body):
    """The street's scores (0–100) for each department that worked the case."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"scores": {"cgzf": 85, "ghzr": 90}, "comment": ""}]}
    )

    scores: dict[DeptCode, Annotated[StrictInt, Field(ge=0, le=100)]] = Field(
        min_length=1, max_length=MAX_DEPARTMENTS
    )
    comment: str = Field("", max_length=1000)


#: `rate` takes either; the caller's role says which it must be.
RateCreate = ResidentRatingCreate | StreetRatingCreate


class ReopenCreate(_ReasonBody):
    """重启: a closed case goes back to handling."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "违建复发"}]})


# --- oversight ---------------------------------------------------------------------------------


class SuperviseCreate(_Body):
    """督办 a department on the case, optionally about one of its deadlines."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "colour": "yellow",
                    "department": "cgzf",
                    "reason": "超期未报到",
                    "obligation": "response",
                }
            ]
        }
    )

    colour: str = Field(
        description="Supervision level.",
        examples=[case_rules.SUPERVISION_COLOURS[0]],
        json_schema_extra=_enum(case_rules.SUPERVISION_COLOURS),
    )
    department: DeptCode
    reason: Reason
    obligation: str | None = Field(
        None, description="The deadline it is about: response or handling.", examples=["response"]
    )


class EscalateCreate(_Body):
    """上报区级: a department that has not reported in goes to the district."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"department": "cgzf", "reason": "超期未报到，上报区级"}]}
    )

    department: DeptCode
    reason: Reason


class CancelCreate(_ReasonBody):
    """撤销: the case is withdrawn before closure."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "来电人撤诉"}]})
