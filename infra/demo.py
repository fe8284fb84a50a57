"""Demo traffic: one scripted case for `whistleloop demo`, and a live trickle for `whistleloop up --demo`.

Both walk the same script (报 → 受理 → 吹哨 → 报到 → 办理 → 返工 → 办理 → 结案 → 评价). The scripted
demo runs it on a clock that starts two days ago, so the steps land in the past at a realistic
pace; the live trickle takes one step per case per tick on the service's own clock. The full
simulator of a district is issue 8's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from uuid import UUID

from domain.actors import Actor
from domain.clock import CHINA_TZ, ManualClock
from domain.service import CaseService


@dataclass(frozen=True)
class Problem:
    """What gets reported, and who the street whistles for it."""

    street: str
    community: str
    title: str
    description: str
    duty_item: str
    lead: str
    assisting: str


PROBLEMS = (
    Problem(
        "jianwai",
        "jianwai_c01",
        "小区楼顶私搭乱建",
        "永安里小区 3 号楼楼顶有人搭建彩钢板房，存在安全隐患，请尽快处理。",
        "CG-001",
        "cgzf",
        "ghzr",
    ),
    Problem(
        "hujialou",
        "hujialou_c01",
        "早市占道经营",
        "呼家楼北街早市摊贩占用人行道经营，行人只能走机动车道。",
        "CG-002",
        "cgzf",
        "scjg",
    ),
    Problem(
        "shuangjing",
        "shuangjing_c01",
        "工地夜间施工噪声扰民",
        "九龙社区东侧工地每晚十一点后仍在施工，噪声很大，影响休息。",
        "CG-008",
        "zj",
        "sthj",
    ),
)

Step = Callable[[CaseService, UUID, Problem], object]

RESIDENT = Actor.of("resident", "12345-caller-0001")


def _street(problem: Problem) -> Actor:
    return Actor.of("street", problem.street)


def _dept(code: str) -> Actor:
    return Actor.of("department", code)


#: (pause before the step, the step) for everything after the report.
SCRIPT: tuple[tuple[timedelta, Step], ...] = (
    (timedelta(minutes=6), lambda s, c, p: s.accept(c, _street(p), "属实，属街道职责清单事项")),
    (
        timedelta(minutes=9),
        lambda s, c, p: s.whistle(
            c, _street(p), lead=p.lead, assisting=(p.assisting,), duty_item=p.duty_item
        ),
    ),
    (timedelta(minutes=42), lambda s, c, p: s.report_in(c, _dept(p.lead), "on_site", "已到现场")),
    (
        timedelta(hours=1, minutes=5),
        lambda s, c, p: s.report_in(c, _dept(p.assisting), "remote", "已调取相关信息"),
    ),
    (
        timedelta(hours=20),
        lambda s, c, p: s.report_handling(
            c, _dept(p.lead), "partly_resolved", "已下达限期整改通知书，当事人已整改一半"
        ),
    ),
    (
        timedelta(hours=2),
        lambda s, c, p: s.send_back_for_rework(c, _street(p), "现场核查仍未彻底整改，请继续处置"),
    ),
    (
        timedelta(hours=5),
        lambda s, c, p: s.report_handling(c, _dept(p.lead), "resolved", "已全部整改到位"),
    ),
    (
        timedelta(hours=1, minutes=30),
        lambda s, c, p: s.close_case(c, _street(p), "街道与社区现场核查，已恢复原状"),
    ),
    (
        timedelta(hours=3),
        lambda s, c, p: s.rate_by_resident(c, RESIDENT, "satisfied", True, "处理及时，谢谢"),
    ),
    (
        timedelta(minutes=20),
        lambda s, c, p: s.rate_by_street(c, _street(p), {p.lead: 92, p.assisting: 88}, "配合积极"),
    ),
)


def demo_clock(now: datetime) -> ManualClock:
    """09:00 Beijing time two days before `now`."""
    day = (now.astimezone(CHINA_TZ) - timedelta(days=2)).date()
    return ManualClock(datetime.combine(day, time(9), tzinfo=CHINA_TZ))


def report(service: CaseService, problem: Problem) -> UUID:
    return service.report(
        RESIDENT,
        source="hotline_12345",
        street=problem.street,
        community=problem.community,
        grid=f"{problem.community}_g01",
        title=problem.title,
        description=problem.description,
        contact={"name": "李女士", "phone": "138****0001"},
    )


def run_demo_case(service: CaseService, clock: ManualClock, problem: Problem = PROBLEMS[0]) -> UUID:
    """The whole script for one case, with the script's pauses on `clock`."""
    case_id = report(service, problem)
    for pause, step in SCRIPT:
        clock.advance(pause)
        step(service, case_id, problem)
    return case_id


class LiveTraffic:
    """Each tick reports a new case and moves every open demo case one step along the script."""

    def __init__(self, service: CaseService) -> None:
        self.service = service
        self._problems = itertools.cycle(PROBLEMS)
        self._open: list[tuple[UUID, Problem, int]] = []

    def tick(self) -> int:
        """Returns the number of commands it ran."""
        moved: list[tuple[UUID, Problem, int]] = []
        for case_id, problem, done in self._open:
            SCRIPT[done][1](self.service, case_id, problem)
            if done + 1 < len(SCRIPT):
                moved.append((case_id, problem, done + 1))
        problem = next(self._problems)
        moved.append((report(self.service, problem), problem, 0))
        ran = len(self._open) + 1
        self._open = moved
        return ran
