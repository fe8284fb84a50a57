"""The case's states, the closed-loop stage of each, the allowed choices, and the guards that check them."""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from typing import Protocol

from domain.errors import IllegalState, InvalidInput


class Status(StrEnum):
    REPORTED = "reported"  # 已上报
    ACCEPTED = "accepted"  # 已受理
    REJECTED = "rejected"  # 不予受理
    WHISTLED = "whistled"  # 已吹哨，待报到
    DISPUTED = "disputed"  # 移交争议，待认定
    IN_HANDLING = "in_handling"  # 已报到，办理中
    HANDLED = "handled"  # 已反馈，待核查
    CLOSED = "closed"  # 已结案
    CANCELLED = "cancelled"  # 已撤销


#: 收集 → 分流 → 处置 → 反馈 → 评价; rejected and cancelled cases leave the loop at 分流.
CLOSED_LOOP_STAGE: dict[Status, str] = {
    Status.REPORTED: "collect",
    Status.ACCEPTED: "dispatch",
    Status.REJECTED: "dispatch",
    Status.CANCELLED: "dispatch",
    Status.WHISTLED: "dispatch",
    Status.DISPUTED: "handle",
    Status.IN_HANDLING: "handle",
    Status.HANDLED: "feedback",
    Status.CLOSED: "evaluate",
}

#: Whistled and not yet closed: departments owe something, deadlines run, supervision applies.
OPEN_STATUSES = (Status.WHISTLED, Status.DISPUTED, Status.IN_HANDLING, Status.HANDLED)

SOURCES = ("hotline_12345", "grid_patrol", "community", "resident", "open311", "street_patrol")
REPORTER_ROLES = ("resident", "grid_worker", "community", "street", "command_centre")
REJECT_REASONS = ("duplicate", "not_public", "outside_duty_list", "other")
REPORT_IN_MODES = ("on_site", "remote", "joint_enforcement", "consultation")
HANDLING_RESULTS = ("resolved", "partly_resolved", "unresolvable")
SATISFACTION = ("satisfied", "basically_satisfied", "unsatisfied")
SUPERVISION_COLOURS = ("white", "yellow", "red")


class HasStatus(Protocol):
    status: str


def require_status(case: HasStatus, *allowed: Status) -> None:
    if case.status not in allowed:
        raise IllegalState(
            "illegal_transition",
            f"案件当前状态（{case.status}）不允许此操作",
            f"not allowed while the case is {case.status}",
            status=case.status,
            allowed=[s.value for s in allowed],
        )


def require_choice(field: str, value: object, choices: Collection[str]) -> None:
    if value not in choices:
        raise InvalidInput(
            f"invalid_{field}",
            f"{field} 取值无效：{value!r}",
            f"{field} must be one of {', '.join(choices)}",
            field=field,
        )


def require_text(field: str, value: object, shortest: int, longest: int) -> None:
    if not isinstance(value, str) or not shortest <= len(value.strip()) <= longest:
        raise InvalidInput(
            f"invalid_{field}",
            f"{field} 长度须在 {shortest}–{longest} 之间",
            f"{field} must be text of {shortest}–{longest} characters",
            field=field,
        )


#: Control characters a person can mean in free text; every other one (NUL above all, which a
#: PostgreSQL text column refuses) and lone surrogates (not encodable as UTF-8) are refused.
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def require_plain_text(field: str, value: object) -> None:
    """Every string in `value` (walked through lists and dicts) is text a store and a screen can hold."""
    if isinstance(value, str):
        if any(_unprintable(ch) for ch in value):
            raise InvalidInput(
                "invalid_characters",
                f"{field} 含有不可见的控制字符",
                f"{field} contains control characters or unpaired surrogates",
                field=field,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            require_plain_text(field, key)
            require_plain_text(field, item)
    elif isinstance(value, list | tuple):
        for item in value:
            require_plain_text(field, item)


def _unprintable(ch: str) -> bool:
    code = ord(ch)
    control = code < 0x20 or 0x7F <= code < 0xA0
    return (control and ch not in _ALLOWED_CONTROLS) or 0xD800 <= code < 0xE000


CONTACT_FIELDS = ("name", "phone", "email")


def require_contact(contact: object) -> None:
    """Resident contact data: a few short strings, nothing else (it is encrypted at rest later)."""
    if contact is None:
        return
    if (
        not isinstance(contact, dict)
        or not set(contact) <= set(CONTACT_FIELDS)
        or not all(isinstance(v, str) and len(v) <= 100 for v in contact.values())
    ):
        raise InvalidInput(
            "invalid_contact",
            "联系方式须为姓名、电话、邮箱（各不超过 100 字）",
            f"contact takes {', '.join(CONTACT_FIELDS)} as text of at most 100 characters",
            field="contact",
        )
