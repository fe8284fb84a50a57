"""A scripted case through the whole closed loop, for `whistleloop demo` and `make demo`.

It runs on the configured store with a clock that starts two days ago, so every step lands in the
past at a realistic pace and the history reads like a real case.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from uuid import UUID

from domain.actors import Actor
from domain.clock import CHINA_TZ, ManualClock
from domain.service import CaseService


def demo_clock(now: datetime) -> ManualClock:
    """09:00 Beijing time two days before `now`."""
    day = (now.astimezone(CHINA_TZ) - timedelta(days=2)).date()
    return ManualClock(datetime.combine(day, time(9), tzinfo=CHINA_TZ))


def run_demo_case(service: CaseService, clock: ManualClock) -> UUID:
    """报 → 受理 → 吹哨 → 报到 → 办理 → 返工 → 办理 → 结案 → 评价, with realistic gaps."""
    resident = Actor.of("resident", "12345-caller-0001")
    street = Actor.of("street", "jianwai")
    lead, assisting = Actor.of("department", "cgzf"), Actor.of("department", "ghzr")
    step = clock.advance

    case_id = service.report(
        resident,
        source="hotline_12345",
        street="jianwai",
        community="jianwai_c01",
        grid="jianwai_c01_g01",
        title="小区楼顶私搭乱建",
        description="永安里小区 3 号楼楼顶有人搭建彩钢板房，存在安全隐患，请尽快处理。",
        address="建外街道永安里小区 3 号楼",
        contact={"name": "李女士", "phone": "138****0001"},
    )
    step(timedelta(minutes=6))
    service.accept(case_id, street, "属实，属街道职责清单事项")
    step(timedelta(minutes=9))
    service.whistle(case_id, street, lead="cgzf", assisting=("ghzr",), duty_item="CG-001")
    step(timedelta(minutes=42))
    service.report_in(case_id, lead, "on_site", "执法队员已到现场")
    step(timedelta(hours=1, minutes=5))
    service.report_in(case_id, assisting, "remote", "已调取规划审批信息，无审批手续")
    step(timedelta(hours=20))
    service.report_handling(
        case_id, lead, "partly_resolved", "已下达限期拆除通知书，当事人已拆除一半"
    )
    step(timedelta(hours=2))
    service.send_back_for_rework(case_id, street, "现场核查仍有彩钢板残留，请彻底拆除")
    step(timedelta(hours=5))
    service.report_handling(case_id, lead, "resolved", "违建已全部拆除，现场清理完毕")
    step(timedelta(hours=1, minutes=30))
    service.close_case(case_id, street, "街道与社区现场核查，已恢复原状")
    step(timedelta(hours=3))
    service.rate_by_resident(case_id, resident, "satisfied", True, "处理及时，谢谢")
    step(timedelta(minutes=20))
    service.rate_by_street(case_id, street, {"cgzf": 92, "ghzr": 88}, "配合积极")
    return case_id
