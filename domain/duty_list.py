"""The street duty list (职责清单) as an aggregate: revisions are events with an effective date.

Cases record the version they were whistled under; the list keeps every version so a whistle, a
rework or an audit months later still reads the items as they stood.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.actors import Actor, Role
from domain.clock import CHINA_TZ
from domain.errors import IllegalState, InvalidInput, WrongActor
from domain.reference.model import DutyItem

DUTY_LIST_NAMESPACE = UUID("0f3b6f0e-2a43-4c1e-8b7a-64757479c1c1")

Json = dict[str, Any]


class DutyList(Aggregate):
    TOPIC = "whistleloop.duty_list.DutyList"

    class Event(Aggregate.Event):
        actor: dict[str, str]

    Created = None  # type: ignore[assignment]  # Published replaces it: a list's first version

    class Published(Aggregate.Created):
        TOPIC = "whistleloop.duty_list.Published"
        actor: dict[str, str]
        district: str
        version: int
        effective_date: str  # ISO date: event payloads stay plain JSON values
        items: list[Json]

    @staticmethod
    def id_for(district: str) -> UUID:
        return uuid5(DUTY_LIST_NAMESPACE, district)

    @classmethod
    def publish(
        cls,
        actor: Actor,
        at: datetime,
        district: str,
        version: int,
        effective: date,
        items: list[DutyItem],
    ) -> DutyList:
        _require_command_centre(actor)
        if not items:
            raise InvalidInput("empty_duty_list", "职责清单不能为空", "a duty list needs items")
        return cls._create(
            cls.Published,
            id=cls.id_for(district),
            timestamp=at,
            actor=actor.as_dict(),
            district=district,
            version=version,
            effective_date=effective.isoformat(),
            items=[item.to_state() for item in items],
        )

    def __init__(self, district: str, version: int, effective_date: str, items: list[Json]) -> None:
        self.district = district
        self.versions: list[Json] = [
            {
                "version": version,
                "effective_date": effective_date,
                "items": {i["code"]: i for i in items},
            }
        ]

    class Revised(Event):
        TOPIC = "whistleloop.duty_list.Revised"
        version: int
        effective_date: str
        added: list[Json]
        changed: list[Json]
        retired: list[str]
        reason: str

        def apply(self, duty_list: DutyList) -> None:
            items = dict(duty_list.versions[-1]["items"])
            for state in [*self.added, *self.changed]:
                items[state["code"]] = state
            for code in self.retired:
                del items[code]
            duty_list.versions.append(
                {"version": self.version, "effective_date": self.effective_date, "items": items}
            )

    def revise(
        self,
        actor: Actor,
        at: datetime,
        *,
        effective: date,
        added: list[DutyItem] = (),  # type: ignore[assignment]
        changed: list[DutyItem] = (),  # type: ignore[assignment]
        retired: list[str] = (),  # type: ignore[assignment]
        reason: str,
    ) -> int:
        """动态调整: add, change or retire items from `effective` on; returns the new version."""
        _require_command_centre(actor)
        current = self.versions[-1]
        today = at.astimezone(CHINA_TZ).date()
        if effective.isoformat() < max(current["effective_date"], today.isoformat()):
            raise IllegalState(
                "revision_predates_current",
                "调整生效日期不得早于今日或现行版本",
                "a revision takes effect today or later, and not before the list in force",
            )
        if not (added or changed or retired) or not reason.strip():
            raise InvalidInput(
                "empty_revision", "调整须有内容和理由", "a revision needs changes and a reason"
            )
        known = current["items"]
        _check_codes(
            [i.code for i in added],
            lambda c: c not in known,
            "item_exists",
            "事项已存在",
            "item exists",
        )
        _check_codes(
            [i.code for i in changed] + list(retired),
            lambda c: c in known,
            "unknown_duty_item",
            "未知清单事项",
            "unknown duty item",
        )
        version = int(current["version"]) + 1
        self.trigger_event(
            self.Revised,
            timestamp=at,
            actor=actor.as_dict(),
            version=version,
            effective_date=effective.isoformat(),
            added=[i.to_state() for i in added],
            changed=[i.to_state() for i in changed],
            retired=list(retired),
            reason=reason,
        )
        return version

    @property
    def current_version(self) -> int:
        return int(self.versions[-1]["version"])

    def version_at(self, moment: datetime) -> tuple[int, dict[str, Json]]:
        """The version in force on `moment`'s date in China: the latest whose effective date has come."""
        day = moment.astimezone(CHINA_TZ).date().isoformat()
        in_force = self.versions[0]
        for version in self.versions:
            if version["effective_date"] <= day:
                in_force = version
        return int(in_force["version"]), in_force["items"]

    def item_at(self, code: str, moment: datetime) -> tuple[int, DutyItem]:
        version, items = self.version_at(moment)
        if code not in items:
            raise InvalidInput(
                "unknown_duty_item",
                f"职责清单（第 {version} 版）无此事项：{code}",
                f"duty list version {version} has no item {code}",
                duty_item=code,
            )
        return version, DutyItem.from_state(items[code])

    def item_in_version(self, code: str | None, version: int | None) -> DutyItem | None:
        """The item as the given version had it: reworks and reopens keep the whistle's version."""
        if code is None:
            return None
        for listed in self.versions:
            if listed["version"] == version and code in listed["items"]:
                return DutyItem.from_state(listed["items"][code])
        raise IllegalState(
            "unknown_duty_item_version",
            f"职责清单第 {version} 版无事项 {code}",
            f"duty list version {version} has no item {code}",
        )


def _require_command_centre(actor: Actor) -> None:
    if actor.role is not Role.COMMAND_CENTRE:
        raise WrongActor(
            "command_centre_only", "仅指挥中心可修订职责清单", "only the command centre"
        )


def _check_codes(codes: list[str], ok: Any, code: str, zh: str, en: str) -> None:
    repeated = sorted({c for c in codes if codes.count(c) > 1})
    if repeated:
        raise InvalidInput(
            "item_repeated",
            f"同一事项在一次调整中出现多次：{', '.join(repeated)}",
            f"an item appears more than once in one revision: {', '.join(repeated)}",
            items=repeated,
        )
    bad = [c for c in codes if not ok(c)]
    if bad:
        raise InvalidInput(code, f"{zh}：{', '.join(bad)}", f"{en}: {', '.join(bad)}", items=bad)
