"""The KPI scenario: 33 cases driven through `CaseService` on a ManualClock, March–April 2026.

Every command has an explicit Beijing wall-clock time, so each expectation in test_kpi_scenario.py
can be worked out by hand from the lines below. Departments: 城管执法 `cgzf`, 城管委 `cgw`, 住建 `zj`,
规自 `ghzr`. Streets: 建外 `jianwai` (communities c01–c03) and 呼家楼 `hujialou` (c01–c02).

Duty items used: CG-001 (lead cgzf, 24 h, 5 working days), CG-002 (cgzf, 24 h, 3 wd), CG-003 (cgw,
24 h, 10 wd), CG-005 (cgzf, 24 h, 5 wd), CG-006 (cgw, 24 h, 2 wd), CG-008 (zj, 24 h, 3 wd), PA-010
(zj, 2 h, 5 wd), SQ-007 (ghzr, 24 h, 30 wd). Holidays: 清明 Apr 4–6 and 劳动节 May 1–5.

Handling deadlines (end of the N-th working day after the whistle's day, 24:00 Beijing):
CG-001 whistled Mon Mar 2 → Mar 10 00:00; CG-002 whistled Thu Apr 2 → Apr 3 (1), [Apr 4–6 清明],
Apr 7 (2), Apr 8 (3) → Apr 9 00:00 (without the holiday it would be Apr 8 00:00).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from domain.actors import Actor
from domain.clock import CHINA_TZ, ManualClock
from domain.service import CaseService

Action = Callable[[CaseService], object]

SYSTEM = Actor.of("system", "sla-clock")
CENTRE = Actor.of("command_centre", "cc-1")
RESIDENT = Actor.of("resident", "r-1001")

#: The queries' "now": Wed Apr 22 12:00 Beijing, after the last command.
NOW = datetime(2026, 4, 22, 12, 0, tzinfo=CHINA_TZ)


def bj(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A 2026 moment on Beijing's wall clocks."""
    return datetime(2026, month, day, hour, minute, tzinfo=CHINA_TZ)


def dept(code: str) -> Actor:
    return Actor.of("department", code)


@dataclass
class Script:
    """Commands on many cases, each at its own time; `run` plays them in time order."""

    ids: dict[str, UUID] = field(default_factory=dict)
    steps: list[tuple[datetime, int, Action]] = field(default_factory=list)

    def at(self, when: datetime, action: Action) -> None:
        self.steps.append((when, len(self.steps), action))

    def case(
        self, name: str, street: str = "jianwai", community: str = "jianwai_c01"
    ) -> CaseScript:
        return CaseScript(self, name, street, community)

    def run(self, service: CaseService, clock: ManualClock) -> dict[str, UUID]:
        for when, _, action in sorted(self.steps, key=lambda s: (s[0], s[1])):
            clock.set(when)
            action(service)
        return self.ids


@dataclass
class CaseScript:
    script: Script
    name: str
    street: str
    community: str

    @property
    def id(self) -> UUID:
        return self.script.ids[self.name]

    @property
    def street_actor(self) -> Actor:
        return Actor.of("street", self.street)

    def _at(self, when: datetime, action: Callable[[CaseService, UUID], object]) -> CaseScript:
        self.script.at(when, lambda s: action(s, self.id))
        return self

    def report(self, when: datetime, title: str = "楼道堆物") -> CaseScript:
        def report(s: CaseService) -> None:
            self.script.ids[self.name] = s.report(
                RESIDENT,
                source="hotline_12345",
                street=self.street,
                community=self.community,
                title=title,
                description=f"{self.name}：{title}",
            )

        self.script.at(when, report)
        return self

    def accept(self, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.accept(c, self.street_actor, "属实"))

    def reject(self, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.reject(c, self.street_actor, "not_public", "私事"))

    def cancel(self, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.cancel(c, self.street_actor, "来电人撤诉"))

    def whistled(
        self,
        when: datetime,
        item: str,
        lead: str,
        assisting: tuple[str, ...] = (),
        urgency: str = "normal",
        title: str = "楼道堆物",
    ) -> CaseScript:
        """Reported 20 min and accepted 10 min before the whistle at `when`."""
        self.report(when - timedelta(minutes=20), title)
        self.accept(when - timedelta(minutes=10))
        return self._at(
            when,
            lambda s, c: s.whistle(
                c,
                self.street_actor,
                lead=lead,
                assisting=assisting,
                duty_item=item,
                urgency=urgency,
            ),
        )

    def report_in(self, department: str, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.report_in(c, dept(department), "on_site"))

    def hand_off(self, source: str, target: str, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.hand_off(c, dept(source), target, "非本部门职责"))

    def dispute(self, department: str, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.dispute_hand_off(c, dept(department), "不属本部门"))

    def determine(self, department: str, when: datetime) -> CaseScript:
        return self._at(
            when, lambda s, c: s.determine_responsibility(c, CENTRE, department, "依职责清单")
        )

    def handle(self, department: str, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.report_handling(c, dept(department), "resolved"))

    def rework(self, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.send_back_for_rework(c, self.street_actor, "未整改"))

    def close(self, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.close_case(c, self.street_actor, "核查通过"))

    def rate(self, satisfaction: str, solved: bool, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.rate_by_resident(c, RESIDENT, satisfaction, solved))

    def score(self, scores: dict[str, int], when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.rate_by_street(c, self.street_actor, scores))

    def reopen(self, when: datetime) -> CaseScript:
        return self._at(when, lambda s, c: s.reopen(c, RESIDENT, "问题复发"))

    def missed(self, department: str, obligation: str, when: datetime) -> CaseScript:
        return self._at(
            when, lambda s, c: s.record_deadline_missed(c, SYSTEM, department, obligation)
        )

    def supervise(
        self, colour: str, department: str, obligation: str, when: datetime
    ) -> CaseScript:
        return self._at(
            when,
            lambda s, c: s.issue_supervision(c, SYSTEM, colour, department, "督办", obligation),
        )

    def escalate(self, department: str, when: datetime) -> CaseScript:
        return self._at(
            when, lambda s, c: s.escalate_to_district(c, SYSTEM, department, "超时未报到")
        )


def build() -> Script:
    """The whole scenario; comments give each case's deadlines and what it is there to show."""
    s = Script()

    # --- cgzf, March (jianwai) -------------------------------------------------------------------
    # C01 on time throughout. Response 1 h. Handling due Mar 10 00:00.
    s.case("C01").whistled(bj(3, 2, 10), "CG-001", "cgzf").report_in("cgzf", bj(3, 2, 11)).handle(
        "cgzf", bj(3, 4, 10)
    ).close(bj(3, 4, 14)).rate("satisfied", True, bj(3, 4, 18)).score({"cgzf": 90}, bj(3, 4, 19))
    # C02 with zj assisting: cgzf 3 h, zj 6 h. Handling due Mar 11 00:00.
    s.case("C02").whistled(bj(3, 3, 10), "CG-001", "cgzf", ("zj",)).report_in(
        "cgzf", bj(3, 3, 13)
    ).report_in("zj", bj(3, 3, 16)).handle("cgzf", bj(3, 5, 10)).close(bj(3, 5, 15)).rate(
        "basically_satisfied", True, bj(3, 6, 10)
    ).score({"cgzf": 80, "zj": 70}, bj(3, 6, 11))
    # C03 response missed (due Mar 5 10:00, recorded, yellow), reported in after 30 h; closed on
    # time (due Mar 12), rated unsatisfied, reopened Sat Mar 7 (due Mar 14), closed again, satisfied.
    s.case("C03", community="jianwai_c02").whistled(bj(3, 4, 10), "CG-001", "cgzf").missed(
        "cgzf", "response", bj(3, 5, 11)
    ).supervise("yellow", "cgzf", "response", bj(3, 5, 11, 5)).report_in(
        "cgzf", bj(3, 5, 16)
    ).handle("cgzf", bj(3, 6, 10)).close(bj(3, 6, 12)).rate("unsatisfied", False, bj(3, 6, 18))
    s.case("C03", community="jianwai_c02").reopen(bj(3, 7, 10)).handle("cgzf", bj(3, 10, 10)).close(
        bj(3, 10, 12)
    ).rate("satisfied", True, bj(3, 10, 18))
    # C04 rework: response 0.5 h; handled Mar 6 (due Mar 13), sent back (due Mar 14), handled Mar 9.
    s.case("C04").whistled(bj(3, 5, 10), "CG-001", "cgzf").report_in(
        "cgzf", bj(3, 5, 10, 30)
    ).handle("cgzf", bj(3, 6, 10)).rework(bj(3, 6, 15)).handle("cgzf", bj(3, 9, 10)).close(
        bj(3, 9, 12)
    )
    # C05 white at 75 % of the response limit (Mar 10 04:00); reported in after 22 h, on time.
    s.case("C05").whistled(bj(3, 9, 10), "CG-001", "cgzf").supervise(
        "white", "cgzf", "response", bj(3, 10, 4)
    ).report_in("cgzf", bj(3, 10, 8)).handle("cgzf", bj(3, 11, 10)).close(bj(3, 11, 12))
    # C06 hand-off cgzf → cgw before reporting in; cgw answers 2 h after the hand-off.
    s.case("C06").whistled(bj(3, 10, 10), "CG-005", "cgzf").hand_off(
        "cgzf", "cgw", bj(3, 10, 12)
    ).report_in("cgw", bj(3, 10, 14)).handle("cgw", bj(3, 12, 10)).close(bj(3, 12, 12)).score(
        {"cgw": 50}, bj(3, 12, 13)
    )
    # C07 dispute lost by the sender: cgzf reported in (1 h), hands off to ghzr, which disputes;
    # the centre gives it back to cgzf.
    s.case("C07").whistled(bj(3, 11, 10), "CG-001", "cgzf").report_in(
        "cgzf", bj(3, 11, 11)
    ).hand_off("cgzf", "ghzr", bj(3, 11, 12)).dispute("ghzr", bj(3, 11, 13)).determine(
        "cgzf", bj(3, 11, 15)
    ).handle("cgzf", bj(3, 12, 10)).close(bj(3, 12, 12))
    # C08 dispute lost by the disputer: ghzr is told to take it; it reports in 6 h after the
    # hand-off that obligated it (new response deadline Mar 13 14:00).
    s.case("C08").whistled(bj(3, 12, 10), "CG-001", "cgzf").hand_off(
        "cgzf", "ghzr", bj(3, 12, 11)
    ).dispute("ghzr", bj(3, 12, 12)).determine("ghzr", bj(3, 12, 14)).report_in(
        "ghzr", bj(3, 12, 17)
    ).handle("ghzr", bj(3, 13, 10)).close(bj(3, 13, 12)).rate(
        "satisfied", True, bj(3, 13, 18)
    ).score({"ghzr": 60}, bj(3, 13, 19))
    # C09 determined to a third department (zj): nobody loses; zj answers 1 h after.
    s.case("C09").whistled(bj(3, 13, 10), "CG-001", "cgzf").hand_off(
        "cgzf", "ghzr", bj(3, 13, 11)
    ).dispute("ghzr", bj(3, 13, 12)).determine("zj", bj(3, 13, 14)).report_in(
        "zj", bj(3, 13, 15)
    ).handle("zj", bj(3, 16, 10)).close(bj(3, 16, 12))
    # C10 response missed and recorded, yellow, escalated after 2× the limit; reports in at 50 h.
    s.case("C10", community="jianwai_c02").whistled(bj(3, 16, 10), "CG-001", "cgzf").missed(
        "cgzf", "response", bj(3, 17, 10, 5)
    ).supervise("yellow", "cgzf", "response", bj(3, 17, 10, 6)).escalate(
        "cgzf", bj(3, 18, 10, 5)
    ).report_in("cgzf", bj(3, 18, 12)).handle("cgzf", bj(3, 19, 10)).close(bj(3, 19, 12))
    # C30 whistled, cancelled the same day before any report-in.
    s.case("C30").whistled(bj(3, 24, 10), "CG-001", "cgzf").cancel(bj(3, 24, 15))

    # --- cgzf, April: 清明 -------------------------------------------------------------------------
    # C11 CG-002 whistled Thu Apr 2: handling due Apr 9 00:00 thanks to 清明; handled Apr 8 on time.
    s.case("C11").whistled(bj(4, 2, 10), "CG-002", "cgzf").report_in("cgzf", bj(4, 2, 11)).handle(
        "cgzf", bj(4, 8, 15)
    ).close(bj(4, 8, 17)).rate("satisfied", True, bj(4, 9, 10))
    # C12 same deadline, missed: recorded Apr 9 09:00, red (the veto), handled and closed late.
    s.case("C12").whistled(bj(4, 2, 10, 30), "CG-002", "cgzf").report_in(
        "cgzf", bj(4, 2, 12, 30)
    ).missed("cgzf", "handling", bj(4, 9, 9)).supervise(
        "red", "cgzf", "handling", bj(4, 9, 9, 5)
    ).handle("cgzf", bj(4, 9, 15)).close(bj(4, 9, 17)).rate("unsatisfied", False, bj(4, 10, 10))
    # C13 reported in (2 h), handling due Apr 21 00:00 missed: recorded and red; still open.
    s.case("C13").whistled(bj(4, 13, 10), "CG-001", "cgzf").report_in("cgzf", bj(4, 13, 12)).missed(
        "cgzf", "handling", bj(4, 21, 8, 55)
    ).supervise("red", "cgzf", "handling", bj(4, 21, 9))
    # C14 cgzf silent (response due Apr 21 10:00; white at 04:00), zj assisting answers in 3 h.
    s.case("C14", community="jianwai_c02").whistled(
        bj(4, 20, 10), "CG-001", "cgzf", ("zj",)
    ).report_in("zj", bj(4, 20, 13)).supervise("white", "cgzf", "response", bj(4, 21, 4))

    # --- cgw, March (hujialou) ---------------------------------------------------------------
    # C15 on time; 1 h; handling due Mar 17.
    s.case("C15", "hujialou", "hujialou_c01").whistled(bj(3, 2, 14), "CG-003", "cgw").report_in(
        "cgw", bj(3, 2, 15)
    ).handle("cgw", bj(3, 6, 10)).close(bj(3, 6, 12)).rate("satisfied", True, bj(3, 6, 18)).score(
        {"cgw": 70}, bj(3, 6, 19)
    )
    # C16 CG-006 (2 wd): handling due Mar 6 00:00, reported Mar 6 10:00 — late (not recorded).
    s.case("C16", "hujialou", "hujialou_c01").whistled(bj(3, 3, 14), "CG-006", "cgw").report_in(
        "cgw", bj(3, 3, 18)
    ).handle("cgw", bj(3, 6, 10)).close(bj(3, 6, 12)).rate(
        "unsatisfied", False, bj(3, 6, 18)
    ).score({"cgw": 40}, bj(3, 6, 19))
    # C17 urgent (2 h limit), answered in 1 h.
    s.case("C17", "hujialou", "hujialou_c01").whistled(
        bj(3, 4, 14), "CG-003", "cgw", urgency="urgent"
    ).report_in("cgw", bj(3, 4, 15)).handle("cgw", bj(3, 10, 10)).close(bj(3, 10, 12)).rate(
        "basically_satisfied", False, bj(3, 10, 18)
    )
    # C18 urgent, answered in 3 h (late, not recorded); reworked once; all handling on time.
    s.case("C18", "hujialou", "hujialou_c01").whistled(
        bj(3, 5, 14), "CG-003", "cgw", urgency="urgent"
    ).report_in("cgw", bj(3, 5, 17)).handle("cgw", bj(3, 9, 10)).rework(bj(3, 9, 15)).handle(
        "cgw", bj(3, 11, 10)
    ).close(bj(3, 11, 12))
    # C29 rejected; C31 accepted then cancelled.
    s.case("C29", "hujialou", "hujialou_c01").report(bj(3, 20, 9)).reject(bj(3, 20, 10))
    s.case("C31", "hujialou", "hujialou_c01").report(bj(3, 25, 9)).accept(bj(3, 25, 10)).cancel(
        bj(3, 25, 11)
    )

    # --- cgw, April ------------------------------------------------------------------------------
    # C19 cgw white, missed (recorded), yellow, answers at 28 h; cgzf assisting answers in 3 h.
    s.case("C19", "hujialou", "hujialou_c02").whistled(
        bj(4, 1, 10), "CG-003", "cgw", ("cgzf",)
    ).report_in("cgzf", bj(4, 1, 13)).supervise("white", "cgw", "response", bj(4, 2, 4)).missed(
        "cgw", "response", bj(4, 2, 10, 30)
    ).supervise("yellow", "cgw", "response", bj(4, 2, 10, 35)).report_in(
        "cgw", bj(4, 2, 14)
    ).handle("cgw", bj(4, 10, 10)).close(bj(4, 10, 12)).rate(
        "satisfied", True, bj(4, 10, 18)
    ).score({"cgw": 75, "cgzf": 85}, bj(4, 10, 19))
    # C20 answered in 20 min; CG-006 due Apr 17 00:00.
    s.case("C20", "hujialou", "hujialou_c01").whistled(bj(4, 14, 10), "CG-006", "cgw").report_in(
        "cgw", bj(4, 14, 10, 20)
    ).handle("cgw", bj(4, 16, 10)).close(bj(4, 16, 12)).rate(
        "satisfied", True, bj(4, 16, 18)
    ).score({"cgw": 90}, bj(4, 16, 19))
    # C21 answered in 30 min, handled Apr 21: waits for the street's check (feedback stage).
    s.case("C21", "hujialou", "hujialou_c01").whistled(bj(4, 20, 9), "CG-006", "cgw").report_in(
        "cgw", bj(4, 20, 9, 30)
    ).handle("cgw", bj(4, 21, 10))
    # C33 answered in 1 h, closed "today" (Apr 22).
    s.case("C33", "hujialou", "hujialou_c01").whistled(bj(4, 21, 14), "CG-006", "cgw").report_in(
        "cgw", bj(4, 21, 15)
    ).handle("cgw", bj(4, 22, 9)).close(bj(4, 22, 10))

    # --- zj (jianwai_c03) ------------------------------------------------------------------------
    # C22 on time, 2 h; CG-008 due Mar 13 00:00.
    s.case("C22", community="jianwai_c03").whistled(bj(3, 9, 14), "CG-008", "zj").report_in(
        "zj", bj(3, 9, 16)
    ).handle("zj", bj(3, 11, 10)).close(bj(3, 11, 12)).rate("satisfied", True, bj(3, 11, 18)).score(
        {"zj": 85}, bj(3, 11, 19)
    )
    # C23 zj misses its response (recorded) and answers at 30 h; handling due Mar 21 00:00 missed,
    # recorded, red (zj's March veto); handled and closed late. cgw assisting answers in 1 h.
    s.case("C23", community="jianwai_c03").whistled(
        bj(3, 17, 14), "CG-008", "zj", ("cgw",)
    ).report_in("cgw", bj(3, 17, 15)).missed("zj", "response", bj(3, 18, 14, 30)).report_in(
        "zj", bj(3, 18, 20)
    ).missed("zj", "handling", bj(3, 21, 9)).supervise(
        "red", "zj", "handling", bj(3, 21, 9, 5)
    ).handle("zj", bj(3, 23, 10)).close(bj(3, 23, 12)).rate(
        "basically_satisfied", True, bj(3, 23, 18)
    )
    # C24 PA-010 (2 h limit) whistled Fri Apr 3: white at 10:30, answered at 1.75 h; handling due
    # Apr 14 00:00 (Apr 7, 8, 9, 10, 13 after 清明).
    s.case("C24", community="jianwai_c03").whistled(bj(4, 3, 9), "PA-010", "zj").supervise(
        "white", "zj", "response", bj(4, 3, 10, 30)
    ).report_in("zj", bj(4, 3, 10, 45)).handle("zj", bj(4, 13, 10)).close(bj(4, 13, 12)).rate(
        "satisfied", True, bj(4, 13, 18)
    ).score({"zj": 70}, bj(4, 13, 19))
    # C25 zj hands off to ghzr, which disputes: open, awaiting determination.
    s.case("C25", community="jianwai_c03").whistled(bj(4, 21, 10), "CG-008", "zj").hand_off(
        "zj", "ghzr", bj(4, 21, 11)
    ).dispute("ghzr", bj(4, 21, 12))
    # C26 zj silent: response due Apr 18 10:00 missed (recorded), yellow, escalated; still open.
    s.case("C26", community="jianwai_c03").whistled(bj(4, 17, 10), "CG-008", "zj").missed(
        "zj", "response", bj(4, 18, 10, 10)
    ).supervise("yellow", "zj", "response", bj(4, 18, 10, 15)).escalate("zj", bj(4, 19, 10, 10))

    # --- today (Apr 22) ---------------------------------------------------------------------------
    s.case("C27").report(bj(4, 22, 9))  # 收集
    s.case("C28").report(bj(4, 22, 9, 30)).accept(bj(4, 22, 10))  # 分流
    s.case("C32", community="jianwai_c02").whistled(bj(4, 22, 9, 30), "SQ-007", "ghzr")
    return s
