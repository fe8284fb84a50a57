"""指挥中心 as `AppTest` against a real gateway over seeded cases: the funnel, today's flow, the
supervision board and the trend show exactly what the API answers; English labels on the toggle;
a refused token or a gateway that is down is one friendly message, not a traceback.

The seed: one case per stage of the loop, one of them whistled yesterday and now past its response
deadline (overdue) and under red supervision, one full loop that ends rated.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from domain.actors import Actor
from tests.integration.builders import drive, report_case, run_full_loop
from tests.integration.dashboard.conftest import Stack
from tests.integration.gateway.conftest import free_port
from tests.unit.builders import LEAD

PAGE = "pages/command_centre.py"
STAGES = {
    "collect": "收集",
    "dispatch": "分流",
    "handle": "处置",
    "feedback": "反馈",
    "evaluate": "评价",
}
TODAY = {
    "reported": "今日上报",
    "whistled": "今日吹哨",
    "reported_in": "今日报到",
    "closed": "今日结案",
    "rated": "今日评价",
}
BOARD = {"overdue": "超期事项", "red": "红色督办", "yellow": "黄色督办", "white": "白色预警"}
ACTORS = {
    "resident": Actor.of("resident", "r-1001"),
    "street": Actor.of("street", "jianwai"),
    "centre": Actor.of("command_centre", "cc-1"),
    "system": Actor.of("system", "sla-clock"),
}


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    """Seeded once per module (the stack is the module's)."""
    late = drive(stack.service, stack.clock, ACTORS, "whistled", title="占道经营").case_id
    stack.clock.advance(timedelta(hours=30))  # past the 24 h response limit: overdue now
    stack.service.issue_supervision(late, ACTORS["system"], "red", LEAD, "超期未报到", "response")
    run_full_loop(stack.service, stack.clock, ACTORS)
    drive(stack.service, stack.clock, ACTORS, "in_handling", title="井盖缺失")
    drive(stack.service, stack.clock, ACTORS, "handled", title="路灯不亮")
    report_case(stack.service, ACTORS, title="噪音扰民")
    stack.settle()
    return stack


def page(stack: Stack, **app: Any) -> AppTest:
    return stack.open_page(PAGE, **app)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def shown(value: int) -> str:
    return f"{value:,}"


def test_the_numbers_shown_are_the_apis(seeded: Stack) -> None:
    at = page(seeded)
    found = metrics(at)
    overview = seeded.api("/api/v1/views/overview")
    assert {s: found[label] for s, label in STAGES.items()} == {
        s: shown(overview["stages"][s]) for s in STAGES
    }
    assert overview["stages"] == {
        "collect": 1,
        "dispatch": 1,
        "handle": 1,
        "feedback": 1,
        "evaluate": 1,
    }
    assert found["在办案件"] == shown(overview["open"])
    assert found["超期案件"] == shown(overview["overdue"]) == "1"

    (today,) = seeded.api("/api/v1/views/trend", days=7)["days"][-1:]
    assert {m: found[label] for m, label in TODAY.items()} == {m: shown(today[m]) for m in TODAY}
    assert today["reported"] == overview["reported_today"] == 3  # the full loop began yesterday
    assert sum(day["rated"] for day in seeded.api("/api/v1/views/trend")["days"]) == 2

    board = seeded.api("/api/v1/views/supervision")
    assert {s: found[label] for s, label in BOARD.items()} == {
        s: shown(board["counts"][s]) for s in BOARD
    }
    assert board["counts"]["overdue"] >= 1
    assert board["counts"]["red"] == 1
    tables = [frame.value for frame in at.dataframe]
    overdue_titles = set(tables[0]["案件"])
    assert overdue_titles == {row["title"] for row in board["overdue"]}
    assert "占道经营" in overdue_titles
    assert list(tables[1]["案件"]) == ["占道经营"]  # the red tab
    assert [info.value for info in at.info] == ["暂无黄色督办", "暂无白色预警"]
    assert any(caption.value.startswith("数据更新于") for caption in at.caption)


def test_the_trend_follows_the_choice_of_days(seeded: Stack) -> None:
    at = page(seeded)
    week = seeded.api("/api/v1/views/trend", days=7)
    assert f"{week['start']} – {week['end']}" in [c.value for c in at.caption]
    at.radio(key="command_centre.trend_days").set_value(30).run()
    assert not at.exception
    month = seeded.api("/api/v1/views/trend", days=30)
    assert f"{month['start']} – {month['end']}" in [c.value for c in at.caption]
    assert metrics(at)["今日上报"] == shown(month["days"][-1]["reported"])


def test_english_labels_on_the_toggle(seeded: Stack) -> None:
    at = seeded.app()
    at.run()  # 指挥中心 is the default page; the toggle is in the sidebar next to it
    assert metrics(at)["收集"]
    at.radio(key="lang").set_value("en").run()
    assert not at.exception
    found = metrics(at)
    overview = seeded.api("/api/v1/views/overview")
    assert found["Collect"] == shown(overview["stages"]["collect"])
    assert found["Reported today"] == shown(overview["reported_today"])
    assert "Red supervision" in found
    assert at.title[0].value == "Command centre"
    assert not any(label in found for label in STAGES.values())


def test_a_refused_token_is_a_friendly_message(seeded: Stack) -> None:
    at = page(seeded, token="bad")
    assert not at.metric
    (warning,) = at.warning  # one message, not one per section
    assert warning.value.startswith("访问令牌无效或已过期")
    assert at.title[0].value == "指挥中心"


def test_a_gateway_that_is_down_is_a_friendly_message(
    seeded: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = seeded.app()
    monkeypatch.setenv("WL_DASHBOARD_GATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    at.run()
    assert not at.exception
    assert not at.metric
    (error,) = at.error
    assert error.value.startswith("无法连接网关")
