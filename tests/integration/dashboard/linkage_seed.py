"""A small district for the 部门响应 and 联动 page tests: two streets, three departments, closed and open cases.

- 建外 (`jianwai`): the full closed loop (lead 城管执法 `cgzf`, assisting 住建 `zj`, handed off to and
  back from 规自 `ghzr`), and a case whistled to `cgzf` that never reports in (overdue by the end).
- 呼家楼 (`hujialou`): a case led by `ghzr`, closed, the resident unsatisfied and the street scoring
  `ghzr` 40 (so `ghzr` falls under both thresholds), and a case `zj` reported in on and is handling.

Every command moves the stack's ManualClock on, so response times and deadlines are real.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from tests.integration.builders import report_case, run_full_loop

#: The departments the seed whistles, and the streets it reports in.
DEPARTMENTS = ("cgzf", "zj", "ghzr")
STREETS = ("jianwai", "hujialou")
ITEM = "CG-001"

ACTORS: dict[str, Actor] = {
    "resident": Actor.of("resident", "r-1001"),
    "street": Actor.of("street", "jianwai"),
    "hujialou": Actor.of("street", "hujialou"),
    "centre": Actor.of("command_centre", "cc-1"),
    "system": Actor.of("system", "sla-clock"),
    **{code: Actor.of("department", code) for code in DEPARTMENTS},
}


def _report(service: CaseService, clock: ManualClock, street: str, community: str) -> UUID:
    clock.advance(timedelta(minutes=5))
    case_id = report_case(
        service,
        ACTORS,
        street=street,
        community=community,
        grid=f"{community}_g01",
        title=f"{community} 占道经营",
    )
    clock.advance(timedelta(minutes=5))
    street_actor = ACTORS["street" if street == "jianwai" else street]
    service.accept(case_id, street_actor, "属实，受理")
    return case_id


def _whistle(
    service: CaseService, clock: ManualClock, street: str, community: str, lead: str
) -> UUID:
    case_id = _report(service, clock, street, community)
    clock.advance(timedelta(minutes=5))
    street_actor = ACTORS["street" if street == "jianwai" else street]
    service.whistle(case_id, street_actor, lead=lead, duty_item=ITEM)
    return case_id


def seed_district(service: CaseService, clock: ManualClock) -> None:
    """Seeds the district described in the module docstring (once per test module)."""
    _whistle(service, clock, "jianwai", "jianwai_c02", "cgzf")  # never reports in
    run_full_loop(service, clock, ACTORS)
    unhappy = _whistle(service, clock, "hujialou", "hujialou_c01", "ghzr")
    steps: tuple[Callable[[], int], ...] = (
        lambda: service.report_in(unhappy, ACTORS["ghzr"], "on_site", "已到场"),
        lambda: service.report_handling(unhappy, ACTORS["ghzr"], "resolved"),
        lambda: service.close_case(unhappy, ACTORS["hujialou"], "已核查"),
        lambda: service.rate_by_resident(unhappy, ACTORS["resident"], "unsatisfied", False),
        lambda: service.rate_by_street(unhappy, ACTORS["hujialou"], {"ghzr": 40}),
    )
    for step in steps:
        clock.advance(timedelta(hours=2))
        step()
    handling = _whistle(service, clock, "hujialou", "hujialou_c02", "zj")
    clock.advance(timedelta(minutes=30))
    service.report_in(handling, ACTORS["zj"], "on_site", "已到场")
