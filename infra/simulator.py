"""A seeded simulator of a district's traffic: cases reported, whistled, answered, handled, rated.

Every case walks a path drawn from `random.Random(seed)` with the mix a district sees: most go report →
accept → whistle (a lead and 0–2 assisting departments) → report-ins → handling → close → both
ratings; some are rejected or cancelled, handed off (and disputed, then determined by the command
centre), consulted on, sent back for rework, rated unsatisfied and reopened; departments that answer
late meet the SLA clock (`SLA_CLOCK`: white warning, missed deadline, yellow/red supervision,
escalation) with the rules of `infra.sla`. Arrivals spread over about twelve months from
`SIM_START` (or come at `cases_per_day` from any `start`), thinner at night; streets and departments
act in office hours on working days.

A path is a generator of `(when, Step)`; a `Simulation` runs all open paths in time order on a
`ManualClock` and hands each step to a driver:

- `CommandDriver` calls `CaseService` command methods one by one (`backfill`, what
  `whistleloop simulate --backfill DAYS` uses, runs it over the last DAYS days up to now);
- `BulkDriver` runs the same domain commands on `Case` aggregates held in memory and saves ~100
  cases per transaction (`service.save(*cases)`): what makes a corpus of 10^6 events take minutes;
- `infra.live_traffic.HttpDriver` sends them to the gateway's REST and Open311 API, several cases at
  once (`Simulation.take` / `Simulation.resume`), for `whistleloop simulate --rate N`.

The same seed and event count give the same events, case ids included (they are derived from the
seed), in both drivers; only how the bulk driver groups its saves differs.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Container, Generator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from uuid import UUID

from domain.actors import SLA_CLOCK, Actor, Role
from domain.calendar import WorkingCalendar
from domain.case import Case
from domain.case_rules import REJECT_REASONS
from domain.clock import CHINA_TZ, ManualClock
from domain.deadlines import Urgency
from domain.errors import DomainError
from domain.reference import DutyItem, ReferenceData
from domain.service import CaseService
from infra.settings import Settings
from infra.sla import ESCALATION_REASON, REASONS, escalate_at, miss_colour, white_at
from infra.store import open_service

Json = dict[str, Any]

#: Bump when a change makes the same seed give other events (cached benchmark corpora are rebuilt).
SIMULATOR_VERSION = 1
#: The simulated year begins when the shipped duty list takes effect.
SIM_START = datetime(2026, 1, 1, tzinfo=CHINA_TZ)
SIM_SPAN = timedelta(days=365)
#: Mean events per case of the path mix below (measured); sets the arrival rate so that a run of
#: N events spans about `SIM_SPAN`.
EVENTS_PER_CASE = 10.3
#: Reports at night come at this share of the daytime rate; the day's rate relative to the mean is
#: 1 / DAY_SHARE (15 day hours at 1, 9 night hours at NIGHT_RATE).
NIGHT_RATE = 0.2
DAY_SHARE = (15 + 9 * NIGHT_RATE) / 24
#: The bulk driver saves once this many cases have new events.
BULK_CASES_PER_SAVE = 100
#: A backfill's arrival rate: a district's street offices see a few dozen cases a day.
BACKFILL_CASES_PER_DAY = 40.0

SOURCES = (  # (source, reporter role, weight)
    ("hotline_12345", Role.RESIDENT, 45),
    ("grid_patrol", Role.GRID_WORKER, 25),
    ("community", Role.COMMUNITY, 10),
    ("resident", Role.RESIDENT, 8),
    ("open311", Role.RESIDENT, 5),
    ("street_patrol", Role.STREET, 7),
)
URGENCIES = ((Urgency.NORMAL, 80), (Urgency.URGENT, 17), (Urgency.EMERGENCY, 3))
SATISFACTION = (("satisfied", 0.95, 72), ("basically_satisfied", 0.8, 18), ("unsatisfied", 0.3, 10))
RESULTS = (("resolved", 85), ("partly_resolved", 10), ("unresolvable", 5))
REPORT_IN_MODES = (("on_site", 60), ("remote", 25), ("joint_enforcement", 10), ("consultation", 5))
CENTRE = Actor(Role.COMMAND_CENTRE, "cc-sim")

Plan = Generator[tuple[datetime, "Step"], None, None]


@dataclass(frozen=True)
class Step:
    """One command: a `CaseService` method name, who acts, and its keyword arguments.

    `about` is what the path knows that the command does not carry (a report's duty item), for
    drivers that speak another API (Open311 needs a service code); `CaseService` never sees it.
    """

    name: str
    actor: Actor
    kwargs: Json = field(default_factory=dict)
    about: Json = field(default_factory=dict, compare=False)


class Driver(Protocol):
    """Carries steps out against a store; `state` is the case's `public_state()` now."""

    def execute(self, case_id: UUID, step: Step) -> None: ...

    def state(self, case_id: UUID) -> Json: ...

    def finished(self, case_id: UUID) -> None: ...

    def flush(self) -> None: ...


# --- the paths ---------------------------------------------------------------------------------


@dataclass
class _Run:
    """What one case's path knows as it goes: where, what, who, and the time of its last step."""

    case_id: UUID
    street: str
    item: DutyItem | None
    t: datetime
    reporter: Actor
    misses: dict[str, int] = field(default_factory=dict)
    handling_start: datetime | None = None
    sla_done: set[str] = field(default_factory=set)

    def first(self, action: str, dept: str, obligation: str, due: datetime) -> bool:
        """Whether the SLA clock has not yet taken this action on this deadline (and now has)."""
        key = f"{action}:{dept}:{obligation}:{due.isoformat()}"
        if key in self.sla_done:
            return False
        self.sla_done.add(key)
        return True


class Paths:
    """Draws each case's path; every random choice comes from the one seeded `rng`."""

    def __init__(
        self,
        rng: random.Random,
        reference: ReferenceData,
        driver: Driver,
        sla: bool,
        calendar: WorkingCalendar,
    ) -> None:
        self.rng = rng
        self.ref = reference
        self.driver = driver
        self.sla = sla
        self.calendar = calendar
        self.items = sorted(reference.duty_items.values(), key=lambda i: i.code)
        self.departments = sorted(reference.departments)
        self.communities = {
            s: sorted(c.code for c in reference.communities.values() if c.street == s)
            for s in sorted(reference.streets)
        }
        self.streets = list(self.communities)
        self.last_case: UUID | None = None

    # -- helpers --

    def pick(self, weighted: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
        """One of `weighted`, whose last field is its weight."""
        return self.rng.choices(weighted, weights=[w[-1] for w in weighted])[0]

    def office(self, t: datetime) -> datetime:
        """`t` if it falls in office hours (08:30–18:00 China time, working days), else a little
        after the next opening."""
        local = t.astimezone(CHINA_TZ)
        day = local.date()
        if self.calendar.is_working_day(day) and time(8, 30) <= local.time() < time(18):
            return t
        if local.time() >= time(8, 30) or not self.calendar.is_working_day(day):
            day += timedelta(days=1)
            while not self.calendar.is_working_day(day):
                day += timedelta(days=1)
        opening = datetime.combine(day, time(8, 30), tzinfo=CHINA_TZ)
        return opening + timedelta(minutes=self.rng.randint(0, 120))

    def later(self, run: _Run, low_min: float, high_min: float, office: bool = True) -> datetime:
        t = run.t + timedelta(minutes=self.rng.uniform(low_min, high_min))
        return self.office(t) if office else t

    def do(self, run: _Run, at: datetime, name: str, actor: Actor, **kwargs: Any) -> Plan:
        run.t = max(run.t, at)
        yield run.t, Step(name, actor, kwargs)

    # -- a whole case --

    def case(self, case_id: UUID, key: str, at: datetime) -> Plan:
        """The path of a new case, reported at `at` under the idempotency key its id comes from."""
        street = self.rng.choice(self.streets)
        item = self.rng.choice(self.items)
        source, role, _ = self.pick(SOURCES)
        reporter = Actor(
            role, street if role is Role.STREET else f"{role.value}-{self.rng.randint(1, 5000)}"
        )
        run = _Run(case_id, street, item, at, reporter)
        fields = self._report_fields(run, source)
        yield at, Step("report", reporter, {"idempotency_key": key, **fields}, {"item": item.code})
        previous, self.last_case = self.last_case, case_id
        street_actor = Actor(Role.STREET, street)
        decision = self.rng.random()
        if decision < 0.04:
            reason = self.rng.choice([r for r in REJECT_REASONS if r != "duplicate" or previous])
            yield from self.do(
                run,
                self.later(run, 10, 240),
                "reject",
                street_actor,
                reason=reason,
                note="经核实不予受理",
                duplicate_of=previous if reason == "duplicate" else None,
            )
            return
        if decision < 0.06:
            yield from self.do(
                run, self.later(run, 10, 240), "cancel", street_actor, reason="来电人撤诉"
            )
            return
        yield from self.do(run, self.later(run, 5, 120), "accept", street_actor, note="属实，受理")
        yield from self.whistled(run, street_actor)

    def _report_fields(self, run: _Run, source: str) -> Json:
        assert run.item is not None
        community = (
            self.rng.choice(self.communities[run.street]) if self.rng.random() < 0.9 else None
        )
        grid = None
        if community is not None and self.rng.random() < 0.7:
            grid = self.rng.choice(self.ref.communities[community].grids)
        return {
            "source": source,
            "street": run.street,
            "community": community,
            "grid": grid,
            "title": run.item.name[:40],
            "description": f"{run.item.name}（模拟案件）",
            "address": f"{self.ref.streets[run.street].name}{self.rng.randint(1, 300)}号",
            "suggested_item": run.item.code if self.rng.random() < 0.3 else None,
            "contact": {"phone": f"138****{self.rng.randint(0, 9999):04d}"}
            if run.reporter.role is Role.RESIDENT
            else None,
        }

    def whistled(self, run: _Run, street: Actor) -> Plan:
        urgency: Urgency = self.pick(URGENCIES)[0]
        lead, assisting, item = self._departments(run, urgency)
        run.item = item
        yield from self.do(
            run,
            self.later(run, 5, 90),
            "whistle",
            street,
            lead=lead,
            assisting=assisting,
            duty_item=item.code if item else None,
            urgency=urgency.value,
            justification="突发事件，清单外先行处置" if item is None else None,
        )
        run.handling_start = run.t
        if self.rng.random() < 0.01:
            yield from self.do(
                run,
                self.later(run, 10, 60, office=False),
                "cancel",
                street,
                reason="问题已自行消除",
            )
            return
        obligations = self.driver.state(run.case_id)["obligations"]
        plans = [self._lead_response(run, lead, obligations[lead])]
        plans += [self.respond(run, d, obligations[d]) for d in assisting]
        yield from merge(plans)
        yield from self.handled(run, street)

    def _departments(
        self, run: _Run, urgency: Urgency
    ) -> tuple[str, tuple[str, ...], DutyItem | None]:
        if urgency is Urgency.EMERGENCY and self.rng.random() < 0.3:  # outside the list, justified
            lead, *others = self.rng.sample(self.departments, 1 + self.rng.randint(0, 1))
            return lead, tuple(others), None
        assert run.item is not None
        cooperating = list(run.item.cooperating_departments)
        wanted = self.rng.choices((0, 1, 2), weights=(40, 40, 20))[0]
        assisting = tuple(self.rng.sample(cooperating, min(wanted, len(cooperating))))
        return run.item.lead_department, assisting, run.item

    # -- responses --

    def respond(self, run: _Run, dept: str, obligation: Json) -> Plan:
        """A department reports in: on time mostly, late sometimes (then the SLA clock acts)."""
        start, due = obligation["whistled_at"], obligation["response_deadline"]
        planned = self._answer_time(start, due)
        yield from self.sla_until(run, dept, "response", start, due, planned)
        mode = self.pick(REPORT_IN_MODES)[0]
        yield from self.do(
            run, planned, "report_in", Actor(Role.DEPARTMENT, dept), mode=mode, note="已报到"
        )

    def _answer_time(self, start: datetime, due: datetime) -> datetime:
        limit = due - start
        if self.rng.random() < 0.12:  # late, sometimes very late
            return due + max(limit * self.rng.uniform(0.05, 1.5), timedelta(hours=1))
        answer = start + limit * (self.rng.random() ** 2 * 0.7)
        return self.office(answer) if limit >= timedelta(hours=24) else answer  # urgent: at once

    def sla_until(
        self, run: _Run, dept: str, obligation: str, start: datetime, due: datetime, until: datetime
    ) -> Plan:
        """What the SLA clock does to an obligation still open at `until`: warn, record, supervise,
        escalate, each when its moment comes (see infra.sla); once per deadline, as the domain
        allows (a rework on the whistle's day can give the same deadline again)."""
        if not self.sla:
            return
        if white_at(start, due) < until and run.first("white", dept, obligation, due):
            yield from self._supervise(run, white_at(start, due), "white", dept, obligation)
        missed = due + timedelta(minutes=self.rng.uniform(0.5, 30))
        if missed < until and run.first("missed", dept, obligation, due):
            yield from self.do(
                run,
                missed,
                "record_deadline_missed",
                SLA_CLOCK,
                department=dept,
                obligation=obligation,
            )
            run.misses[dept] = run.misses.get(dept, 0) + 1
            colour = miss_colour(obligation, run.misses[dept])
            yield from self._supervise(run, missed, colour, dept, obligation)
        escalation = escalate_at(start, due)
        if (
            obligation == "response"
            and escalation < until
            and run.first("escalate", dept, obligation, due)
        ):
            yield from self.do(
                run,
                escalation,
                "escalate_to_district",
                SLA_CLOCK,
                department=dept,
                reason=ESCALATION_REASON,
            )

    def _supervise(self, run: _Run, at: datetime, colour: str, dept: str, obligation: str) -> Plan:
        yield from self.do(
            run,
            at,
            "issue_supervision",
            SLA_CLOCK,
            colour=colour,
            department=dept,
            reason=REASONS[(colour, obligation)],
            obligation=obligation,
        )

    def _lead_response(self, run: _Run, lead: str, obligation: Json) -> Plan:
        if self.rng.random() >= 0.05:
            yield from self.respond(run, lead, obligation)
            return
        yield from self.handed_off(run, lead, obligation)

    def handed_off(self, run: _Run, lead: str, obligation: Json) -> Plan:
        """移交, and one in three disputed (争议) until the command centre determines (认定)."""
        on_case = set(self.driver.state(run.case_id)["obligations"])
        receiver = self.rng.choice([d for d in self.departments if d not in on_case])
        at = self.later(run, 30, 360)
        yield from self.sla_until(
            run, lead, "response", obligation["whistled_at"], obligation["response_deadline"], at
        )
        yield from self.do(
            run,
            at,
            "hand_off",
            Actor(Role.DEPARTMENT, lead),
            to_department=receiver,
            reason="不属本部门职责，移交",
        )
        received = self.driver.state(run.case_id)["obligations"][receiver]
        if self.rng.random() >= 1 / 3:
            yield from self.respond(run, receiver, received)
            return
        at = self.later(run, 20, 180)
        yield from self.sla_until(
            run, receiver, "response", received["whistled_at"], received["response_deadline"], at
        )
        yield from self.do(
            run,
            at,
            "dispute_hand_off",
            Actor(Role.DEPARTMENT, receiver),
            reason="依职责清单应由原部门办理",
        )
        determined = receiver if self.rng.random() < 0.6 else lead
        yield from self.do(
            run,
            self.later(run, 120, 2880),
            "determine_responsibility",
            CENTRE,
            department=determined,
            basis="依据职责清单认定",
        )
        settled = self.driver.state(run.case_id)["obligations"][determined]
        if settled["reported_in_at"] is None:
            yield from self.respond(run, determined, {**settled, "whistled_at": run.t})

    # -- handling to the end --

    def handled(self, run: _Run, street: Actor) -> Plan:
        state = self.driver.state(run.case_id)
        departments = [d for d, o in state["obligations"].items() if o["active"]]
        if len(departments) >= 2 and self.rng.random() < 0.08:
            yield from self.do(
                run,
                self.later(run, 60, 1440),
                "hold_consultation",
                street,
                departments=tuple(departments),
                plan="会商形成联合处置方案",
            )
        for _round in range(3):
            result = yield from self.handling(run, state["lead_department"])
            if _round == 2 or self.rng.random() >= (0.5 if result != "resolved" else 0.06):
                break
            yield from self.do(
                run,
                self.later(run, 60, 1440),
                "send_back_for_rework",
                street,
                reason="现场核查未整改到位",
            )
            run.handling_start = run.t
        yield from self.do(
            run, self.later(run, 60, 2880), "close_case", street, note="现场核查，予以结案"
        )
        yield from self.rated(run, street, state["lead_department"], departments)

    def handling(self, run: _Run, lead: str) -> Generator[tuple[datetime, Step], None, str]:
        due = self.driver.state(run.case_id)["handling_deadline"]
        start = run.handling_start or run.t
        share = (
            self.rng.uniform(1.0, 1.5) if self.rng.random() < 0.08 else self.rng.uniform(0.05, 0.95)
        )
        planned = self.office(max(start + (due - start) * share, run.t + timedelta(minutes=30)))
        yield from self.sla_until(run, lead, "handling", start, due, planned)
        result = self.pick(RESULTS)[0]
        note = "" if result == "resolved" else "部分问题需协调其他部门继续处置"
        yield from self.do(
            run, planned, "report_handling", Actor(Role.DEPARTMENT, lead), result=result, note=note
        )
        return str(result)

    def rated(
        self, run: _Run, street: Actor, lead: str, departments: list[str], reopened: bool = False
    ) -> Plan:
        resident = (
            run.reporter
            if run.reporter.role is Role.RESIDENT
            else Actor(Role.RESIDENT, "sim-resident")
        )
        satisfaction = "satisfied"
        if self.rng.random() < 0.85:
            satisfaction, solved_share, _ = self.pick(SATISFACTION)
            yield from self.do(
                run,
                self.later(run, 30, 4320, office=False),
                "rate_by_resident",
                resident,
                satisfaction=satisfaction,
                solved=self.rng.random() < solved_share,
                comment="",
            )
        if self.rng.random() < 0.8:
            scores = {d: self._score(run, d) for d in departments}
            yield from self.do(
                run, self.later(run, 30, 2880), "rate_by_street", street, scores=scores, comment=""
            )
        if satisfaction == "unsatisfied" and not reopened and self.rng.random() < 0.5:
            yield from self.do(
                run,
                self.later(run, 60, 1440, office=False),
                "reopen",
                resident,
                reason="问题未解决，要求重启",
            )
            run.handling_start = run.t
            yield from self.handling(run, lead)
            yield from self.do(
                run, self.later(run, 60, 2880), "close_case", street, note="复核后结案"
            )
            yield from self.rated(run, street, lead, departments, reopened=True)

    def _score(self, run: _Run, dept: str) -> int:
        penalty = 15 * run.misses.get(dept, 0)
        return max(0, min(100, round(self.rng.gauss(86, 7)) - penalty))


def merge(plans: list[Plan]) -> Plan:
    """Interleaves several plans of one case in time order, advancing only the one that yielded,
    so each reads the case's state after its own previous step."""
    heads: list[tuple[datetime, int, Step, Plan]] = []
    for index, plan in enumerate(plans):
        _push(heads, index, plan)
    while heads:
        at, index, step, plan = heapq.heappop(heads)
        yield at, step
        _push(heads, index, plan)


def _push(heads: list[tuple[datetime, int, Step, Plan]], index: int, plan: Plan) -> None:
    for at, step in plan:
        heapq.heappush(heads, (at, index, step, plan))
        return


# --- the scheduler -----------------------------------------------------------------------------


class Simulation:
    """Runs every open path in time order; a new case arrives at each arrival time.

    By default the first case arrives at `SIM_START` and arrivals are spaced so that
    `expected_events` span `SIM_SPAN`; `start` and `cases_per_day` set both instead (a backfill
    of the last days, live traffic). `key_prefix` names the reports' idempotency keys, from which
    the case ids derive: another prefix gives other cases, so a second run never meets the first.
    With `tolerate`, a command the domain refuses (e.g. because the live system acted on the case
    meanwhile) is counted in `refused` and ends that case's path instead of the run.
    """

    def __init__(
        self,
        driver: Driver,
        service: CaseService,
        clock: ManualClock,
        seed: int,
        *,
        expected_events: int = 1_000_000,
        sla: bool = True,
        start: datetime = SIM_START,
        cases_per_day: float | None = None,
        key_prefix: str | None = None,
        tolerate: bool = False,
    ) -> None:
        self.driver = driver
        self.clock = clock
        self.seed = seed
        self.rng = random.Random(seed)
        self.paths = Paths(self.rng, service.reference, driver, sla, service.calendar)
        self.mean_gap = (
            timedelta(days=1) / cases_per_day
            if cases_per_day
            else SIM_SPAN / max(expected_events / EVENTS_PER_CASE, 1)
        )
        self.key_prefix = key_prefix or f"sim:{seed}"
        self.tolerate = tolerate
        self.refused: Counter[str] = Counter()
        self._queue: list[tuple[datetime, int, UUID | None, Step | None, Plan | None]] = []
        self._seq = itertools.count()
        self.cases = 0
        self.events = 0
        heapq.heappush(self._queue, (max(clock.now(), start), next(self._seq), None, None, None))

    def run(self, events: int, progress: Callable[[int], None] | None = None) -> int:
        """Carries out `events` more commands (one event each); returns how many it did."""
        target = self.events + events
        while self.events < target and self._queue:
            self.step()
            if progress is not None and self.events % 1000 == 0:
                progress(self.events)
        self.driver.flush()
        return self.events

    def run_until(self, end: datetime, progress: Callable[[datetime], None] | None = None) -> int:
        """Carries out every step due before `end` (paths still open then stay open: cases in
        progress); returns the commands done so far. `progress` hears the clock now and then."""
        while self._queue and self._queue[0][0] < end:
            self.step()
            if progress is not None and self.events % 200 == 0:
                progress(self.clock.now())
        self.driver.flush()
        return self.events

    def step(self) -> None:
        """The next thing due: a case arrives, or a case's next step is carried out."""
        at, _, case_id, step, plan = heapq.heappop(self._queue)
        self.clock.set(at)
        if plan is None:
            self._arrive(at)
            return
        assert case_id is not None
        assert step is not None
        try:
            self.driver.execute(case_id, step)
        except DomainError as error:
            if not self.tolerate:
                raise
            self.refused[f"{step.name}: {error.code}"] += 1
            plan.close()
            self.driver.finished(case_id)
            return
        self.events += 1
        self._advance(case_id, plan)

    def take(self, busy: Container[UUID]) -> tuple[UUID, Step, Plan]:
        """Removes and returns the earliest step of a case not in `busy`, letting cases arrive on
        the way, for a driver that carries out steps of several cases at once (`infra.live_traffic`).

        Time is only an order here: the clock is not moved. Hand the plan back to `resume` with its
        next step once the step is done; until then the case is the caller's (keep it in `busy`).
        """
        skipped = []
        try:
            while True:  # the next arrival is always queued, so this ends
                entry = heapq.heappop(self._queue)
                at, _, case_id, step, plan = entry
                if plan is None:
                    self._arrive(at)
                elif case_id is not None and case_id not in busy:
                    assert step is not None
                    self.events += 1
                    return case_id, step, plan
                else:
                    skipped.append(entry)
        finally:
            for entry in skipped:
                heapq.heappush(self._queue, entry)

    def resume(self, case_id: UUID, plan: Plan, head: tuple[datetime, Step] | None) -> None:
        """Queues `head`, the plan's next step (drawn by the caller), or ends the case (None)."""
        if head is None:
            self.driver.finished(case_id)
            return
        at, step = head
        heapq.heappush(self._queue, (at, next(self._seq), case_id, step, plan))

    @property
    def next_at(self) -> datetime | None:
        return self._queue[0][0] if self._queue else None

    def _arrive(self, at: datetime) -> None:
        key = f"{self.key_prefix}:{self.cases}"
        case_id = Case.id_for(key)
        self.cases += 1
        self._advance(case_id, self.paths.case(case_id, key, at))
        heapq.heappush(self._queue, (self._next_arrival(at), next(self._seq), None, None, None))

    def _next_arrival(self, at: datetime) -> datetime:
        """Poisson arrivals, a fifth as many at night (22:00–07:00) as by day, by thinning: the
        mean rate stays one case per `mean_gap` whatever the gap's length."""
        while True:
            at += self.mean_gap * (DAY_SHARE * self.rng.expovariate(1.0))
            night = not 7 <= at.astimezone(CHINA_TZ).hour < 22
            if not night or self.rng.random() < NIGHT_RATE:
                return at

    def _advance(self, case_id: UUID, plan: Plan) -> None:
        self.resume(case_id, plan, next(plan, None))


# --- the drivers -------------------------------------------------------------------------------


class CommandDriver:
    """Each step is one `CaseService` command, on the service's own (manual) clock."""

    def __init__(self, service: CaseService) -> None:
        self.service = service

    def execute(self, case_id: UUID, step: Step) -> None:
        getattr(self.service, step.name)(*_target(case_id, step), step.actor, **step.kwargs)

    def state(self, case_id: UUID) -> Json:
        return self.service.case(case_id)

    def finished(self, case_id: UUID) -> None:
        pass

    def flush(self) -> None:
        pass


def _target(case_id: UUID, step: Step) -> tuple[UUID, ...]:
    """`report` creates the case (its id comes from the idempotency key); the rest act on one."""
    return () if step.name == "report" else (case_id,)


class BulkDriver:
    """The same commands on `Case` aggregates held in memory, saved ~100 cases per transaction.

    The glue `CaseService` adds around each aggregate method (the duty item of the whistle's
    version, the working calendar) is taken from the service's public parts; the duty list must not
    be revised while it runs (the simulator never revises it).
    """

    def __init__(
        self, service: CaseService, clock: ManualClock, per_save: int = BULK_CASES_PER_SAVE
    ) -> None:
        self.service = service
        self.clock = clock
        self.per_save = per_save
        version, items = service.duty_items(clock.now())
        self.version = version
        self.items = {item.code: item for item in items}
        self.cases: dict[UUID, Case] = {}
        self.touched: dict[UUID, Case] = {}
        self.done: list[UUID] = []
        self.saved = 0

    def execute(self, case_id: UUID, step: Step) -> None:
        at, kwargs = self.clock.now(), dict(step.kwargs)
        if step.name == "report":
            case = self._report(step.actor, at, kwargs)
            self.cases[case_id] = case
        else:
            case = self.cases[case_id]
            self._command(case, step.name, step.actor, at, kwargs)
        self.touched[case_id] = case
        if len(self.touched) >= self.per_save:
            self.flush()

    def _report(self, actor: Actor, at: datetime, kwargs: Json) -> Case:
        self.service.reference.check_location(kwargs["street"], kwargs["community"], kwargs["grid"])
        case_id = Case.id_for(kwargs.pop("idempotency_key"))
        return Case.report(actor, at, case_id=case_id, **kwargs)

    def _command(self, case: Case, name: str, actor: Actor, at: datetime, kwargs: Json) -> None:
        """Calls the aggregate's method with what the service's method of that name would add."""
        item = self.items.get(case.duty_item or "")
        calendar = self.service.calendar
        if name == "whistle":
            code = kwargs.pop("duty_item")
            kwargs.update(
                item=self.items[code] if code else None,
                duty_list_version=self.version,
                urgency=Urgency(kwargs["urgency"]),
                calendar=calendar,
            )
        elif name in ("hand_off", "determine_responsibility"):
            kwargs["item"] = item
        elif name in ("send_back_for_rework", "reopen"):
            kwargs.update(item=item, calendar=calendar)
        elif name == "reject" and kwargs.get("duplicate_of") is not None:
            kwargs["duplicate_of"] = str(kwargs["duplicate_of"])
        method = "close" if name == "close_case" else name
        getattr(case, method)(actor, at, **kwargs)

    def state(self, case_id: UUID) -> Json:
        return self.cases[case_id].public_state()

    def finished(self, case_id: UUID) -> None:
        self.done.append(case_id)

    def flush(self) -> None:
        """Saves every case with new events in one transaction; forgets the finished ones."""
        if self.touched:
            self.service.save(*self.touched.values())
            self.saved += len(self.touched)
            self.touched.clear()
        for case_id in self.done:
            del self.cases[case_id]
        self.done.clear()


# --- the two ways to run it ----------------------------------------------------------------------


def command_traffic(
    service: CaseService, seed: int, *, expected_events: int = 1_000_000, sla: bool = True
) -> Simulation:
    """Realistic traffic through `CaseService`, one command at a time; the service's clock must be a
    `ManualClock` (the simulation moves it to each step's time)."""
    clock = service.clock
    if not isinstance(clock, ManualClock):
        raise TypeError("the simulation drives the service's clock: give it a ManualClock")
    return Simulation(
        CommandDriver(service), service, clock, seed, expected_events=expected_events, sla=sla
    )


def bulk_traffic(
    service: CaseService, seed: int, *, expected_events: int = 1_000_000, sla: bool = True
) -> Simulation:
    """The same traffic, saved ~100 cases per transaction: for building large corpora fast."""
    clock = service.clock
    if not isinstance(clock, ManualClock):
        raise TypeError("the simulation drives the service's clock: give it a ManualClock")
    driver = BulkDriver(service, clock)
    return Simulation(driver, service, clock, seed, expected_events=expected_events, sla=sla)


def simulation_clock() -> ManualClock:
    """A clock at the start of the simulated year (give it to the service before publishing)."""
    return ManualClock(SIM_START)


# --- history for a running system ----------------------------------------------------------------


@dataclass(frozen=True)
class Backfill:
    """What a backfill wrote: commands (one event each), cases, the period, and what was refused."""

    events: int
    cases: int
    start: datetime
    end: datetime
    refused: dict[str, int]

    def summary(self) -> str:
        refused = ", ".join(f"{n}× {what}" for what, n in sorted(self.refused.items()))
        return (
            f"backfill: {self.events} events, {self.cases} cases, "
            f"{self.start.astimezone(CHINA_TZ):%Y-%m-%d %H:%M} → "
            f"{self.end.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}"
            + (f"; refused {refused}" if refused else "")
        )


def backfill(
    settings: Settings,
    seed: int,
    days: float,
    *,
    end: datetime,
    cases_per_day: float = BACKFILL_CASES_PER_DAY,
    progress: Callable[[datetime], None] | None = None,
) -> Backfill:
    """Writes the history of the `days` before `end` through `CaseService`, on a manual clock.

    Safe beside a running system: it opens its own service on the configured store (the relay
    picks up what it saves by notification id, as any writer's), publishes the duty list only if
    the store has none, and reports under keys naming the seed and the start, so its cases are
    its own; a command the live system made illegal meanwhile (its SLA clock acting on a case) is
    counted, and that case's path ends. Paths still open at `end` stay open: cases in progress.
    The same seed, days and end give the same events.
    """
    start = end - timedelta(days=days)
    clock = ManualClock(start)
    service = open_service(settings, clock)
    try:
        service.publish_duty_list()
        simulation = Simulation(
            CommandDriver(service),
            service,
            clock,
            seed,
            start=start,
            cases_per_day=cases_per_day,
            key_prefix=f"backfill:{seed}:{start.astimezone(CHINA_TZ):%Y%m%dT%H%M%S}",
            tolerate=True,
        )
        events = simulation.run_until(end, progress)
        return Backfill(events, simulation.cases, start, end, dict(simulation.refused))
    finally:
        service.close()
