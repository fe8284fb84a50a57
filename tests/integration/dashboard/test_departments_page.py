"""部门响应 as `AppTest` against a real gateway over seeded cases: the ranking shows exactly the API's
departments, order and values; the threshold flags; one department's response-time histogram and
counts; the drill-down to its cases, a page of 50 and "more"; English; an empty period; a bad token.

The seed (`linkage_seed`): two streets, three departments, a full loop, a case led by 规自 `ghzr` the
resident and the street rate badly, open and overdue cases; plus 51 cases whistled to 生态环境
`sthj` in March, so its drill-down needs a second page.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from dashboard.formatting import china_time, hours, number, percent
from tests.integration.builders import report_case
from tests.integration.dashboard.conftest import Stack
from tests.integration.dashboard.linkage_seed import ACTORS, seed_district

PAGE = "pages/departments.py"
#: The drill-down's page size, and a department with more cases than fit on one page.
PAGE_SIZE = 50
BUSY = "sthj"
BUSY_CASES = PAGE_SIZE + 1
BUSY_ITEM = "CG-007"  # a duty item 生态环境 leads


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    """Seeded once per module (the stack is the module's)."""
    seed_district(stack.service, stack.clock)
    for _ in range(BUSY_CASES):
        stack.clock.advance(timedelta(minutes=1))
        case_id = report_case(
            stack.service, ACTORS, community="jianwai_c03", grid="jianwai_c03_g01"
        )
        stack.service.accept(case_id, ACTORS["street"], "属实，受理")
        stack.service.whistle(case_id, ACTORS["street"], lead=BUSY, duty_item=BUSY_ITEM)
    stack.settle()
    return stack


def page(stack: Stack, **app: Any) -> AppTest:
    return stack.open_page(PAGE, **app)


def names(stack: Stack, lang: str = "zh") -> dict[str, str]:
    return {
        d["code"]: d["name_en"] if lang == "en" else d["short_name"]
        for d in stack.api("/api/v1/reference/departments")
    }


def shown(value: float | None, key: str, lang: str = "zh") -> str:
    """How the page writes a measure: hours for times, a number for 0–100 scores, else a percent."""
    if key.endswith("_hours"):
        return hours(value, lang)
    if key in ("street_score", "two_way_score", "composite_index"):
        return number(None if value is None else round(value, 1))
    return percent(value)


def frame(at: AppTest, index: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = at.dataframe[index].value.to_dict("records")
    return records


def test_the_ranking_shows_the_apis_departments_order_and_values(seeded: Stack) -> None:
    at = page(seeded)
    ranking = seeded.api("/api/v1/views/performance", by="score")
    rows = frame(at, 0)
    who = names(seeded)
    assert [r["部门"].removeprefix("🚩 ") for r in rows] == [who[e["department"]] for e in ranking]
    for row, entry in zip(rows, ranking, strict=True):
        assert row["排名"] == ("—" if entry["rank"] is None else str(entry["rank"]))
        assert row["接收吹哨"] == number(entry["counts"]["received"])
        measures = {k: v for k, v in row.items() if k not in ("排名", "部门", "接收吹哨", "预警")}
        assert list(measures.values()) == [shown(v, k) for k, v in entry["measures"].items()]
    # Every DOMAIN.md measure has its Chinese name; a few values spelled out.
    assert list(rows[0])[3:-1] == [
        "响应及时率",
        "平均响应时长",
        "中位响应时长",
        "90分位响应时长",
        "处置及时率",
        "超期率",
        "按期办结率",
        "返工率",
        "响应率",
        "解决率",
        "满意率",
        "办理率",
        "超期待处置率",
        "街乡评分",
        "双向评价得分",
        "综合指数",
    ]
    cgzf = next(r for r in rows if r["部门"].endswith("城管执法"))
    assert (cgzf["满意率"], cgzf["平均响应时长"], cgzf["街乡评分"]) == ("50.0%", "25.5 小时", "85")


def test_ranking_by_another_measure_follows_the_api(seeded: Stack) -> None:
    at = page(seeded)
    at.selectbox(key="dept_by").set_value("mean_response_hours").run()
    ranking = seeded.api("/api/v1/views/performance", by="mean_response_hours")
    who = names(seeded)
    assert [r["部门"].removeprefix("🚩 ") for r in frame(at, 0)] == [
        who[e["department"]] for e in ranking
    ]


def test_departments_over_a_threshold_are_flagged(seeded: Stack) -> None:
    at = page(seeded)
    ranking = {e["department"]: e for e in seeded.api("/api/v1/views/performance")}
    assert ranking["ghzr"]["flags"] == {
        "satisfaction_below_70": True,
        "score_below_60": True,
        "veto": False,
    }
    who = names(seeded)
    rows = {r["部门"].removeprefix("🚩 "): r for r in frame(at, 0)}
    for code, entry in ranking.items():
        flagged = any(entry["flags"].values())
        assert rows[who[code]]["部门"].startswith("🚩") is flagged
        assert bool(rows[who[code]]["预警"]) is flagged
    assert rows["规划自然资源"]["预警"] == "满意率低于70%、评分低于60分"
    [warning] = at.warning
    assert "规划自然资源（满意率低于70%、评分低于60分）" in warning.value
    assert "住建" not in warning.value


def test_the_distribution_equals_the_departments_histogram(seeded: Stack) -> None:
    at = page(seeded)
    at.selectbox(key="dept_pick").set_value("cgzf").run()
    assert not at.exception
    api = seeded.api("/api/v1/departments/cgzf/performance")
    histogram = frame(at, 1)
    assert [r["次数"] for r in histogram] == [b["count"] for b in api["histogram"]]
    assert [r["响应时长"] for r in histogram][:2] == ["≤0.5 小时", "≤1 小时"]
    assert histogram[-1]["响应时长"] == ">168 小时"
    [chart] = at.get("vega_lite_chart")
    [dataset] = chart.proto.datasets  # what the browser draws the bars from
    bars = convert_arrow_bytes_to_pandas_df(dataset.data.data).to_dict("records")
    assert [bar["次数"] for bar in bars] == [b["count"] for b in api["histogram"]]
    counts = {r["项目"]: r["数量"] for r in frame(at, 2)}
    assert counts["接收吹哨"] == number(api["counts"]["received"])
    assert counts["移交他部门"] == number(api["counts"]["handoffs_out"])
    assert counts["黄色督办"] == number(api["counts"]["supervision_yellow"])


def test_the_drill_down_lists_exactly_the_departments_cases(seeded: Stack) -> None:
    at = page(seeded)
    at.selectbox(key="dept_pick").set_value("cgzf").run()
    api = seeded.api("/api/v1/cases", involved="cgzf", limit=PAGE_SIZE)
    assert api["next_cursor"] is None
    rows = frame(at, 3)
    assert [r["案件编号"] for r in rows] == [c["case_id"] for c in api["items"]]
    assert len(rows) == 2  # the full loop and the one that never reported in
    for row, case in zip(rows, api["items"], strict=True):
        assert row["上报时间"] == china_time(case["reported_at"])
        assert row["报到时限"] == china_time(case["response_deadline"])
    assert not [b for b in at.button if b.key == "dept_more"]


def test_more_loads_the_next_page_of_cases(seeded: Stack) -> None:
    at = page(seeded)
    at.selectbox(key="dept_pick").set_value(BUSY).run()
    first = seeded.api("/api/v1/cases", involved=BUSY, limit=PAGE_SIZE)
    second = seeded.api(
        "/api/v1/cases", involved=BUSY, limit=PAGE_SIZE, cursor=first["next_cursor"]
    )
    assert [r["案件编号"] for r in frame(at, 3)] == [c["case_id"] for c in first["items"]]
    at.button(key="dept_more").click().run()
    assert not at.exception
    every = [c["case_id"] for c in first["items"] + second["items"]]
    assert [r["案件编号"] for r in frame(at, 3)] == every
    assert len(every) == BUSY_CASES
    assert not [b for b in at.button if b.key == "dept_more"]


def test_english(seeded: Stack) -> None:
    at = page(seeded, lang="en")
    assert at.title[0].value == "Department response"
    rows = frame(at, 0)
    ranking = seeded.api("/api/v1/views/performance")
    who = names(seeded, "en")
    assert [r["Department"].removeprefix("🚩 ") for r in rows] == [
        who[e["department"]] for e in ranking
    ]
    cgzf = next(r for r in rows if "Urban Management and Law" in r["Department"])
    assert (cgzf["Satisfaction rate"], cgzf["Mean response time"]) == ("50.0%", "25.5 h")
    assert "Satisfaction below 70 %" in at.warning[0].value


def test_a_period_without_activity_is_a_friendly_empty_state(seeded: Stack) -> None:
    at = page(seeded)
    at.radio(key="dept_period_mode").set_value("month").run()
    assert "2026-02" in at.selectbox(key="dept_month").options
    at.selectbox(key="dept_month").set_value("2026-02").run()
    assert not at.exception
    assert not at.dataframe
    assert any("没有部门被吹哨" in info.value for info in at.info)
    at.selectbox(key="dept_month").set_value("2026-03").run()
    assert at.dataframe  # the month with the seed's cases ranks again


def test_a_date_range_asks_the_gateway_for_it(seeded: Stack) -> None:
    at = page(seeded)
    at.radio(key="dept_period_mode").set_value("range").run()
    day = seeded.api("/api/v1/views/trend", days=1)["end"]
    picked = date.fromisoformat(day)
    ranking = seeded.api("/api/v1/views/performance", start=day, end=day)
    received = [number(e["counts"]["received"]) for e in ranking]
    at.date_input(key="dept_range").set_value((picked, picked)).run()
    assert not at.exception
    assert [r["接收吹哨"] for r in frame(at, 0)] == received


def test_a_refused_token_is_a_friendly_message(seeded: Stack) -> None:
    at = page(seeded, token="not-a-token")
    assert not at.dataframe
    assert any("访问令牌无效" in w.value for w in at.warning)
