"""Who does what: every event records its actor as {role, id}."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.errors import InvalidInput


class Role(StrEnum):
    RESIDENT = "resident"  # 居民 / 12345 来电人
    GRID_WORKER = "grid_worker"  # 网格员
    COMMUNITY = "community"  # 社区居委会
    STREET = "street"  # 街道办事处 / 乡镇
    DEPARTMENT = "department"  # 区职能部门
    COMMAND_CENTRE = "command_centre"  # 指挥中心
    INSPECTOR = "inspector"  # 纪检监察
    SYSTEM = "system"  # the SLA clock and other automatic actors


@dataclass(frozen=True)
class Actor:
    role: Role
    id: str

    @classmethod
    def of(cls, role: str, actor_id: str) -> Actor:
        try:
            parsed = Role(role)
        except ValueError:
            raise InvalidInput(
                "unknown_role", f"未知角色：{role}", f"unknown role: {role}"
            ) from None
        if not actor_id or len(actor_id) > 64:
            raise InvalidInput("bad_actor_id", "操作者标识无效", "actor id must be 1–64 characters")
        return cls(parsed, actor_id)

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role.value, "id": self.id}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Actor:
        return cls(Role(data["role"]), data["id"])


#: The SLA clock's identity in events it causes.
SLA_CLOCK = Actor(Role.SYSTEM, "sla-clock")
