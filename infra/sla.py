"""The SLA clock: turns deadlines that come due into the domain's oversight commands.

Rules (DESIGN.md "SLA clock"), for every open response or handling deadline:
- at 75 % of the time allowed, a white supervision (预警);
- past the limit, `record_deadline_missed`, then a yellow supervision for a response deadline, red for
  a handling deadline or for the department's second miss on the same case;
- a department with no report-in by twice its response limit is escalated to the district.

The clock reads what is due from a `DueSource` (the `deadlines` read model, wired by the CLI: infra
does not import projections) and acts through `CaseService` as `domain.actors.SLA_CLOCK`. The read
model may lag and several clocks may run at once, so the aggregate decides: a refusal that means
"already done" or "no longer due" is skipped and counted, never retried in a loop and never fatal.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from domain.actors import SLA_CLOCK
from domain.clock import Clock
from domain.errors import DomainError
from domain.service import CaseService
from infra.logs import configure_logging

log = logging.getLogger(__name__)

#: Share of the time allowed after which a white warning is issued.
WHITE_SHARE = 0.75
#: Multiple of the response limit after which a silent department goes to the district.
ESCALATE_MULTIPLE = 2

#: Refusals meaning the action was already taken (by this or another clock) or is no longer due.
SKIP_CODES = frozenset(
    {
        "already_recorded",
        "already_supervised",
        "already_escalated",
        "already_reported_in",
        "not_overdue",
        "not_due",
        "not_whistled",
        "illegal_transition",
        "department_not_on_case",
    }
)

REASONS = {
    ("white", "response"): "报到时限将至（已过 75%）",
    ("white", "handling"): "办理时限将至（已过 75%）",
    ("yellow", "response"): "超期未报到",
    ("red", "response"): "再次超期未报到",
    ("red", "handling"): "超期未办结",
}
ESCALATION_REASON = "超过两倍报到时限仍未报到，上报区级"


class ActionKind(StrEnum):
    WHITE = "white"  # 75 % of the time allowed has passed
    MISSED = "missed"  # the deadline has passed
    ESCALATE = "escalate"  # twice the response limit has passed without a report-in


@dataclass(frozen=True)
class SlaAction:
    """One thing the clock should do now, as the read model sees it."""

    kind: ActionKind
    case_id: UUID
    department: str
    obligation: str  # 'response' | 'handling'
    due_at: datetime


class DueSource(Protocol):
    """Where the clock learns what is due (the `deadlines` projection in production)."""

    def due_actions(self, now: datetime) -> list[SlaAction]: ...


@dataclass
class TickReport:
    """What one tick found and did; `recorded` counts events this clock stored, by kind."""

    now: datetime
    found: int = 0
    recorded: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    failed: int = 0

    def count(self, what: str) -> None:
        self.recorded[what] = self.recorded.get(what, 0) + 1


# --- the rules, as pure functions ------------------------------------------------------------------


def white_at(started: datetime, due: datetime) -> datetime:
    """When a deadline earns its white warning: 75 % of the way from its start to its limit."""
    return started + (due - started) * WHITE_SHARE


def escalate_at(started: datetime, due: datetime) -> datetime:
    """When a silent department goes to the district: twice its response limit after the start."""
    return started + (due - started) * ESCALATE_MULTIPLE


def miss_colour(obligation: str, misses: int) -> str:
    """Supervision after a miss: red for handling or a repeat offence (`misses` includes this one)."""
    return "red" if obligation == "handling" or misses >= 2 else "yellow"


def is_skip(error: DomainError) -> bool:
    """Whether a refusal means "already done or no longer due" rather than a fault."""
    return error.code in SKIP_CODES


# --- the worker ----------------------------------------------------------------------------------


class SlaClock:
    """Acts on due deadlines each tick; safe to run in several processes at once."""

    def __init__(self, service: CaseService, source: DueSource, clock: Clock) -> None:
        self.service = service
        self.source = source
        self.clock = clock

    def tick(self) -> TickReport:
        report = TickReport(self.clock.now())
        actions = self.source.due_actions(report.now)
        report.found = len(actions)
        handlers: dict[ActionKind, Callable[[SlaAction, TickReport], None]] = {
            ActionKind.WHITE: self._warn,
            ActionKind.MISSED: self._missed,
            ActionKind.ESCALATE: self._escalate,
        }
        for action in actions:
            try:
                handlers[action.kind](action, report)
            except DomainError as error:
                if is_skip(error):
                    report.skipped += 1
                else:
                    self._failed(action, report, error)
            except Exception as error:  # the store is down, a bug: the next action still runs
                self._failed(action, report, error)
        return report

    def run(self, stop: threading.Event, every: float) -> None:
        """Ticks every `every` seconds until `stop` is set; a failing tick is logged, not fatal."""
        while not stop.is_set():
            try:
                report = self.tick()
            except Exception:
                log.exception("SLA tick failed")
            else:
                if report.found:
                    log.info(
                        "SLA tick",
                        extra={
                            "found": report.found,
                            "recorded": report.recorded,
                            "skipped": report.skipped,
                            "failed": report.failed,
                        },
                    )
            stop.wait(every)

    # --- one action each -------------------------------------------------------------------------

    def _warn(self, action: SlaAction, report: TickReport) -> None:
        self._supervise(action, "white", report)

    def _missed(self, action: SlaAction, report: TickReport) -> None:
        """Records the miss (or finds it recorded), then supervises it in the colour it earns."""
        try:
            self.service.record_deadline_missed(
                action.case_id, SLA_CLOCK, action.department, action.obligation
            )
            report.count("missed")
        except DomainError as error:
            if error.code != "already_recorded":
                raise  # not overdue after all (answered in time): nothing to supervise
        misses = self.service.missed_deadlines(action.case_id, action.department)
        self._supervise(action, miss_colour(action.obligation, misses), report)

    def _escalate(self, action: SlaAction, report: TickReport) -> None:
        self.service.escalate_to_district(
            action.case_id, SLA_CLOCK, action.department, ESCALATION_REASON
        )
        report.count("escalated")

    def _supervise(self, action: SlaAction, colour: str, report: TickReport) -> None:
        reason = REASONS[(colour, action.obligation)]
        self.service.issue_supervision(
            action.case_id, SLA_CLOCK, colour, action.department, reason, action.obligation
        )
        report.count(colour)

    def _failed(self, action: SlaAction, report: TickReport, error: Exception) -> None:
        report.failed += 1
        log.error(
            "SLA action failed",
            exc_info=not isinstance(error, DomainError),
            extra={
                "kind": action.kind.value,
                "case_id": str(action.case_id),
                "department": action.department,
                "obligation": action.obligation,
                "error": f"{type(error).__name__}: {error}",
            },
        )


def run_clock(service: CaseService, source: DueSource, every: float) -> None:
    """`whistleloop sla`: ticks until SIGINT or SIGTERM, then returns after the current tick."""
    configure_logging()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.info("SLA clock starting", extra={"every": every})
    SlaClock(service, source, service.clock).run(stop, every)
    log.info("SLA clock stopped")


__all__ = [
    "ActionKind",
    "DueSource",
    "SlaAction",
    "SlaClock",
    "TickReport",
    "escalate_at",
    "miss_colour",
    "run_clock",
    "white_at",
]
