"""linkage's fold over dept_performance's scripted fortnight, against hand-computed cells.

Each case of the script sits in its own community of 建外, so a cell (street, department, community)
shows one case. Case C is followed step by step: whistled to cgzf with zj; handed off to ghzr and
determined back; closed; reopened; closed again. Case E is cancelled after its whistle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection

from domain.actors import Actor
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from projections import base
from projections.linkage import CELL_KEYS, CaseState, Linkage, fold, linkage_cells, reported_state
from projections.rollup import Deltas
from tests.integration.projections.support import RelayLike
from tests.unit.builders import fold_cases
from tests.unit.test_dept_performance_fold import CUT, run_script, t

Cells = dict[tuple[str, str], dict[str, float]]


def cell(
    open_cases: int = 0, closed_cases: int = 0, responded: int = 0, seconds: float = 0
) -> dict[str, float]:
    found = {
        "open_cases": open_cases,
        "closed_cases": closed_cases,
        "responded": responded,
        "response_seconds": seconds,
    }
    return {k: v for k, v in found.items() if v}


#: Every cell with something in it at the end of the script, as {(community, department): …}.
FINAL: Cells = {
    ("jianwai_c01", "cgzf"): cell(closed_cases=1, responded=1, seconds=7200),
    ("jianwai_c01", "zj"): cell(closed_cases=1, responded=1, seconds=1800),
    ("jianwai_c02", "cgzf"): cell(closed_cases=1, responded=1, seconds=27 * 3600),
    ("jianwai_c03", "cgzf"): cell(closed_cases=1, responded=1, seconds=6 * 3600),
    ("jianwai_c03", "zj"): cell(closed_cases=1, responded=1, seconds=3600),
    ("jianwai_c04", "ghzr"): cell(open_cases=1, responded=1, seconds=7200),
    ("jianwai_c05", "cgw"): cell(open_cases=1, responded=1, seconds=1800),
}

#: At the script's cut (case C closed the first time, B still open, D1, D2 and E not reported).
AT_CUT: Cells = {
    ("jianwai_c01", "cgzf"): cell(closed_cases=1, responded=1, seconds=7200),
    ("jianwai_c01", "zj"): cell(closed_cases=1, responded=1, seconds=1800),
    ("jianwai_c02", "cgzf"): cell(open_cases=1, responded=1, seconds=27 * 3600),
    ("jianwai_c03", "cgzf"): cell(closed_cases=1, responded=1, seconds=6 * 3600),
    ("jianwai_c03", "zj"): cell(closed_cases=1, responded=1, seconds=3600),
}

#: Case C's cells (community jianwai_c03) after each of its steps that moves them.
C_STEPS: list[tuple[datetime, Cells]] = [
    (t(4, 1, 10), {("c03", "cgzf"): cell(open_cases=1), ("c03", "zj"): cell(open_cases=1)}),
    (
        t(4, 3, 10),  # zj reported in after an hour; cgzf handed off to ghzr
        {
            ("c03", "ghzr"): cell(open_cases=1),
            ("c03", "zj"): cell(open_cases=1, responded=1, seconds=3600),
        },
    ),
    (
        t(4, 6, 10),  # determined back to cgzf, the sender
        {
            ("c03", "cgzf"): cell(open_cases=1),
            ("c03", "zj"): cell(open_cases=1, responded=1, seconds=3600),
        },
    ),
    (
        t(6, 3, 0),  # reported in, handled, sent back, handled again, closed
        {
            ("c03", "cgzf"): cell(closed_cases=1, responded=1, seconds=6 * 3600),
            ("c03", "zj"): cell(closed_cases=1, responded=1, seconds=3600),
        },
    ),
    (
        t(6, 5, 0),  # reopened by the unsatisfied resident
        {
            ("c03", "cgzf"): cell(open_cases=1, responded=1, seconds=6 * 3600),
            ("c03", "zj"): cell(open_cases=1, responded=1, seconds=3600),
        },
    ),
]


def fold_all(envelopes: list[EventEnvelope]) -> tuple[dict[str, CaseState], Deltas]:
    deltas = Deltas(linkage_cells, CELL_KEYS)
    return fold_cases(envelopes, reported_state, fold, deltas), deltas


def cells(deltas: Deltas) -> Cells:
    """Non-empty cells as {(community, department): non-zero values}; the street is always 建外."""
    found: Cells = {}
    for (street, department, community), row in deltas.rows.items():
        assert street == "jianwai"
        assert all(v >= 0 for v in row.values()), (community, department, row)
        if any(row.values()):
            found[(community, department)] = {k: v for k, v in row.items() if v}
    return found


def rows_of(rows: list[dict[str, Any]]) -> Cells:
    """linkage_cells rows in the same shape (for the integration test)."""
    found: Cells = {}
    for row in rows:
        assert row["street"] == "jianwai"
        values = {k: v for k, v in row.items() if k not in CELL_KEYS and v}
        if values:
            found[(row["community"], row["department"])] = values
    return found


def test_the_script_gives_the_hand_computed_cells(
    service: CaseService, actors: dict[str, Actor]
) -> None:
    cases: dict[str, UUID] = {}
    run_script(service, actors, cases, until=CUT)
    relay = RelayLike(service)
    first = relay.new_envelopes()
    assert cells(fold_all(first)[1]) == AT_CUT
    run_script(service, actors, cases, after=CUT)
    states, deltas = fold_all(first + relay.new_envelopes())
    assert cells(deltas) == FINAL
    for case_id, state in states.items():
        aggregate = service.case(UUID(case_id))
        assert {d: m["active"] for d, m in state.members.items()} == {
            d: o["active"] for d, o in aggregate["obligations"].items()
        }
        open_case = aggregate["status"] in ("whistled", "disputed", "in_handling", "handled")
        assert {d: m["counted_open"] for d, m in state.members.items()} == {
            d: o["active"] and open_case for d, o in aggregate["obligations"].items()
        }
    cancelled = states[str(cases["E"])]
    assert cancelled.case["state"] == "ended"
    assert cancelled.case["community"] == ""


def test_a_case_moves_between_cells_as_it_goes(
    service: CaseService, actors: dict[str, Actor]
) -> None:
    cases: dict[str, UUID] = {}
    relay, envelopes, done = RelayLike(service), [], None
    for until, expected in C_STEPS:
        run_script(service, actors, cases, after=done, until=until)
        done = until
        envelopes += relay.new_envelopes()
        in_c = {
            ("c03", d): v
            for (c, d), v in cells(fold_all(envelopes)[1]).items()
            if c.endswith("c03")
        }
        assert in_c == expected, until
    run_script(service, actors, cases, after=done, until=t(12, 1, 10))
    envelopes += relay.new_envelopes()
    whistled = {k: v for k, v in cells(fold_all(envelopes)[1]).items() if k[0] == ""}
    assert whistled == {("", "cgzf"): cell(open_cases=1), ("", "zj"): cell(open_cases=1)}
    run_script(service, actors, cases, after=t(12, 1, 10))
    envelopes += relay.new_envelopes()
    assert not [k for k in cells(fold_all(envelopes)[1]) if k[0] == ""], "cancelled: no cell"


def test_repeats_unknown_events_and_the_duty_list_change_nothing(
    service: CaseService, actors: dict[str, Actor]
) -> None:
    run_script(service, actors, {})
    envelopes = RelayLike(service).new_envelopes()
    states, deltas = fold_all(envelopes)
    before = {key: dict(row) for key, row in deltas.rows.items()}
    for envelope in envelopes:
        if envelope.aggregate == "case" and envelope.event_type != "CaseReported":
            assert fold(states[envelope.aggregate_id], envelope, deltas)
    assert deltas.rows == before
    projection = Linkage()
    no_db, context = cast(Connection, None), cast(base.ApplyContext, None)
    duty_list = next(e for e in envelopes if e.aggregate != "case")
    assert not projection.apply(no_db, duty_list, context)
    last = envelopes[-1]
    unknown = EventEnvelope(
        last.notification_id + 1,
        "whistleloop.case.SomethingNew",
        last.aggregate_id,
        last.version + 1,
        last.timestamp,
        last.actor,
        {},
        last.street,
    )
    assert not projection.apply(no_db, unknown, context)
    assert not fold(states[last.aggregate_id], unknown, deltas)
