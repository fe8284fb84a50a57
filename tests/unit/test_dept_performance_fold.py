"""dept_performance's fold, on the envelopes a real CaseService records, against hand-computed counts.

`SCRIPT` is a fortnight of six cases in 建外 (one community each, so each case's counters sit in rows
of their own): on time with an assisting department; late after a recorded miss, with the three
supervision colours and an escalation, whistled ten minutes before Beijing midnight; a hand-off
disputed and determined back to its sender, rework after a handling report late at night, a reopen
on the rework's day (the same handling deadline as text) and both ratings; a determination against
the disputer; a determination naming a department new to the case; an emergency whistle outside the
duty list, then cancelled. Times are UTC; a day is the Beijing date (UTC+8). The integration tests
run the same script through the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import combinations
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from projections import base
from projections.dept_performance import (
    DAILY_KEYS,
    CaseState,
    DeptPerformance,
    fold,
    perf_daily,
    reported_state,
)
from projections.rollup import Deltas, china_day
from tests.integration.builders import report_case
from tests.integration.projections.support import RelayLike
from tests.unit.builders import dept, fold_cases

Command = Callable[[CaseService, UUID], object]
Step = tuple[datetime, str, Command]


def t(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in March 2026, UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


#: Where the script is cut in two for the incremental runs (after case C's first rating).
CUT = t(6, 4, 30)

COMMUNITY = {"A": "jianwai_c01", "B": "jianwai_c02", "C": "jianwai_c03"}
COMMUNITY |= {"D1": "jianwai_c04", "D2": "jianwai_c05", "E": ""}


def reported(service: CaseService, case_id: UUID) -> None:
    """A case's first step: `run_script` reports it (in its own community) instead."""
    raise AssertionError("run_script reports the case itself")


def script(actors: dict[str, Actor]) -> list[Step]:
    street, centre, system = actors["street"], actors["centre"], actors["system"]
    resident, inspector = actors["resident"], actors["inspector"]

    def whistle(lead: str, *assisting: str) -> Command:
        return lambda s, c: s.whistle(c, street, lead=lead, assisting=assisting, duty_item="CG-001")

    def report_in(code: str) -> Command:
        return lambda s, c: s.report_in(c, dept(code), "on_site")

    def hand_off(to: str) -> Command:
        return lambda s, c: s.hand_off(c, dept("cgzf"), to, "属规划许可问题")

    def determine(code: str) -> Command:
        return lambda s, c: s.determine_responsibility(c, centre, code, "依职责清单")

    def handled(code: str = "cgzf") -> Command:
        return lambda s, c: s.report_handling(c, dept(code), "resolved")

    accept: Command = lambda s, c: s.accept(c, street)  # noqa: E731
    close: Command = lambda s, c: s.close_case(c, street)  # noqa: E731
    dispute: Command = lambda s, c: s.dispute_hand_off(c, dept("ghzr"), "不属本部门")  # noqa: E731
    return [
        # A: on time, cgzf leading with zj assisting.
        (t(2, 1, 0), "A", reported),
        (t(2, 1, 10), "A", accept),
        (t(2, 1, 20), "A", whistle("cgzf", "zj")),
        (t(2, 1, 50), "A", report_in("zj")),  # 30 min
        (t(2, 3, 20), "A", report_in("cgzf")),  # 2 h
        (t(3, 2, 0), "A", handled()),
        (t(3, 3, 0), "A", close),
        (t(3, 4, 0), "A", lambda s, c: s.rate_by_resident(c, resident, "satisfied", True)),
        (t(3, 5, 0), "A", lambda s, c: s.rate_by_street(c, street, {"cgzf": 80, "zj": 90})),
        # B: whistled 23:50 Beijing; white warning, miss, yellow, red, escalation; late everything.
        (t(2, 15, 0), "B", reported),
        (t(2, 15, 10), "B", accept),
        (t(2, 15, 50), "B", whistle("cgzf")),  # respond by t(3, 15, 50); handle by t(9, 16)
        (
            t(3, 10, 0),
            "B",
            lambda s, c: s.issue_supervision(c, system, "white", "cgzf", "即将超期", "response"),
        ),
        (
            t(3, 16, 30),
            "B",
            lambda s, c: s.record_deadline_missed(c, system, "cgzf", "response"),
        ),
        (
            t(3, 16, 40),
            "B",
            lambda s, c: s.issue_supervision(c, system, "yellow", "cgzf", "超期未报到", "response"),
        ),
        (t(3, 17, 0), "B", lambda s, c: s.issue_supervision(c, inspector, "red", "cgzf", "严重")),
        (t(3, 17, 10), "B", lambda s, c: s.escalate_to_district(c, street, "cgzf", "超期未报到")),
        (t(3, 18, 50), "B", report_in("cgzf")),  # 27 h
        (
            t(9, 16, 30),
            "B",
            lambda s, c: s.record_deadline_missed(c, system, "cgzf", "handling"),
        ),
        (t(10, 1, 0), "B", handled()),
        (t(10, 2, 0), "B", close),
        # C: hand-off disputed, determined back to the sender; rework; close; reopen; close.
        (t(4, 1, 0), "C", reported),
        (t(4, 1, 5), "C", accept),
        (t(4, 1, 10), "C", whistle("cgzf", "zj")),
        (t(4, 2, 10), "C", report_in("zj")),  # 1 h
        (t(4, 3, 10), "C", hand_off("ghzr")),
        (t(4, 4, 10), "C", dispute),
        (t(4, 6, 10), "C", determine("cgzf")),
        (t(4, 7, 10), "C", report_in("cgzf")),  # 6 h after the whistle
        (t(5, 15, 0), "C", handled()),  # 23:00 Beijing, Mar 5
        (t(5, 17, 0), "C", lambda s, c: s.send_back_for_rework(c, street, "现场仍有残留")),
        (t(6, 2, 0), "C", handled()),
        (t(6, 3, 0), "C", close),
        (t(6, 4, 0), "C", lambda s, c: s.rate_by_resident(c, resident, "unsatisfied", False)),
        (t(6, 5, 0), "C", lambda s, c: s.reopen(c, resident, "又复发了")),
        (t(9, 2, 0), "C", handled()),
        (t(9, 3, 0), "C", close),
        (
            t(9, 4, 0),
            "C",
            lambda s, c: s.rate_by_resident(c, resident, "basically_satisfied", True),
        ),
        (
            t(9, 5, 0),
            "C",
            lambda s, c: s.rate_by_street(c, street, {"cgzf": 70, "zj": 60, "ghzr": 50}),
        ),
        # D1: the disputer loses.
        (t(10, 1, 0), "D1", reported),
        (t(10, 1, 5), "D1", accept),
        (t(10, 1, 10), "D1", whistle("cgzf")),
        (t(10, 2, 10), "D1", hand_off("ghzr")),
        (t(10, 2, 40), "D1", dispute),
        (t(10, 3, 10), "D1", determine("ghzr")),
        (t(10, 4, 10), "D1", report_in("ghzr")),  # 2 h after the hand-off
        # D2: determined to a department new to the case.
        (t(11, 1, 0), "D2", reported),
        (t(11, 1, 5), "D2", accept),
        (t(11, 1, 10), "D2", whistle("cgzf")),
        (t(11, 2, 10), "D2", hand_off("ghzr")),
        (t(11, 2, 20), "D2", dispute),
        (t(11, 3, 10), "D2", determine("cgw")),
        (t(11, 3, 40), "D2", report_in("cgw")),  # 30 min after the determination
        # E: an emergency outside the duty list, no community; cancelled after the whistle.
        (t(12, 1, 0), "E", reported),
        (t(12, 1, 5), "E", accept),
        (
            t(12, 1, 10),
            "E",
            lambda s, c: s.whistle(
                c,
                street,
                lead="cgzf",
                assisting=("zj",),
                urgency="emergency",
                justification="燃气泄漏，先行处置",
            ),
        ),
        (t(12, 2, 0), "E", lambda s, c: s.cancel(c, street, "已由燃气公司处置")),
    ]


def run_script(
    service: CaseService,
    actors: dict[str, Actor],
    cases: dict[str, UUID],
    *,
    after: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, UUID]:
    """Runs the steps in (after, until] in time order; a case's first step is its report."""
    clock = cast(ManualClock, service.clock)
    for at, name, command in sorted(script(actors), key=lambda step: step[0]):
        if (after and at <= after) or (until and at > until):
            continue
        clock.set(at)
        if command is reported:
            community = COMMUNITY[name] or None
            cases[name] = report_case(service, actors, community=community, grid=None)
        else:
            command(service, cases[name])
    return cases


# --- what the script must give, by hand -----------------------------------------------------------


def ones(names: str, **sums: float) -> dict[str, float]:
    """Counters: each of `names` at 1, and the sums given."""
    return dict.fromkeys(names.split(), 1.0) | sums


D = "2026-03-"
#: Non-zero counters per (community, day, department); street 建外, duty item CG-001 unless E.
EXPECTED: dict[tuple[str, str, str], dict[str, float]] = {
    ("jianwai_c01", D + "02", "cgzf"): ones(
        "received responded rb_2 response_on_time response_due", response_seconds=7200
    ),
    ("jianwai_c01", D + "02", "zj"): ones(
        "received responded rb_0 response_on_time response_due", response_seconds=1800
    ),
    ("jianwai_c01", D + "03", "cgzf"): ones(
        "handled handling_done handling_due handling_on_time closed closed_on_time"
        " rated rated_solved satisfied street_score_count",
        street_score_sum=80,
    ),
    ("jianwai_c01", D + "03", "zj"): ones("street_score_count", street_score_sum=90),
    # B: the response counters sit on the whistle's day (Mar 2 in Beijing), the cohort.
    ("jianwai_c02", D + "02", "cgzf"): ones(
        "received responded rb_7 response_due", response_seconds=27 * 3600
    ),
    ("jianwai_c02", D + "03", "cgzf"): ones("supervision_white"),
    ("jianwai_c02", D + "04", "cgzf"): ones(
        "deadlines_missed supervision_yellow supervision_red escalations"
    ),
    ("jianwai_c02", D + "10", "cgzf"): ones(
        "deadlines_missed handling_due handled handling_done closed"
    ),
    ("jianwai_c03", D + "04", "zj"): ones(
        "received responded rb_1 response_on_time response_due", response_seconds=3600
    ),
    ("jianwai_c03", D + "04", "cgzf"): ones(
        "received handoffs_out disputes_lost responded rb_4 response_due response_on_time",
        response_seconds=6 * 3600,
    ),
    ("jianwai_c03", D + "04", "ghzr"): ones("received"),
    # Sent back on Mar 6 (Beijing), booked on Mar 5, the day of the report it sends back.
    ("jianwai_c03", D + "05", "cgzf"): ones(
        "handled handling_done handling_due handling_on_time sent_back"
    ),
    ("jianwai_c03", D + "06", "cgzf"): ones(
        "handled handling_done handling_due handling_on_time closed closed_on_time rated"
    ),
    ("jianwai_c03", D + "09", "cgzf"): ones(
        "handled handling_done handling_due handling_on_time closed closed_on_time"
        " rated rated_solved basically_satisfied street_score_count",
        street_score_sum=70,
    ),
    ("jianwai_c03", D + "09", "zj"): ones("street_score_count", street_score_sum=60),
    ("jianwai_c03", D + "09", "ghzr"): ones("street_score_count", street_score_sum=50),
    ("jianwai_c04", D + "10", "cgzf"): ones("received handoffs_out"),
    ("jianwai_c04", D + "10", "ghzr"): ones(
        "received disputes_lost responded rb_2 response_due response_on_time", response_seconds=7200
    ),
    ("jianwai_c05", D + "11", "cgzf"): ones("received handoffs_out"),
    ("jianwai_c05", D + "11", "ghzr"): ones("received"),
    ("jianwai_c05", D + "11", "cgw"): ones(
        "received responded rb_0 response_due response_on_time", response_seconds=1800
    ),
    ("", D + "12", "cgzf"): ones("received"),
    ("", D + "12", "zj"): ones("received"),
}


def nonzero(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, float]]:
    """perf_daily rows as {(community, day, department): their non-zero counters}."""
    found = {}
    for row in rows:
        duty_item = "" if row["community"] == "" else "CG-001"
        assert (row["street"], row["duty_item"]) == ("jianwai", duty_item), row
        key = (row["community"], row["day"], row["department"])
        assert key not in found
        found[key] = {k: v for k, v in row.items() if k not in DAILY_KEYS and v}
    return found


def fold_all(envelopes: list[EventEnvelope]) -> tuple[dict[str, CaseState], Deltas]:
    """The pure fold over a run of envelopes, as the projection does it within one batch."""
    deltas = Deltas(perf_daily, DAILY_KEYS)
    return fold_cases(envelopes, reported_state, fold, deltas), deltas


def delta_rows(deltas: Deltas) -> list[dict[str, Any]]:
    return [dict(zip(DAILY_KEYS, key, strict=True)) | row for key, row in deltas.rows.items()]


def scripted(service: CaseService, actors: dict[str, Actor]) -> list[EventEnvelope]:
    run_script(service, actors, {})
    return RelayLike(service).new_envelopes()


def test_the_script_gives_the_hand_computed_counters(
    service: CaseService, actors: dict[str, Actor]
) -> None:
    _states, deltas = fold_all(scripted(service, actors))
    assert nonzero(delta_rows(deltas)) == EXPECTED


def test_counts_are_bounded_in_every_period(service: CaseService, actors: dict[str, Actor]) -> None:
    """responded ≤ received, sent_back ≤ handled, on time ≤ due: for every department and period."""
    _states, deltas = fold_all(scripted(service, actors))
    days = sorted({key[0] for key in deltas.rows})
    for first, last in [(d, d) for d in days] + list(combinations(days, 2)):
        for department in ("cgzf", "zj", "ghzr", "cgw"):
            total: dict[str, float] = {}
            for key, row in deltas.rows.items():
                if first <= key[0] <= last and key[1] == department:
                    for column, value in row.items():
                        total[column] = total.get(column, 0) + value
            if not total:
                continue
            assert total["responded"] <= total["received"], (first, last, department)
            assert total["sent_back"] <= total["handled"]
            assert total["response_on_time"] <= total["response_due"]
            assert total["handling_on_time"] <= total["handling_due"]
            assert total["handling_done"] <= total["handled"]


def test_obligation_and_case_rows_follow_the_aggregate(
    service: CaseService, actors: dict[str, Actor]
) -> None:
    cases = run_script(service, actors, {})
    states, _deltas = fold_all(RelayLike(service).new_envelopes())
    late = states[str(cases["B"])].obligations["cgzf"]
    assert (late["start_day"], late["response_counted"], late["response_seconds"]) == (
        "2026-03-02",
        True,
        27 * 3600.0,
    )
    assert late["reported_in_at"] == "2026-03-03T18:50:00.000000Z"
    disputed = states[str(cases["C"])]
    assert {d: (o["role"], o["active"]) for d, o in disputed.obligations.items()} == {
        "cgzf": ("lead", True),
        "zj": ("assisting", True),
        "ghzr": ("lead", False),
    }
    assert (disputed.case["status"], disputed.case["lead_department"]) == ("closed", "cgzf")
    assert disputed.case["handling_counted_for"] == disputed.case["handling_deadline"]
    new_lead = states[str(cases["D2"])]
    assert new_lead.obligations["cgw"]["started_at"] == "2026-03-11T03:10:00.000000Z"
    assert [o["active"] for o in new_lead.obligations.values()] == [False, False, True]
    for name, state in states.items():
        aggregate = service.case(UUID(name))
        assert state.case["status"] == aggregate["status"]
        assert state.case["version"] == aggregate["version"]
        assert {d: o["active"] for d, o in state.obligations.items()} == {
            d: o["active"] for d, o in aggregate["obligations"].items()
        }


def test_a_repeated_event_changes_nothing(service: CaseService, actors: dict[str, Actor]) -> None:
    envelopes = scripted(service, actors)
    states, deltas = fold_all(envelopes)
    before = {key: dict(row) for key, row in deltas.rows.items()}
    for envelope in envelopes:
        if envelope.aggregate == "case" and envelope.event_type != "CaseReported":
            assert fold(states[envelope.aggregate_id], envelope, deltas)
    assert deltas.rows == before


def test_unknown_events_and_the_duty_list_are_not_handled(
    service: CaseService, actors: dict[str, Actor]
) -> None:
    envelopes = scripted(service, actors)
    duty_list = [e for e in envelopes if e.aggregate != "case"]
    assert duty_list, "the service publishes its duty list"
    projection = DeptPerformance()
    no_db = cast(Connection, None)  # neither needs the database: both are refused up front
    context = cast(base.ApplyContext, None)
    assert not projection.apply(no_db, duty_list[0], context)
    whistled = next(e for e in envelopes if e.event_type == "Whistled")
    unknown = EventEnvelope(
        notification_id=whistled.notification_id,
        topic="whistleloop.case.SomethingNew",
        aggregate_id=whistled.aggregate_id,
        version=whistled.version + 100,
        timestamp=whistled.timestamp,
        actor=whistled.actor,
        payload={},
        street=whistled.street,
    )
    assert not projection.apply(no_db, unknown, context)
    states, deltas = fold_all([e for e in envelopes if e.aggregate_id == whistled.aggregate_id])
    assert not fold(states[whistled.aggregate_id], unknown, deltas)


def test_a_day_is_the_beijing_date() -> None:
    assert china_day("2026-03-02T15:59:59.999999Z") == "2026-03-02"
    assert china_day("2026-03-02T16:00:00.000000Z") == "2026-03-03"
    assert china_day("2026-12-31T16:00:00.000000Z") == "2027-01-01"
