"""Builders the store contract suite shares: cases driven to a status, the full loop, store fingerprints.

Every builder moves the ManualClock a little before each command and writes down when each version was
recorded, so tests can check stored timestamps and time travel against the clock, not the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from tests.unit.builders import ASSISTING, ITEM, LEAD, RECEIVER, STAGES, STREET, dept

#: Stages the unit suite names after something other than the status they end in.
_STATUS_OF = {"handed_off": "whistled", "rated_unsatisfied": "closed"}

#: Every event of the Case aggregate; each is stored under `whistleloop.case.<name>`.
CASE_EVENTS = (
    "CaseReported",
    "CaseAccepted",
    "CaseRejected",
    "Whistled",
    "ReportedIn",
    "HandedOff",
    "HandOffDisputed",
    "ResponsibilityDetermined",
    "ConsultationHeld",
    "HandlingReported",
    "SentBackForRework",
    "Closed",
    "Rated",
    "Reopened",
    "DeadlineMissed",
    "SupervisionIssued",
    "EscalatedToDistrict",
    "CaseCancelled",
)

STEP = timedelta(minutes=5)


@dataclass
class Timeline:
    """A case and the clock time at which each of its versions was recorded (`times[v - 1]`)."""

    case_id: UUID
    times: list[datetime] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)

    @property
    def version(self) -> int:
        return len(self.times)


class Driver:
    """Runs commands on one case, one clock step apart, checking each returned version."""

    def __init__(
        self,
        service: CaseService,
        clock: ManualClock,
        actors: Mapping[str, Actor],
        *,
        keep_states: bool = False,
    ) -> None:
        self.service = service
        self.clock = clock
        self.actors = actors
        self.keep_states = keep_states
        self.timeline: Timeline | None = None

    @property
    def case_id(self) -> UUID:
        assert self.timeline is not None, "report a case first"
        return self.timeline.case_id

    def report(self, **overrides: Any) -> UUID:
        case_id = report_case(self.service, self.actors, **overrides)
        self.timeline = Timeline(case_id, [self.clock.now()])
        self._keep()
        return case_id

    def step(self, command: Callable[[CaseService, UUID], int], delta: timedelta = STEP) -> int:
        """Moves the clock by `delta`, runs the command and checks it made exactly one new version."""
        assert self.timeline is not None, "report a case first"
        self.clock.advance(delta)
        version = command(self.service, self.case_id)
        assert version == self.timeline.version + 1
        self.timeline.times.append(self.clock.now())
        self._keep()
        return version

    def to(self, stage: str) -> Timeline:
        """Drives the freshly reported case to `stage` along the unit suite's route (`STAGES`)."""
        a = self.actors
        steps: dict[str, Callable[[CaseService, UUID], int]] = {
            "accept": lambda s, c: s.accept(c, a["street"], "属实，受理"),
            "reject": lambda s, c: s.reject(c, a["street"], "not_public", "属私人纠纷"),
            "cancel": lambda s, c: s.cancel(c, a["street"], "来电人撤诉"),
            "whistle": lambda s, c: s.whistle(
                c, a["street"], lead=LEAD, assisting=(ASSISTING,), duty_item=ITEM
            ),
            "report_in": lambda s, c: s.report_in(c, dept(LEAD), "on_site", "已到场"),
            "hand_off": lambda s, c: s.hand_off(c, dept(LEAD), RECEIVER, "属规划许可问题"),
            "dispute": lambda s, c: s.dispute_hand_off(c, dept(RECEIVER), "违建查处属城管执法"),
            "report_handling": lambda s, c: s.report_handling(c, dept(LEAD), "resolved"),
            "close": lambda s, c: s.close_case(c, a["street"], "现场核查已整改"),
            "rate_resident_unsatisfied": lambda s, c: s.rate_by_resident(
                c, a["resident"], "unsatisfied", False
            ),
        }
        assert self.timeline is not None
        assert self.timeline.version == 1, "drives a freshly reported case"
        for name in STAGES[stage]:
            self.step(steps[name])
        assert self.service.case(self.case_id)["status"] == _STATUS_OF.get(stage, stage)
        return self.timeline

    def _keep(self) -> None:
        if self.keep_states and self.timeline is not None:
            self.timeline.states.append(self.service.case(self.case_id))


def report_case(service: CaseService, actors: Mapping[str, Actor], **overrides: Any) -> UUID:
    """A resident's 12345 report in 建外街道 / 永安里社区 through the service, any field overridden."""
    fields: dict[str, Any] = {
        "source": "hotline_12345",
        "street": STREET,
        "community": "jianwai_c01",
        "grid": "jianwai_c01_g01",
        "title": "楼顶违建",
        "description": "3 号楼楼顶正在搭建彩钢房",
        "address": "建国门外大街 1 号院 3 号楼",
    }
    fields.update(overrides)
    actor = fields.pop("actor", actors["resident"])
    return service.report(actor, **fields)


def drive(
    service: CaseService,
    clock: ManualClock,
    actors: Mapping[str, Actor],
    stage: str,
    **report_fields: Any,
) -> Timeline:
    """A new case, stored and driven to `stage` (a key of the unit suite's `STAGES`)."""
    driver = Driver(service, clock, actors)
    driver.report(**report_fields)
    return driver.to(stage)


def run_full_loop(
    service: CaseService,
    clock: ManualClock,
    actors: Mapping[str, Actor],
    *,
    keep_states: bool = False,
) -> Timeline:
    """One case through every event but rejection and cancellation, two rounds, rated at the end.

    Report, accept, whistle (lead cgzf, assisting zj); zj reports in; cgzf misses its response
    deadline, is supervised and escalated, hands off to ghzr, which disputes; the command centre gives
    it back to cgzf, which reports in; consultation; handling; rework; handling; close; an unsatisfied
    resident reopens; handling; close; both ratings. 22 versions.
    """
    a, lead = actors, dept(LEAD)
    d = Driver(service, clock, a, keep_states=keep_states)
    d.report()
    d.step(lambda s, c: s.accept(c, a["street"], "属实，受理"))
    d.step(
        lambda s, c: s.whistle(c, a["street"], lead=LEAD, assisting=(ASSISTING,), duty_item=ITEM)
    )
    d.step(lambda s, c: s.report_in(c, dept(ASSISTING), "remote", "已核对"), timedelta(hours=1))
    d.step(
        lambda s, c: s.record_deadline_missed(c, a["system"], LEAD, "response"), timedelta(hours=24)
    )
    d.step(
        lambda s, c: s.issue_supervision(c, a["system"], "yellow", LEAD, "超期未报到", "response")
    )
    d.step(lambda s, c: s.escalate_to_district(c, a["street"], LEAD, "超期未报到，上报区级"))
    d.step(lambda s, c: s.hand_off(c, lead, RECEIVER, "属规划许可问题，非本部门职责"))
    d.step(lambda s, c: s.dispute_hand_off(c, dept(RECEIVER), "违建查处属城管执法职责"))
    d.step(lambda s, c: s.determine_responsibility(c, a["centre"], LEAD, "职责清单 CG-001"))
    d.step(lambda s, c: s.report_in(c, lead, "on_site"))
    d.step(lambda s, c: s.hold_consultation(c, a["street"], (LEAD, ASSISTING), "联合拆除"))
    d.step(lambda s, c: s.report_handling(c, lead, "resolved"), timedelta(hours=3))
    d.step(lambda s, c: s.send_back_for_rework(c, a["street"], "现场仍有残留"))
    d.step(lambda s, c: s.report_handling(c, lead, "resolved"), timedelta(hours=3))
    d.step(lambda s, c: s.close_case(c, a["street"], "现场核查已拆除"))
    d.step(lambda s, c: s.rate_by_resident(c, a["resident"], "unsatisfied", False, "又搭起来了"))
    d.step(lambda s, c: s.reopen(c, a["resident"], "违建复发"))
    d.step(lambda s, c: s.report_handling(c, lead, "resolved", "已彻底拆除"), timedelta(hours=5))
    d.step(lambda s, c: s.close_case(c, a["street"]))
    d.step(lambda s, c: s.rate_by_resident(c, a["resident"], "satisfied", True))
    d.step(lambda s, c: s.rate_by_street(c, a["street"], {LEAD: 85, ASSISTING: 90}))
    assert d.timeline is not None
    return d.timeline


# --- reading the store back ---------------------------------------------------------------------


def notifications(service: CaseService) -> list[Notification]:
    """The whole notification log (the suite's stores are small)."""
    return list(service.recorder.select_notifications(start=0, limit=10_000))


def fingerprint(service: CaseService) -> list[tuple[int, str, int, str, bytes]]:
    """Every stored row, byte for byte, in notification order."""
    return [
        (n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
        for n in notifications(service)
    ]


def case_events(service: CaseService, case_id: UUID) -> list[Any]:
    """The case's stored events, decoded from the notification log (not through the repository)."""
    return [
        service.mapper.to_domain_event(n)
        for n in notifications(service)
        if n.originator_id == case_id
    ]


def decode_state(service: CaseService, stored: StoredEvent) -> dict[str, Any]:
    """The payload of a stored row as it sits in the store (before any upcasting)."""
    mapper, raw = service.mapper, stored.state
    if mapper.cipher:
        raw = mapper.cipher.decrypt(raw)
    if mapper.compressor:
        raw = mapper.compressor.decompress(raw)
    state: dict[str, Any] = mapper.transcoder.decode(raw)
    return state


def encode_state(service: CaseService, stored: StoredEvent, state: dict[str, Any]) -> StoredEvent:
    """`stored` with its payload replaced by `state`, encoded the way the mapper encodes."""
    mapper = service.mapper
    raw = mapper.transcoder.encode(state)
    if mapper.compressor:
        raw = mapper.compressor.compress(raw)
    if mapper.cipher:
        raw = mapper.cipher.encrypt(raw)
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic, raw)


def topic_of(event_name: str) -> str:
    return f"whistleloop.case.{event_name}"
