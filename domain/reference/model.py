"""Reference data as value objects: departments, streets, communities, grids and duty-list items."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Section(StrEnum):
    """The six sections of Beijing's street duty list (街道职责清单)."""

    PARTY_BUILDING = "party_building"  # 党群工作
    PUBLIC_SAFETY = "public_safety"  # 平安建设
    URBAN_MANAGEMENT = "urban_management"  # 城市管理
    COMMUNITY_BUILDING = "community_building"  # 社区建设
    LIVELIHOOD = "livelihood"  # 民生保障
    GENERAL_SUPPORT = "general_support"  # 综合保障


class StreetRole(StrEnum):
    """What the street itself does for an item: 负责/承担, 组织/协调, or 参与/协助/配合."""

    LEAD = "lead"
    ORGANISE = "organise"
    ASSIST = "assist"


class CooperationMode(StrEnum):
    INFORMATION_SHARING = "information_sharing"
    JOINT_ENFORCEMENT = "joint_enforcement"


@dataclass(frozen=True)
class Liaison:
    """The department's named contact for streets (联络员)."""

    name: str
    title: str
    phone: str
    mobile: str = ""


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    short_name: str
    name_en: str
    liaison: Liaison


@dataclass(frozen=True)
class Street:
    code: str
    name: str
    name_en: str
    kind: str  # "street" (街道) or "township" (乡镇)


@dataclass(frozen=True)
class Community:
    code: str
    street: str
    name: str
    grids: tuple[str, ...]


@dataclass(frozen=True)
class DutyItem:
    """One item of the duty list (职责清单事项): who answers a whistle for it, and how fast."""

    code: str
    section: Section
    name: str
    street_role: StreetRole
    lead_department: str
    cooperating_departments: tuple[str, ...]
    cooperation_mode: CooperationMode
    legal_basis: str
    response_limit_hours: int
    handling_limit_working_days: int

    @property
    def departments(self) -> tuple[str, ...]:
        """Every department the item names, lead first."""
        return (self.lead_department, *self.cooperating_departments)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able values, as stored in DutyList events."""
        state = asdict(self)
        state["cooperating_departments"] = list(self.cooperating_departments)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DutyItem:
        return cls(
            code=str(state["code"]),
            section=Section(state["section"]),
            name=str(state["name"]),
            street_role=StreetRole(state["street_role"]),
            lead_department=str(state["lead_department"]),
            cooperating_departments=tuple(state.get("cooperating_departments", ())),
            cooperation_mode=CooperationMode(state["cooperation_mode"]),
            legal_basis=str(state.get("legal_basis", "")),
            response_limit_hours=int(state["response_limit_hours"]),
            handling_limit_working_days=int(state["handling_limit_working_days"]),
        )
