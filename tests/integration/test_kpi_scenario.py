"""The measures of DOMAIN.md, end to end, against numbers worked out by hand from kpi_scenario.py.

The scenario's 33 cases are stored through `CaseService`, published to a real NATS as the relay
would, folded by the real runner into case_board, dept_performance, linkage and deadlines (SQLite and
PostgreSQL views), then read back through `projections.queries`. Every expected number below is a
literal with the arithmetic that gives it; none is computed by the code under test.

"Now" for snapshots is Wed Apr 22 12:00 Beijing. Open deadline rows then: C13 cgzf handling (due
Apr 21 00:00, overdue), C14 cgzf response (Apr 21 10:00, overdue) and handling (Apr 28), C26 zj
response (Apr 18 10:00, overdue) and handling (Apr 23), C25 ghzr handling (Apr 25; its response is
paused by the dispute), C32 ghzr response (Apr 23 09:30) and handling.
"""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine

from domain.service import CaseService
from projections.base import Projection
from projections.case_board import CaseBoard
from projections.deadlines import Deadlines
from projections.dept_performance import DeptPerformance
from projections.linkage import Linkage
from projections.queries import (
    Period,
    department_performance,
    linkage_matrix,
    measures_by,
    overview,
    performance_ranking,
    supervision_board,
)
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.kpi_scenario import NOW, build
from tests.integration.projections.support import RelayLike, eventually, reached, running

# The projection tests' fixtures, shared with these tests (they live one level down).

pytestmark = pytest.mark.asyncio

OPTIONS = RunnerOptions(batch=50, fetch_timeout=0.2)
MARCH, APRIL = Period.month("2026-03"), Period.month("2026-04")

COUNTS = (
    *("received", "responded", "response_on_time", "response_due"),
    *("handled", "handling_on_time", "handling_due", "handling_done", "sent_back"),
    *("closed", "closed_on_time", "rated", "rated_solved", "satisfied", "basically_satisfied"),
    *("street_score_count", "handoffs_out", "disputes_lost"),
    *("supervision_white", "supervision_yellow", "supervision_red", "escalations"),
    *("deadlines_missed", "open_obligations", "open_overdue", "open_handling"),
    "open_handling_overdue",
)


def counts(**nonzero: int) -> dict[str, int]:
    return {name: nonzero.get(name, 0) for name in COUNTS}


def histogram(**buckets: int) -> list[int]:
    return [buckets.get(f"rb_{i}", 0) for i in range(11)]


async def project(nc: Client, engine: Engine, service: CaseService) -> None:
    build().run(service, service.clock)  # type: ignore[arg-type]
    envelopes = await RelayLike(service).publish_new(nc.jetstream())
    projections: list[Projection] = [CaseBoard(), DeptPerformance(), Linkage(), Deadlines()]
    runner = ProjectorRunner(nc, engine, projections, OPTIONS)
    async with running(runner):
        for projection in projections:
            await eventually(
                reached(engine, projection.name, envelopes[-1].notification_id),
                f"{projection.name} to catch up",
            )


async def test_every_measure_matches_the_hand_computed_numbers(
    nc: Client, views_engine: Engine, event_store: CaseService
) -> None:
    await project(nc, views_engine, event_store)
    check_cgzf(views_engine)
    check_cgw(views_engine)
    check_zj(views_engine)
    check_by_street(views_engine)
    check_linkage(views_engine)
    check_overview_and_board(views_engine)
    check_ranking(views_engine)


def assert_department(
    engine: Engine,
    department: str,
    period: Period,
    expected_counts: dict[str, int],
    expected_histogram: list[int],
    expected: dict[str, Any],
    flags: tuple[bool, bool, bool],
) -> None:
    got = department_performance(engine, department, period, NOW)
    where = f"{department} {period.first_day}"
    assert {k: got["counts"][k] for k in COUNTS} == expected_counts, where
    assert [b["count"] for b in got["histogram"]] == expected_histogram, where
    assert got["measures"] == pytest.approx(expected), where
    assert tuple(got["flags"].values()) == flags, where


def check_cgzf(engine: Engine) -> None:
    # Snapshot (both periods): rows C13 handling (overdue), C14 response (overdue), C14 handling.
    snapshot = {"open_obligations": 3, "open_overdue": 2, "open_handling": 2}
    snapshot["open_handling_overdue"] = 1
    # March: received C01–C10 + C30 = 11; responded C01 1 h, C02 3 h, C03 30 h, C04 0.5 h,
    # C05 22 h, C07 1 h, C10 50 h = 7 (107.5 h); on time all but C03, C10 = 5 of 7 due.
    # Handled C01, C02, C03×2, C04×2, C05, C07, C10 = 9, all on time; C04 sent back once.
    # Closed C01, C02, C03×2, C04, C05, C07, C10 = 8 on time. Rated C01 satisfied, C02 basically,
    # C03 unsatisfied then satisfied: 4 rated, 3 solved. Street scores 90 (C01) + 80 (C02).
    # Hand-offs C06, C07, C08, C09; dispute lost C07; white C05; yellow C03, C10; escalated C10;
    # missed C03, C10.
    assert_department(
        engine,
        "cgzf",
        MARCH,
        counts(
            received=11,
            responded=7,
            response_on_time=5,
            response_due=7,
            handled=9,
            handling_on_time=9,
            handling_due=9,
            handling_done=9,
            sent_back=1,
            closed=8,
            closed_on_time=8,
            rated=4,
            rated_solved=3,
            satisfied=2,
            basically_satisfied=1,
            street_score_count=2,
            handoffs_out=4,
            disputes_lost=1,
            supervision_white=1,
            supervision_yellow=2,
            escalations=1,
            deadlines_missed=2,
            **snapshot,
        ),
        # 0.5 h → rb_0; 1 h ×2 → rb_1; 3 h → rb_3; 22 h → rb_6; 30 h → rb_7; 50 h → rb_8
        histogram(rb_0=1, rb_1=2, rb_3=1, rb_6=1, rb_7=1, rb_8=1),
        {
            "response_timeliness": 5 / 7,
            "mean_response_hours": 107.5 / 7,
            "p50_response_hours": 3.0,  # rank 3.5 in rb_3 (2–4 h): 2 + 2 × 0.5 / 1
            "p90_response_hours": 55.2,  # rank 6.3 in rb_8 (48–72 h): 48 + 24 × 0.3
            "handling_timeliness": 1.0,  # 9 / 9
            "overdue_rate": 2 / 3,
            "on_time_closure": 1.0,  # 8 / 8
            "rework_rate": 1 / 9,
            "response_rate": 7 / 11,
            "resolution_rate": 3 / 4,
            "satisfaction_rate": 3 / 4,  # (2 + 1) / 4
            "disposal_rate": 1.0,  # 9 done / 9 due
            "overdue_pending_rate": 0.5,  # C13 of C13, C14 handling
            "street_score": 85.0,  # (90 + 80) / 2
            "two_way_score": 82.0,  # (85 × 0.49 + 75 × 0.21) / 0.7
            "composite_index": 790 / 9,  # 30 + 20 + 20 × 8/9 + 20 × 0.5 + 10
        },
        (False, False, False),
    )
    # April: received C11, C12, C13, C14, C19 (assisting) = 5; responded C11 1 h, C12 2 h, C13 2 h,
    # C19 3 h = 4, all on time. Handled C11 (on time, Apr 8 < Apr 9 00:00) and C12 (late);
    # handling due C11, C12 (missed Apr 9), C13 (missed Apr 21) = 3, done 2. Closed C11 on time,
    # C12 late. Rated C11 satisfied solved, C12 unsatisfied. Street score 85 (C19). White C14;
    # red C12, C13 (veto); missed C12, C13.
    assert_department(
        engine,
        "cgzf",
        APRIL,
        counts(
            received=5,
            responded=4,
            response_on_time=4,
            response_due=4,
            handled=2,
            handling_on_time=1,
            handling_due=3,
            handling_done=2,
            closed=2,
            closed_on_time=1,
            rated=2,
            rated_solved=1,
            satisfied=1,
            street_score_count=1,
            supervision_white=1,
            supervision_red=2,
            deadlines_missed=2,
            **snapshot,
        ),
        histogram(rb_1=1, rb_2=2, rb_3=1),
        {
            "response_timeliness": 1.0,
            "mean_response_hours": 2.0,  # (1 + 2 + 2 + 3) / 4
            "p50_response_hours": 1.5,  # rank 2 in rb_2 (1–2 h): 1 + 1 × 1 / 2
            "p90_response_hours": 3.2,  # rank 3.6 in rb_3 (2–4 h): 2 + 2 × 0.6
            "handling_timeliness": 1 / 3,
            "overdue_rate": 2 / 3,
            "on_time_closure": 0.5,
            "rework_rate": 0.0,
            "response_rate": 0.8,
            "resolution_rate": 0.5,
            "satisfaction_rate": 0.5,
            "disposal_rate": 2 / 3,
            "overdue_pending_rate": 0.5,
            "street_score": 85.0,
            "two_way_score": 0.0,  # one-vote veto: red supervisions in April
            "composite_index": 200 / 3,  # 30 × 2/3 + 20 × 1/3 + 20 + 20 × 0.5 + 10
        },
        (True, True, True),
    )


def check_cgw(engine: Engine) -> None:
    # cgw has no open deadline now (C21 is handled, awaiting the check): no overdue rates; the
    # composite counts "nothing pending" as nothing overdue (its term is 20 × (1 − 0)).
    # March: received C06 (hand-off), C15, C16, C17, C18, C23 (assisting) = 6, all responded:
    # 2 h, 1 h, 4 h, 1 h, 3 h, 1 h = 12 h; late only C18 (urgent, 3 h > 2 h) → 5 of 6.
    # Handled C06, C15, C16 (late), C17, C18×2 = 6; C18 sent back. Closed C06, C15, C16 (late),
    # C17, C18 = 5. Rated C15 satisfied solved, C16 unsatisfied, C17 basically unsolved.
    # Street scores 50 (C06), 70 (C15), 40 (C16).
    assert_department(
        engine,
        "cgw",
        MARCH,
        counts(
            received=6,
            responded=6,
            response_on_time=5,
            response_due=6,
            handled=6,
            handling_on_time=5,
            handling_due=6,
            handling_done=6,
            sent_back=1,
            closed=5,
            closed_on_time=4,
            rated=3,
            rated_solved=1,
            satisfied=1,
            basically_satisfied=1,
            street_score_count=3,
        ),
        histogram(rb_1=3, rb_2=1, rb_3=2),
        {
            "response_timeliness": 5 / 6,
            "mean_response_hours": 2.0,  # 12 / 6
            "p50_response_hours": 1.0,  # rank 3 in rb_1 (0.5–1 h): 0.5 + 0.5 × 3 / 3
            "p90_response_hours": 3.4,  # rank 5.4 in rb_3 (2–4 h): 2 + 2 × 1.4 / 2
            "handling_timeliness": 5 / 6,
            "overdue_rate": None,
            "on_time_closure": 0.8,
            "rework_rate": 1 / 6,
            "response_rate": 1.0,
            "resolution_rate": 1 / 3,
            "satisfaction_rate": 2 / 3,
            "disposal_rate": 1.0,
            "overdue_pending_rate": None,
            "street_score": 160 / 3,
            "two_way_score": 172 / 3,  # (160/3 × 0.49 + 200/3 × 0.21) / 0.7
            # 30 × 1 + 20 × 5/6 + 20 × (1 − 1/6) + 20 × (1 − 0) + 10 × (1 − 0) = 280/3
            "composite_index": 280 / 3,
        },
        (True, True, False),  # satisfaction 2/3 < 70 %, score 57.3 < 60
    )
    # April: received C19, C20, C21, C33 = 4, responded 28 h (late, recorded), 1/3 h, 0.5 h, 1 h.
    # Handled C19, C20, C21, C33 on time; closed C19, C20, C33 on time; rated C19, C20 satisfied.
    # Street scores 75 (C19), 90 (C20). White, yellow, missed: C19.
    assert_department(
        engine,
        "cgw",
        APRIL,
        counts(
            received=4,
            responded=4,
            response_on_time=3,
            response_due=4,
            handled=4,
            handling_on_time=4,
            handling_due=4,
            handling_done=4,
            closed=3,
            closed_on_time=3,
            rated=2,
            rated_solved=2,
            satisfied=2,
            street_score_count=2,
            supervision_white=1,
            supervision_yellow=1,
            deadlines_missed=1,
        ),
        histogram(rb_0=2, rb_1=1, rb_7=1),
        {
            "response_timeliness": 0.75,
            "mean_response_hours": 107400 / 4 / 3600,  # (100800 + 1200 + 1800 + 3600) s / 4
            "p50_response_hours": 0.5,  # rank 2 in rb_0 (0–0.5 h): 0.5 × 2 / 2
            "p90_response_hours": 38.4,  # rank 3.6 in rb_7 (24–48 h): 24 + 24 × 0.6
            "handling_timeliness": 1.0,
            "overdue_rate": None,
            "on_time_closure": 1.0,
            "rework_rate": 0.0,
            "response_rate": 1.0,
            "resolution_rate": 1.0,
            "satisfaction_rate": 1.0,
            "disposal_rate": 1.0,
            "overdue_pending_rate": None,
            "street_score": 82.5,
            "two_way_score": 87.75,  # (82.5 × 0.49 + 100 × 0.21) / 0.7
            "composite_index": 100.0,  # 30 + 20 + 20 × (1 − 0) + 20 × (1 − 0) + 10
        },
        (False, False, False),
    )


def check_zj(engine: Engine) -> None:
    # Snapshot: C26 response (overdue) and handling (due Apr 23).
    snapshot = {"open_obligations": 2, "open_overdue": 1, "open_handling": 1}
    # March: received C02 (assisting), C09 (determination), C22, C23 = 4, responded 6 h, 1 h,
    # 2 h, 30 h (C23 late, recorded). Handled C09, C22 on time, C23 late (missed, recorded, red).
    # Closed C09, C22 on time, C23 late. Rated C22 satisfied, C23 basically, both solved.
    # Street scores 70 (C02), 85 (C22).
    assert_department(
        engine,
        "zj",
        MARCH,
        counts(
            received=4,
            responded=4,
            response_on_time=3,
            response_due=4,
            handled=3,
            handling_on_time=2,
            handling_due=3,
            handling_done=3,
            closed=3,
            closed_on_time=2,
            rated=2,
            rated_solved=2,
            satisfied=1,
            basically_satisfied=1,
            street_score_count=2,
            supervision_red=1,
            deadlines_missed=2,
            **snapshot,
        ),
        histogram(rb_1=1, rb_2=1, rb_4=1, rb_7=1),
        {
            "response_timeliness": 0.75,
            "mean_response_hours": 9.75,  # (6 + 1 + 2 + 30) / 4
            "p50_response_hours": 2.0,  # rank 2 in rb_2 (1–2 h): 1 + 1 × 1 / 1
            "p90_response_hours": 38.4,  # rank 3.6 in rb_7 (24–48 h): 24 + 24 × 0.6
            "handling_timeliness": 2 / 3,
            "overdue_rate": 0.5,
            "on_time_closure": 2 / 3,
            "rework_rate": 0.0,
            "response_rate": 1.0,
            "resolution_rate": 1.0,
            "satisfaction_rate": 1.0,
            "disposal_rate": 1.0,
            "overdue_pending_rate": 0.0,
            "street_score": 77.5,
            "two_way_score": 0.0,  # veto: red on C23
            "composite_index": 280 / 3,  # 30 + 20 × 2/3 + 20 + 20 + 10
        },
        (False, True, True),
    )
    # April: received C14 (assisting), C24, C25, C26 = 4; responded C14 3 h, C24 1.75 h (on time);
    # due C14, C24, C26 (missed, recorded) = 3. Handled and closed C24 on time, rated satisfied,
    # street 70. White C24, yellow C26, escalated C26, hand-off C25, missed C26.
    assert_department(
        engine,
        "zj",
        APRIL,
        counts(
            received=4,
            responded=2,
            response_on_time=2,
            response_due=3,
            handled=1,
            handling_on_time=1,
            handling_due=1,
            handling_done=1,
            closed=1,
            closed_on_time=1,
            rated=1,
            rated_solved=1,
            satisfied=1,
            street_score_count=1,
            handoffs_out=1,
            supervision_white=1,
            supervision_yellow=1,
            escalations=1,
            deadlines_missed=1,
            **snapshot,
        ),
        histogram(rb_2=1, rb_3=1),
        {
            "response_timeliness": 2 / 3,
            "mean_response_hours": 2.375,  # (3 + 1.75) / 2
            "p50_response_hours": 2.0,  # rank 1 in rb_2 (1–2 h): 1 + 1 × 1 / 1
            "p90_response_hours": 3.6,  # rank 1.8 in rb_3 (2–4 h): 2 + 2 × 0.8
            "handling_timeliness": 1.0,
            "overdue_rate": 0.5,
            "on_time_closure": 1.0,
            "rework_rate": 0.0,
            "response_rate": 0.5,
            "resolution_rate": 1.0,
            "satisfaction_rate": 1.0,
            "disposal_rate": 1.0,
            "overdue_pending_rate": 0.0,
            "street_score": 70.0,
            "two_way_score": 79.0,  # (70 × 0.49 + 100 × 0.21) / 0.7
            "composite_index": 100.0,
        },
        (False, False, False),
    )


def check_by_street(engine: Engine) -> None:
    rows = {r["key"]: r for r in measures_by(engine, MARCH, NOW, "street")}
    assert set(rows) == {"jianwai", "hujialou"}
    # hujialou in March is cgw's C15–C18: 4 received, 4 responded (1 + 4 + 1 + 3 = 9 h), C18 late;
    # handled C15, C16 (late), C17, C18×2; closed the four, C16 late; rated C15, C16, C17.
    hu = rows["hujialou"]
    assert {k: hu["counts"][k] for k in ("received", "responded", "handled", "closed")} == {
        "received": 4,
        "responded": 4,
        "handled": 5,
        "closed": 4,
    }
    assert hu["measures"]["response_timeliness"] == pytest.approx(3 / 4)
    assert hu["measures"]["mean_response_hours"] == pytest.approx(9 / 4)
    assert hu["measures"]["handling_timeliness"] == pytest.approx(4 / 5)
    assert hu["measures"]["rework_rate"] == pytest.approx(1 / 5)
    assert hu["measures"]["satisfaction_rate"] == pytest.approx(2 / 3)
    # jianwai: received cgzf 11 + cgw 2 (C06, C23) + zj 4 + ghzr 3 (C07, C08, C09) = 20;
    # responded cgzf 7 + cgw 2 + zj 4 + ghzr 1 (C08) = 14; handled 9 + 1 + 3 + 1 = 14;
    # closed 8 + 1 + 3 + 1 = 13.
    jw = rows["jianwai"]
    assert {k: jw["counts"][k] for k in ("received", "responded", "handled", "closed")} == {
        "received": 20,
        "responded": 14,
        "handled": 14,
        "closed": 13,
    }
    assert jw["measures"]["response_rate"] == pytest.approx(14 / 20)
    sections = {r["key"]: r for r in measures_by(engine, APRIL, NOW, "section")}
    # April received: urban_management = all but C24 (PA-010) and C32 (SQ-007, today).
    # cgzf 5 + cgw 4 + zj 3 (C14, C25, C26) + ghzr 1 (C25) = 13; public_safety C24 = 1;
    # community_building C32 = 1.
    assert {k: r["counts"]["received"] for k, r in sections.items()} == {
        "urban_management": 13,
        "public_safety": 1,
        "community_building": 1,
    }


def check_linkage(engine: Engine) -> None:
    cells = {(c["street"], c["department"], c["community"]): c for c in linkage_matrix(engine, NOW)}
    # cgzf in jianwai_c01: closed C01, C02, C04, C05, C07, C11, C12 (C06, C08, C09 handed off, C30
    # cancelled); open C13 (overdue); report-ins C01 1 h, C02 3 h, C04 0.5 h, C05 22 h, C07 1 h,
    # C11 1 h, C12 2 h, C13 2 h = 32.5 h over 8.
    assert cells[("jianwai", "cgzf", "jianwai_c01")] == pytest.approx(
        {
            "street": "jianwai",
            "department": "cgzf",
            "community": "jianwai_c01",
            "open": 1,
            "closed": 7,
            "responded": 8,
            "mean_response_hours": 32.5 / 8,
            "overdue": 1,
        }
    )
    # cgzf in jianwai_c02: closed C03, C10; open C14 (response overdue); 30 h + 50 h over 2.
    c02 = cells[("jianwai", "cgzf", "jianwai_c02")]
    assert (c02["open"], c02["closed"], c02["responded"], c02["overdue"]) == (1, 2, 2, 1)
    assert c02["mean_response_hours"] == pytest.approx(40.0)
    # cgw in hujialou_c01: closed C15–C18, C20, C33; open C21; 1 + 4 + 1 + 3 + 1/3 + 0.5 + 1 h.
    hu = cells[("hujialou", "cgw", "hujialou_c01")]
    assert (hu["open"], hu["closed"], hu["responded"], hu["overdue"]) == (1, 6, 7, 0)
    assert hu["mean_response_hours"] == pytest.approx(39000 / 7 / 3600)
    # zj in jianwai_c03: closed C22, C23, C24; open C26 (overdue; C25 was handed off).
    zj = cells[("jianwai", "zj", "jianwai_c03")]
    assert (zj["open"], zj["closed"], zj["responded"], zj["overdue"]) == (1, 3, 3, 1)
    assert zj["mean_response_hours"] == pytest.approx((2 + 30 + 1.75) / 3)
    # ghzr in jianwai_c03: C25, disputed, open.
    gh = cells[("jianwai", "ghzr", "jianwai_c03")]
    assert (gh["open"], gh["closed"], gh["responded"], gh["overdue"]) == (1, 0, 0, 0)
    assert gh["mean_response_hours"] is None


def check_overview_and_board(engine: Engine) -> None:
    got = overview(engine, NOW)
    # 22 closed (C01–C12, C15–C20, C22–C24, C33); C13 in handling; C14, C26, C32 whistled;
    # C21 handled; C25 disputed; C27 reported; C28 accepted; C29 rejected; C30, C31 cancelled.
    assert got["stages"] == {
        "collect": 1,  # C27
        "dispatch": 7,  # C28 + C29 + C30, C31 + C14, C26, C32
        "handle": 2,  # C13, C25
        "feedback": 1,  # C21
        "evaluate": 22,
    }
    assert got["open"] == 6  # whistled 3 + disputed 1 + in handling 1 + handled 1
    assert got["overdue"] == 3  # C13, C14, C26
    assert got["reported_today"] == 3  # C27, C28, C32
    assert got["closed_today"] == 1  # C33
    board = supervision_board(engine, NOW)
    assert board["counts"] == {"overdue": 3, "red": 1, "yellow": 1, "white": 1}
    assert [(r["department"], r["obligation"]) for r in board["overdue"]] == [
        ("zj", "response"),  # C26, due Apr 18 10:00
        ("cgzf", "handling"),  # C13, due Apr 21 00:00
        ("cgzf", "response"),  # C14, due Apr 21 10:00
    ]
    assert [(r["department"], r["obligation"]) for r in board["red"]] == [("cgzf", "handling")]
    assert [(r["department"], r["obligation"]) for r in board["yellow"]] == [("zj", "response")]
    assert [(r["department"], r["obligation"]) for r in board["white"]] == [("cgzf", "response")]


def check_ranking(engine: Engine) -> None:
    ranked = performance_ranking(engine, MARCH, NOW, by="score")
    # March scores: cgzf 82, ghzr 72 (street 60, resident satisfied: (60 × 0.49 + 100 × 0.21) / 0.7
    # = 72.0), cgw 57.33, zj 0 (veto); everyone else has no score and comes last, unranked.
    top = [(e["department"], e["rank"]) for e in ranked[:4]]
    assert top == [("cgzf", 1), ("ghzr", 2), ("cgw", 3), ("zj", 4)]
    assert ranked[1]["measures"]["two_way_score"] == pytest.approx(72.0)
    assert all(e["rank"] is None for e in ranked[4:])
    slowest = performance_ranking(engine, MARCH, NOW, by="mean_response_hours")
    # Fastest first: cgw 2 h, ghzr 6 h (C08), zj 9.75 h, cgzf 15.36 h.
    assert [e["department"] for e in slowest[:4]] == ["cgw", "ghzr", "zj", "cgzf"]
