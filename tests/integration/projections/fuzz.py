"""A seeded fuzzer: random commands on random cases, legal or not, with the clock jumping about.

Refused commands are simply dropped (the domain's refusals are its business, tested elsewhere); what
is stored is whatever random interleaving of hand-offs, disputes, misses, supervision, rework,
reopens and cancellations the seed produced. Projections must fold any of them the same way
incrementally and in one replay.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any
from uuid import UUID

from domain.actors import SLA_CLOCK, Actor, Role
from domain.clock import ManualClock
from domain.errors import DomainError
from domain.service import CaseService

DEPARTMENTS = ("cgzf", "zj", "ghzr", "cgw", "sthj")
STREET = Actor(Role.STREET, "jianwai")
CENTRE = Actor(Role.COMMAND_CENTRE, "cc-1")
RESIDENT = Actor(Role.RESIDENT, "r-1001")
COMMUNITIES = ("jianwai_c01", "jianwai_c02", None)


def _dept(rng: random.Random) -> Actor:
    return Actor(Role.DEPARTMENT, rng.choice(DEPARTMENTS))


def _whistle(s: CaseService, case: UUID, rng: random.Random) -> object:
    if rng.random() < 0.8:  # CG-001: lead cgzf, may be assisted by zj / ghzr
        assisting = tuple(rng.sample(("zj", "ghzr"), rng.randint(0, 2)))
        urgency = rng.choice(("normal", "normal", "urgent"))
        return s.whistle(
            case, STREET, lead="cgzf", assisting=assisting, duty_item="CG-001", urgency=urgency
        )
    return s.whistle(
        case,
        STREET,
        lead=rng.choice(DEPARTMENTS),
        urgency="emergency",
        justification="突发险情，须立即处置",
    )


def _on_case(state: dict[str, Any], rng: random.Random, lead: bool = False) -> Actor:
    """A department on the case (the lead when asked), now and then any department at all."""
    active = [d for d, o in state["obligations"].items() if o["active"]]
    if rng.random() < 0.1 or not active:
        return _dept(rng)
    if lead and state.get("lead_department"):
        return Actor(Role.DEPARTMENT, state["lead_department"])
    return Actor(Role.DEPARTMENT, rng.choice(active))


def _oversight(s: CaseService, c: UUID, state: dict[str, Any], r: random.Random) -> object:
    dept = _on_case(state, r).id
    obligation = r.choice(("response", "handling"))
    roll = r.random()
    if roll < 0.4:
        return s.record_deadline_missed(c, SLA_CLOCK, dept, obligation)
    if roll < 0.85:
        colour = r.choice(("white", "yellow", "red"))
        return s.issue_supervision(c, SLA_CLOCK, colour, dept, "督办", obligation=obligation)
    return s.escalate_to_district(c, SLA_CLOCK, dept, "逾期未报到")


def _step(s: CaseService, c: UUID, r: random.Random) -> object:
    """One command a real participant might try on this case now (not always a legal one)."""
    state = s.case(c)
    status = state["status"]
    if r.random() < 0.15 and state["obligations"]:
        return _oversight(s, c, state, r)
    if status == "reported":
        if r.random() < 0.9:
            return s.accept(c, STREET)
        return r.choice(
            (
                lambda: s.reject(c, STREET, reason="not_public", note="非公共事务"),
                lambda: s.cancel(c, STREET, "群众撤诉"),
            )
        )()
    if status == "accepted":
        return _whistle(s, c, r)
    if status == "disputed":
        return s.determine_responsibility(c, CENTRE, r.choice(DEPARTMENTS), "职责清单")
    if status in ("whistled", "in_handling"):
        roll = r.random()
        if state.get("pending_handoff") and roll < 0.5:
            return s.dispute_hand_off(c, _on_case(state, r, lead=True), "职责不符")
        if roll < 0.6:
            return s.report_in(c, _on_case(state, r), r.choice(("on_site", "remote")))
        if roll < 0.72:
            return s.hand_off(c, _on_case(state, r, lead=True), r.choice(DEPARTMENTS), "不属本部门")
        if roll < 0.78:
            return s.hold_consultation(c, STREET, ("cgzf", "zj"), "联合执法方案")
        if roll < 0.98:
            result = r.choice(("resolved", "resolved", "partly_resolved"))
            return s.report_handling(c, _on_case(state, r, lead=True), result)
        return s.cancel(c, STREET, "群众撤诉")
    if status == "handled":
        if r.random() < 0.7:
            return s.close_case(c, STREET)
        return s.send_back_for_rework(c, STREET, "现场仍有问题")
    if status == "closed":
        roll = r.random()
        if roll < 0.45:
            satisfaction = r.choice(("satisfied", "basically_satisfied", "unsatisfied"))
            return s.rate_by_resident(c, RESIDENT, satisfaction, r.random() < 0.7)
        if roll < 0.85:
            scores = {d: r.randint(40, 100) for d in state["obligations"]}
            return s.rate_by_street(c, STREET, scores)
        return s.reopen(c, r.choice((RESIDENT, STREET)), "居民仍不满意")
    return None  # rejected, cancelled: nothing more happens


def fuzz(
    service: CaseService, clock: ManualClock, rng: random.Random, cases: list[UUID], commands: int
) -> int:
    """Tries `commands` random commands (new reports among them); returns how many were stored."""
    stored = 0
    for _ in range(commands):
        clock.advance(_jump(rng))
        if not cases or rng.random() < 0.1:
            cases.append(_report(service, rng))
            stored += 1
            continue
        try:
            if _step(service, rng.choice(cases), rng) is not None:
                stored += 1
        except DomainError:
            continue
    return stored


def _jump(rng: random.Random) -> timedelta:
    """Mostly minutes; now and then hours or days, so response and handling deadlines pass."""
    roll = rng.random()
    if roll < 0.75:
        return timedelta(minutes=rng.randint(1, 90))
    if roll < 0.95:
        return timedelta(hours=rng.randint(2, 20))
    return timedelta(days=rng.randint(1, 4))


def _report(service: CaseService, rng: random.Random) -> UUID:
    return service.report(
        RESIDENT,
        source=rng.choice(("hotline_12345", "grid_patrol", "resident")),
        street="jianwai",
        community=rng.choice(COMMUNITIES),
        grid=None,
        title=rng.choice(("楼顶违建", "占道经营", "井盖破损", "噪声扰民")),
        description="居民反映的问题",
    )
