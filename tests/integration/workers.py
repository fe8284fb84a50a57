"""The writer process of the multiprocess concurrency test (imported by spawned children, so kept light).

Each writer opens its own CaseService on the shared store, waits for the others at a barrier, then
drives cases of its own through the loop while reporting in on the shared case. Every command carries
a unique token in a free-text field, so the parent can find each one in the store afterwards.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.actors import Actor
from domain.clock import ManualClock
from domain.errors import DomainError
from domain.service import CaseService
from infra.settings import Settings
from infra.store import open_service
from tests.unit.builders import ITEM, LEAD, STREET

#: The free-text fields a token can ride in, per event.
TOKEN_FIELDS = ("title", "note", "justification", "reason")
#: Distinct supervisions a writer issues on the shared case, one per case of its own.
SUPERVISIONS = [(c, o) for o in (None, "response", "handling") for c in ("white", "yellow", "red")]


@dataclass(frozen=True)
class Outcome:
    token: str
    case_id: str | None  # the case the command was for (None: a refused report)
    version: int | None  # the version the command returned; None when refused
    code: str | None  # the domain error's code when refused


@dataclass(frozen=True)
class WriterPlan:
    index: int
    settings: Settings
    start: datetime
    shared_case: str
    own_department: str  # assisting on the shared case
    contested_department: str  # every writer tries to report it in: one may
    own_cases: int


def run_writer(plan: WriterPlan, barrier: Any, results: Any) -> None:
    """Process entry point: puts `(index, outcomes)` or `(index, traceback)` on `results`."""
    try:
        service = open_service(plan.settings, ManualClock(plan.start))
        try:
            barrier.wait()
            results.put((plan.index, _write(service, plan)))
        finally:
            service.close()
    except BaseException:
        results.put((plan.index, traceback.format_exc()))


def _write(service: CaseService, plan: WriterPlan) -> list[Outcome]:
    street = Actor.of("street", STREET)
    lead = Actor.of("department", LEAD)
    own = Actor.of("department", plan.own_department)
    contested = Actor.of("department", plan.contested_department)
    inspector = Actor.of("inspector", f"insp-{plan.index}")
    reporter = Actor.of("grid_worker", f"gw-{plan.index}")
    shared = UUID(plan.shared_case)
    outcomes: list[Outcome] = []
    clock = service.clock
    assert isinstance(clock, ManualClock)

    def run(
        token: str, case_id: UUID | None, command: Callable[..., int | UUID], *args: Any
    ) -> UUID | None:
        """Runs one command whose free text is `token`; records what it returned or why not."""
        clock.advance(timedelta(seconds=30))
        try:
            result = command(*args)
        except DomainError as refused:
            outcomes.append(Outcome(token, str(case_id) if case_id else None, None, refused.code))
            return None
        if isinstance(result, UUID):  # a report: version 1 of a new case
            case_id, result = result, 1
        outcomes.append(Outcome(token, str(case_id), result, None))
        return case_id

    def report(title: str) -> UUID:
        return service.report(
            reporter, source="grid_patrol", street=STREET, title=title, description="网格巡查"
        )

    def whistle(case_id: UUID, justification: str) -> int:
        return service.whistle(
            case_id, street, lead=LEAD, duty_item=ITEM, justification=justification
        )

    p = f"w{plan.index}"
    run(f"{p}-in", shared, service.report_in, shared, own, "remote", f"{p}-in")
    for n in range(plan.own_cases):
        t = f"{p}-c{n}"
        c = run(f"{t}-report", None, report, f"{t}-report")
        assert c is not None
        run(f"{t}-accept", c, service.accept, c, street, f"{t}-accept")
        run(f"{t}-whistle", c, whistle, c, f"{t}-whistle")
        run(f"{t}-in", c, service.report_in, c, lead, "on_site", f"{t}-in")
        if n == 0:
            token = f"{p}-contested"
            run(token, shared, service.report_in, shared, contested, "on_site", token)
        run(f"{t}-handled", c, service.report_handling, c, lead, "resolved", f"{t}-handled")
        run(f"{t}-close", c, service.close_case, c, street, f"{t}-close")
        colour, obligation = SUPERVISIONS[n % len(SUPERVISIONS)]
        token = f"{t}-supervise"
        run(
            token,
            shared,
            service.issue_supervision,
            shared,
            inspector,
            colour,
            own.id,
            token,
            obligation,
        )
    return outcomes
