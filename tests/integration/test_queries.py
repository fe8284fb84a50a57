"""projections.queries: bad input is refused with stable codes, pages walk every row once, filters
and the audit wrappers answer from the real read models (SQLite and PostgreSQL views).

The filter and audit checks read the KPI scenario (kpi_scenario.py) folded by the real runner from a
real NATS; pagination runs over board rows written straight into the views DB, many sharing one
report time, so the keyset's tie-break on case_id is exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from sqlalchemy import Engine, func, insert, select

from domain.errors import DomainError, InvalidInput, NotFound
from domain.service import CaseService
from infra.signing import load_or_create_signer
from projections import audit, merkle
from projections.audit import Audit, audit_heads
from projections.base import Projection
from projections.case_board import CaseBoard, case_board
from projections.deadlines import Deadlines
from projections.dept_performance import DeptPerformance
from projections.linkage import Linkage
from projections.queries import (
    CaseFilters,
    Period,
    case_detail,
    case_history,
    consistency_proof,
    decode_cursor,
    department_performance,
    inclusion_proof,
    list_cases,
    measures_by,
    performance_ranking,
    tree_head,
)
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.kpi_scenario import NOW, build
from tests.integration.projections.support import RelayLike, eventually, reached, running

# The projection tests' fixtures, shared with these tests (they live one level down).

MARCH = Period.month("2026-03")


def refused(call: Callable[[], object], error: type[DomainError], code: str) -> DomainError:
    with pytest.raises(error) as raised:
        call()
    assert raised.value.code == code, raised.value
    assert raised.value.message_zh
    assert raised.value.message_en
    return raised.value


# --- bad input (an empty views DB is enough) ----------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "code", "field"),
    [
        (CaseFilters(status="open"), "invalid_status", "status"),
        (CaseFilters(stage="收集"), "invalid_stage", "stage"),
        (CaseFilters(urgency="asap"), "invalid_urgency", "urgency"),
        (CaseFilters(source="fax"), "invalid_source", "source"),
        (CaseFilters(street="atlantis"), "unknown_street", "street"),
        (CaseFilters(community="nowhere_c01"), "unknown_community", "community"),
        (CaseFilters(department="nasa"), "unknown_department", "department"),
        (CaseFilters(duty_item="CG 001; --"), "invalid_duty_item", "duty_item"),
        (CaseFilters(reported_from="2026-02-30"), "invalid_reported_from", "reported_from"),
        (CaseFilters(reported_to="03/01/2026"), "invalid_reported_to", "reported_to"),
        (
            CaseFilters(reported_from="2026-03-02", reported_to="2026-03-01"),
            "invalid_reported_to",
            "reported_to",
        ),
        (CaseFilters(text=""), "invalid_text", "text"),
        (CaseFilters(text="x" * 101), "invalid_text", "text"),
    ],
)
def test_invalid_filters(views_engine: Engine, filters: CaseFilters, code: str, field: str) -> None:
    error = refused(lambda: list_cases(views_engine, filters, None), InvalidInput, code)
    assert error.details["field"] == field


@pytest.mark.parametrize("limit", [0, -1, 201, 10_000])
def test_invalid_limits(views_engine: Engine, limit: int) -> None:
    refused(
        lambda: list_cases(views_engine, CaseFilters(), None, limit), InvalidInput, "invalid_limit"
    )


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 !",
        "bm90IGpzb24",  # "not json"
        "WyJ4Il0",  # ["x"]
        "WyIyMDI2LTAzLTAyIiwiYyJd",  # ["2026-03-02","c"]: not a board time
        "eyJhIjoxfQ",  # {"a":1}
    ],
)
def test_invalid_cursors(views_engine: Engine, cursor: str) -> None:
    refused(lambda: list_cases(views_engine, CaseFilters(), cursor), InvalidInput, "invalid_cursor")


def test_unknown_ids_and_bad_arguments(views_engine: Engine) -> None:
    e = views_engine
    missing = "00000000-0000-0000-0000-000000000000"
    refused(lambda: case_detail(e, missing), NotFound, "case_not_found")
    refused(lambda: case_history(e, missing), NotFound, "case_not_found")
    refused(lambda: case_detail(e, "../../etc/passwd"), InvalidInput, "invalid_case_id")
    refused(lambda: department_performance(e, "nasa", MARCH, NOW), NotFound, "department_not_found")
    refused(
        lambda: department_performance(e, "zj", MARCH, NOW.replace(tzinfo=None)),
        InvalidInput,
        "invalid_now",
    )
    refused(lambda: performance_ranking(e, MARCH, NOW, by="luck"), InvalidInput, "invalid_ranking")
    refused(lambda: measures_by(e, MARCH, NOW, "planet"), InvalidInput, "invalid_dimension")
    refused(lambda: tree_head(e), NotFound, "no_tree_head")
    refused(lambda: inclusion_proof(e, 0), InvalidInput, "invalid_notification_id")
    refused(lambda: inclusion_proof(e, 1, tree_size=0), InvalidInput, "invalid_tree_size")
    refused(lambda: inclusion_proof(e, 1, tree_size=5), NotFound, "event_not_audited")
    refused(lambda: consistency_proof(e, 0, 3), InvalidInput, "invalid_first")
    refused(lambda: consistency_proof(e, 3, 2), InvalidInput, "invalid_tree_sizes")
    # A department with nothing in the period has counts of 0 and no rates at all.
    empty = department_performance(e, "zj", MARCH, NOW)
    assert empty["counts"]["received"] == 0
    assert set(empty["measures"].values()) == {None}


# --- pagination ---------------------------------------------------------------------------------


def board_row(n: int) -> dict[str, Any]:
    second = n // 9  # nine cases share each report time
    return {
        "case_id": f"case-{n:04d}",
        "street": "jianwai" if n % 3 else "hujialou",
        "community": None,
        "title": f"问题 {n}",
        "source": "hotline_12345",
        "status": "reported",
        "stage": "collect",
        "urgency": "normal",
        "assisting_departments": [],
        "obligations": {},
        "reported_at": f"2026-03-02T01:{second // 60:02d}:{second % 60:02d}.000000Z",
        "rework_count": 0,
        "round": 1,
        "last_event_type": "CaseReported",
        "last_notification_id": n + 1,
        "version": 1,
        "updated_at": "2026-03-02T01:00:00.000000Z",
    }


@pytest.mark.parametrize("limit", [1, 7, 50, 200])
def test_pages_walk_every_row_exactly_once(views_engine: Engine, limit: int) -> None:
    rows = [board_row(n) for n in range(230)]
    with views_engine.begin() as conn:
        conn.execute(insert(case_board), rows)
    expected = sorted(rows, key=lambda r: (r["reported_at"], r["case_id"]), reverse=True)
    for filters, wanted in [
        (CaseFilters(), expected),
        (CaseFilters(street="hujialou"), [r for r in expected if r["street"] == "hujialou"]),
    ]:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = list_cases(views_engine, filters, cursor, limit)
            assert len(page.items) <= limit
            seen += [item["case_id"] for item in page.items]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
            assert decode_cursor(cursor) == (page.items[-1]["reported_at"], seen[-1])
        assert seen == [r["case_id"] for r in wanted]
        assert pages == max(1, -(-len(wanted) // limit))
        assert "obligations" not in page.items[0] if page.items else True


# --- the scenario: filters, detail, history, audit proofs ----------------------------------------


@pytest.mark.asyncio
async def test_filters_detail_history_and_proofs(
    nc: Client, views_engine: Engine, event_store: CaseService, tmp_path: Path
) -> None:
    ids = build().run(event_store, event_store.clock)  # type: ignore[arg-type]
    envelopes = await RelayLike(event_store).publish_new(nc.jetstream())
    signer = load_or_create_signer(tmp_path / "audit.key")
    projections: list[Projection] = [
        CaseBoard(),
        DeptPerformance(),
        Linkage(),
        Deadlines(),
        Audit(signer, head_every=64, head_interval=3600),
    ]
    async with running(ProjectorRunner(nc, views_engine, projections, RunnerOptions(batch=40))):
        for projection in projections:
            await eventually(
                reached(views_engine, projection.name, envelopes[-1].notification_id),
                f"{projection.name} to catch up",
            )
    names = {str(case_id): name for name, case_id in ids.items()}

    def found(**filters: Any) -> set[str]:
        page = list_cases(views_engine, CaseFilters(**filters), None, 200, now=NOW)
        assert page.next_cursor is None
        return {names[item["case_id"]] for item in page.items}

    assert len(found()) == 33
    assert found(status="disputed") == {"C25"}
    assert found(stage="feedback") == {"C21"}
    assert found(urgency="urgent") == {"C17", "C18"}
    assert found(street="hujialou", status="cancelled") == {"C31"}
    assert found(community="jianwai_c03") == {"C22", "C23", "C24", "C25", "C26"}
    assert found(duty_item="CG-002") == {"C11", "C12"}
    assert found(overdue=True) == {"C13", "C14", "C26"}
    assert len(found(overdue=False)) == 30
    # zj leads C09 (by determination), C22–C24, C26; assists C02, C14. C25 went to ghzr.
    assert found(department="zj") == {"C02", "C09", "C14", "C22", "C23", "C24", "C26"}
    assert found(department="ghzr") == {"C08", "C25", "C32"}
    assert found(reported_from="2026-04-22") == {"C27", "C28", "C32"}
    assert found(reported_from="2026-03-20", reported_to="2026-03-25") == {"C29", "C30", "C31"}
    assert found(text="C0", street="hujialou") == set()  # titles are all 楼道堆物
    assert found(text="堆物", status="rejected") == {"C29"}
    assert found(text="100%") == set()  # LIKE wildcards are escaped

    detail = case_detail(views_engine, str(ids["C14"]))
    assert detail["case"]["status"] == "whistled"
    assert {(d["department"], d["obligation"]) for d in detail["deadlines"]} == {
        ("cgzf", "response"),
        ("cgzf", "handling"),
    }
    assert {(o["department"], o["role"]) for o in detail["obligations"]} == {
        ("cgzf", "lead"),
        ("zj", "assisting"),
    }

    history = case_history(views_engine, str(ids["C07"]))
    assert [h["event_type"] for h in history] == [
        "CaseReported",
        "CaseAccepted",
        "Whistled",
        "ReportedIn",
        "HandedOff",
        "HandOffDisputed",
        "ResponsibilityDetermined",
        "HandlingReported",
        "Closed",
    ]
    assert history[6]["actor"] == {"role": "command_centre", "id": "cc-1"}
    assert history[6]["payload"]["department"] == "cgzf"
    assert [h["version"] for h in history] == list(range(1, 10))

    head = tree_head(views_engine)
    size = head["tree_size"]
    assert size >= 64
    root = bytes.fromhex(head["root_hash"])
    for entry in (history[0], history[-1]):
        if entry["leaf_index"] >= size:
            continue
        proof = inclusion_proof(views_engine, entry["notification_id"])
        assert proof["tree_size"] == size
        assert proof["root_hash"] == head["root_hash"]
        assert merkle.verify_inclusion(
            bytes.fromhex(entry["leaf_hash"]),
            entry["leaf_index"],
            size,
            [bytes.fromhex(p) for p in proof["proof"]],
            root,
        )
    with views_engine.connect() as conn:
        first = conn.execute(select(func.min(audit_heads.c.tree_size))).scalar_one()
        leaves = audit.tree_size(conn)
    assert first < size  # heads every 64 leaves: several were signed
    consistency = consistency_proof(views_engine, first, size)
    old_root = bytes.fromhex(consistency["first_root"])
    assert merkle.verify_consistency(
        first, old_root, size, root, [bytes.fromhex(p) for p in consistency["proof"]]
    )
    refused(
        lambda: consistency_proof(views_engine, 1, leaves + 1), InvalidInput, "invalid_tree_sizes"
    )
    refused(
        lambda: inclusion_proof(views_engine, envelopes[-1].notification_id, tree_size=1),
        InvalidInput,
        "leaf_not_in_tree",
    )
