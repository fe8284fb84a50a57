"""案件 page against a real gateway: the list is the API's page (50, then the next cursor's), every
filter narrows it exactly as the API does, and a case's timeline lists each history event in order
with its label, actor and Beijing time, and its deadlines (the open, passed ones in red)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.formatting import china_time
from dashboard.i18n import COMMON
from dashboard.timeline import TEXT as TIMELINE
from domain.actors import Actor
from tests.integration.builders import drive, report_case, run_full_loop
from tests.integration.dashboard.conftest import Stack

PAGE = "pages/cases.py"
ID_COLUMN = "案件编号"


@dataclass(frozen=True)
class Seeded:
    full_loop: UUID  # 22 events, closed and rated
    whistled: UUID  # open: both response deadlines and the handling deadline are running


@pytest.fixture(scope="module")
def seeded(stack: Stack, actors: dict[str, Actor]) -> Seeded:
    """58 reports (3 of them street lights, whistled), a full loop and a freshly whistled case."""
    for _ in range(55):
        report_case(stack.service, actors)
        stack.clock.advance(timedelta(minutes=1))
    for _ in range(3):
        drive(stack.service, stack.clock, actors, "whistled", title="路灯损坏")
    full = run_full_loop(stack.service, stack.clock, actors).case_id
    stack.clock.advance(timedelta(minutes=5))
    whistled = drive(stack.service, stack.clock, actors, "whistled", title="井盖缺失").case_id
    stack.settle()
    return Seeded(full, whistled)


def cases_page(stack: Stack, **app: Any) -> AppTest:
    return stack.open_page(PAGE, **app)


def shown_ids(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value[ID_COLUMN])


def api_ids(stack: Stack, **params: Any) -> list[str]:
    return [item["case_id"] for item in stack.api("/api/v1/cases", limit=50, **params)["items"]]


def label(key: str) -> str:
    """The Chinese text the pages show for `key` (the timeline's table, then the shared one)."""
    return (TIMELINE.get(key) or COMMON[key])[0]


def test_the_list_is_the_apis_page_and_the_next_cursor_pages_on(
    stack: Stack, seeded: Seeded
) -> None:
    at = cases_page(stack)
    first = stack.api("/api/v1/cases", limit=50)
    assert shown_ids(at) == [item["case_id"] for item in first["items"]]
    table = at.dataframe[0].value
    assert list(table["状态"]) == [label(f"status.{i['status']}") for i in first["items"]]
    assert list(table["上报时间"]) == [china_time(i["reported_at"]) for i in first["items"]]
    assert "第 1 页 · 本页 50 件" in [c.value for c in at.caption]

    at.button(key="cases.next").click().run()
    assert not at.exception
    second = api_ids(stack, cursor=first["next_cursor"])
    assert shown_ids(at) == second
    assert len(second) == 60 - 50
    assert at.button(key="cases.next").disabled

    at.button(key="cases.first").click().run()
    assert shown_ids(at) == [item["case_id"] for item in first["items"]]


@pytest.mark.parametrize(
    ("widget", "value", "params"),
    [
        ("cases.status", "whistled", {"status": "whistled"}),
        ("cases.stage", "dispatch", {"stage": "dispatch"}),
        ("cases.department", "zj", {"department": "zj"}),
        ("cases.overdue", "true", {"overdue": "true"}),
        ("cases.urgency", "urgent", {"urgency": "urgent"}),
    ],
)
def test_each_filter_narrows_the_list_as_the_api_does(
    stack: Stack, seeded: Seeded, widget: str, value: str, params: dict[str, str]
) -> None:
    at = cases_page(stack)
    at.selectbox(key=widget).set_value(value).run()
    assert not at.exception
    expected = api_ids(stack, **params)
    if expected:
        assert shown_ids(at) == expected
        assert len(expected) < 50
    else:
        assert any("没有符合条件的案件" in i.value for i in at.info)


def test_text_street_and_dates_combine(stack: Stack, seeded: Seeded) -> None:
    at = cases_page(stack)
    at.text_input(key="cases.text").input("路灯").run()
    lights = api_ids(stack, text="路灯")
    assert shown_ids(at) == lights
    assert len(lights) == 3
    at.selectbox(key="cases.street").set_value("jianwai").run()
    day = stack.api(f"/api/v1/cases/{lights[0]}")["case"]["reported_at"]
    china_day = china_time(day)[:10]
    at.date_input(key="cases.from").set_value(date.fromisoformat(china_day)).run()
    at.date_input(key="cases.to").set_value(date.fromisoformat(china_day)).run()
    assert not at.exception
    expected = api_ids(
        stack, text="路灯", street="jianwai", reported_from=china_day, reported_to=china_day
    )
    assert shown_ids(at) == expected
    assert lights[0] in expected


def test_a_cases_timeline_lists_every_event_in_order_with_labels_and_deadlines(
    stack: Stack, seeded: Seeded
) -> None:
    at = cases_page(stack)
    case_id = str(seeded.full_loop)
    at.selectbox(key="cases.pick").set_value(case_id).run()
    assert not at.exception
    history = stack.api(f"/api/v1/cases/{case_id}/history")
    events = at.dataframe[1].value
    assert list(events["版本"]) == [e["version"] for e in history] == list(range(1, 23))
    assert list(events["事件"]) == [label(f"event.{e['event_type']}") for e in history]
    assert list(events["时间"]) == [china_time(e["timestamp"], with_seconds=True) for e in history]
    actors = [f"{label('role.' + e['actor']['role'])} · {e['actor']['id']}" for e in history]
    assert list(events["操作人"]) == actors
    assert "超时未办" in list(events["事件"])  # the lead's missed response deadline

    detail = stack.api(f"/api/v1/cases/{case_id}")
    marks = [m.value for m in at.markdown if "⏰" in m.value]
    assert len(marks) == len(detail["obligations"]) + 1  # each response deadline + handling
    assert any("ghzr 响应时限" in m and "已结束" in m for m in marks)  # handed off, then ended
    assert not any(m.startswith(":red[") for m in marks)  # every deadline met in time


def test_an_open_case_past_its_deadlines_shows_them_red(stack: Stack, seeded: Seeded) -> None:
    at = cases_page(stack)
    case_id = str(seeded.whistled)
    at.selectbox(key="cases.pick").set_value(case_id).run()
    assert not at.exception
    detail = stack.api(f"/api/v1/cases/{case_id}")
    departments = {d["code"]: d["short_name"] for d in stack.api("/api/v1/reference/departments")}
    shown = [m.value for m in at.metric]
    assert shown == [label("status.whistled"), "分流", departments["cgzf"], "一般"]
    marks = [m.value for m in at.markdown if "⏰" in m.value]
    # the gateway's clock stands in March 2026; the wall clock is later, so every open one is due
    due = {china_time(d["due_at"]) for d in detail["deadlines"]}
    assert len(marks) == 3
    assert all(m.startswith(":red[") and "已逾期" in m for m in marks)
    assert all(any(d in m for d in due) for m in marks)


def test_bad_token_and_gateway_down_are_friendly_messages(stack: Stack, seeded: Seeded) -> None:
    at = cases_page(stack, token="not-a-token")
    assert any("访问令牌无效" in w.value for w in at.warning)

    at = stack.app()
    os.environ["WL_DASHBOARD_GATEWAY_URL"] = "http://127.0.0.1:9"
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception
    assert any("无法连接网关" in e.value for e in at.error)


def test_in_english_the_same_page_and_timeline(stack: Stack, seeded: Seeded) -> None:
    at = cases_page(stack)
    # What the sidebar's radio sets (after a switch AppTest runs the page alone, for one run).
    at.session_state["lang"] = "en"
    at.selectbox(key="cases.pick").set_value(str(seeded.full_loop)).run()
    assert not at.exception
    assert at.title[0].value == "Cases"
    assert list(at.dataframe[0].value["Case id"]) == api_ids(stack)
    history = stack.api(f"/api/v1/cases/{seeded.full_loop}/history")
    events = at.dataframe[1].value
    assert list(events["Event"]) == [TIMELINE[f"event.{e['event_type']}"][1] for e in history]
    assert any("cgzf response deadline" in m.value for m in at.markdown)
