"""Loads and checks the shipped reference TOML; lookups raise domain errors with stable codes."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

from domain.errors import InvalidInput
from domain.reference.model import (
    Community,
    CooperationMode,
    Department,
    DutyItem,
    Liaison,
    Section,
    Street,
    StreetRole,
)

#: Codes become NATS subject tokens (wl.dept.<dept>.…, wl.ev.<street>.…): lowercase ASCII only.
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,23}$")
ITEM_PATTERN = re.compile(r"^[A-Z]{2}-\d{3}$")


@dataclass(frozen=True)
class ReferenceData:
    district: str
    district_en: str
    duty_list_version: int
    duty_list_effective: date
    departments: dict[str, Department]
    streets: dict[str, Street]
    communities: dict[str, Community]
    duty_items: dict[str, DutyItem]

    def department(self, code: str) -> Department:
        try:
            return self.departments[code]
        except KeyError:
            raise InvalidInput(
                "unknown_department",
                f"未知部门：{code}",
                f"unknown department: {code}",
                department=code,
            ) from None

    def street(self, code: str) -> Street:
        try:
            return self.streets[code]
        except KeyError:
            raise InvalidInput(
                "unknown_street", f"未知街乡：{code}", f"unknown street: {code}", street=code
            ) from None

    def community(self, code: str) -> Community:
        try:
            return self.communities[code]
        except KeyError:
            raise InvalidInput(
                "unknown_community",
                f"未知社区：{code}",
                f"unknown community: {code}",
                community=code,
            ) from None

    def check_location(self, street: str, community: str | None, grid: str | None) -> None:
        """A report names a street, optionally a community of that street and a grid of that community."""
        self.street(street)
        if community is None:
            if grid is not None:
                raise InvalidInput("unknown_grid", "网格须属于某社区", "a grid needs its community")
            return
        found = self.community(community)
        if found.street != street:
            raise InvalidInput(
                "community_not_in_street",
                f"社区 {community} 不属于 {street}",
                f"community {community} is not in street {street}",
            )
        if grid is not None and grid not in found.grids:
            raise InvalidInput(
                "unknown_grid", f"未知网格：{grid}", f"unknown grid: {grid}", grid=grid
            )


def load_reference(text: str | None = None) -> ReferenceData:
    """The shipped reference data (or `text`, for tests); a broken file fails loudly at start-up."""
    if text is None:
        text = (
            resources.files("domain.reference").joinpath("data/reference.toml").read_text("utf-8")
        )
    raw = tomllib.loads(text)
    meta = raw["meta"]
    data = ReferenceData(
        district=str(meta["district"]),
        district_en=str(meta.get("district_en", "")),
        duty_list_version=int(meta["version"]),
        duty_list_effective=date.fromisoformat(str(meta["effective_date"])),
        departments={d["code"]: _department(d) for d in raw["departments"]},
        streets={
            s["code"]: Street(s["code"], s["name"], s["name_en"], s["kind"]) for s in raw["streets"]
        },
        communities={c["code"]: _community(c) for c in raw["communities"]},
        duty_items={i["code"]: _duty_item(i) for i in raw["duty_items"]},
    )
    _check(data, raw)
    return data


def _department(d: dict[str, Any]) -> Department:
    return Department(d["code"], d["name"], d["short_name"], d["name_en"], Liaison(**d["liaison"]))


def _community(c: dict[str, Any]) -> Community:
    grids = tuple(f"{c['code']}_g{n:02d}" for n in range(1, int(c["grid_count"]) + 1))
    return Community(c["code"], c["street"], c["name"], grids)


def _duty_item(i: dict[str, Any]) -> DutyItem:
    return DutyItem(
        code=i["code"],
        section=Section(i["section"]),
        name=i["name"],
        street_role=StreetRole(i["street_role"]),
        lead_department=i["lead_department"],
        cooperating_departments=tuple(i.get("cooperating_departments", ())),
        cooperation_mode=CooperationMode(i["cooperation_mode"]),
        legal_basis=i.get("legal_basis", ""),
        response_limit_hours=int(i["response_limit_hours"]),
        handling_limit_working_days=int(i["handling_limit_working_days"]),
    )


def _check(data: ReferenceData, raw: dict[str, Any]) -> None:
    for kind in ("departments", "streets", "communities", "duty_items"):
        if len(raw[kind]) != len(getattr(data, kind)):
            raise ValueError(f"reference data: duplicate code among {kind}")
    for code in [*data.departments, *data.streets, *data.communities]:
        if not CODE_PATTERN.match(code):
            raise ValueError(f"reference data: bad code {code!r}")
    for community in data.communities.values():
        if community.street not in data.streets:
            raise ValueError(f"reference data: {community.code} names unknown street")
    for item in data.duty_items.values():
        if not ITEM_PATTERN.match(item.code):
            raise ValueError(f"reference data: bad duty item code {item.code!r}")
        unknown = set(item.departments) - set(data.departments)
        if unknown or item.lead_department in item.cooperating_departments:
            raise ValueError(f"reference data: {item.code} names bad departments {unknown or ''}")
