"""街乡–部门–社区联动 as `AppTest` against a real gateway over seeded cases: the matrix equals the API's
rows; the heatmap's cells sum them; the flow draws street → department → community with the open and
overdue counts, overdue edges red; the street filter; English; an empty street; the gateway down.

The seed (`linkage_seed`): 建外 and 呼家楼, 城管执法, 住建 and 规自, closed, open and overdue cases.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from dashboard.formatting import hours, number
from tests.integration.dashboard.conftest import Stack
from tests.integration.dashboard.linkage_seed import seed_district

PAGE = "pages/linkage.py"
RED = "#d62728"


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    """Seeded once per module (the stack is the module's)."""
    seed_district(stack.service, stack.clock)
    stack.settle()
    return stack


def page(stack: Stack, street: str | None = None, **app: Any) -> AppTest:
    at = stack.open_page(PAGE, **app)
    if street is not None:
        at.selectbox(key="linkage_street").set_value(street).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def reference(stack: Stack, kind: str, lang: str = "zh") -> dict[str, str]:
    """Codes → the names the page shows (departments by short name; English names in English)."""
    rows = stack.api(f"/api/v1/reference/{kind}")
    if kind == "departments":
        return {r["code"]: r["name_en"] if lang == "en" else r["short_name"] for r in rows}
    if kind == "streets":
        return {r["code"]: r["name_en"] if lang == "en" else r["name"] for r in rows}
    return {r["code"]: f"{r['name']} ({r['code']})" if lang == "en" else r["name"] for r in rows}


def expected_rows(stack: Stack, cells: list[dict[str, Any]]) -> list[dict[str, str]]:
    streets, departments = reference(stack, "streets"), reference(stack, "departments")
    communities = reference(stack, "communities")
    return [
        {
            "街乡": streets[c["street"]],
            "部门": departments[c["department"]],
            "社区": communities[c["community"]],
            "在办": number(c["open"]),
            "超期": number(c["overdue"]),
            "已结": number(c["closed"]),
            "已报到": number(c["responded"]),
            "平均响应时长": hours(c["mean_response_hours"]),
        }
        for c in cells
    ]


def table(at: AppTest) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = at.dataframe[0].value.to_dict("records")
    return rows


def dot(at: AppTest) -> str:
    [graph] = at.get("graphviz_chart")
    spec: str = graph.proto.spec
    return spec


def edges(spec: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(source, target) → (label, colour) of every edge in the DOT."""
    pattern = r'"(\w+)" -> "(\w+)" \[label="([^"]*)", color="([^"]*)"'
    return {(s, t): (label, colour) for s, t, label, colour in re.findall(pattern, spec)}


def test_the_matrix_equals_the_apis_rows(seeded: Stack) -> None:
    at = page(seeded)
    cells = seeded.api("/api/v1/views/linkage")
    assert table(at) == expected_rows(seeded, cells)
    assert {c["street"] for c in cells} == {"jianwai", "hujialou"}
    assert {c["department"] for c in cells} == {"cgzf", "zj", "ghzr"}
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {
        "在办": number(sum(c["open"] for c in cells)),
        "超期": number(sum(c["overdue"] for c in cells)),
        "已结": number(sum(c["closed"] for c in cells)),
    }


def test_the_heatmap_sums_the_cells_per_department_and_street(seeded: Stack) -> None:
    at = page(seeded)
    cells = seeded.api("/api/v1/views/linkage")
    [chart] = at.get("vega_lite_chart")
    [dataset] = chart.proto.datasets
    shown = convert_arrow_bytes_to_pandas_df(dataset.data.data).to_dict("records")
    streets, departments = reference(seeded, "streets"), reference(seeded, "departments")
    expected: dict[tuple[str, str], int] = {}
    for c in cells:
        key = (departments[c["department"]], streets[c["street"]])
        expected[key] = expected.get(key, 0) + c["open"]
    assert {(r["department"], r["across"]): r["value"] for r in shown} == expected


def test_the_flow_shows_open_and_overdue_and_overdue_edges_are_red(seeded: Stack) -> None:
    at = page(seeded)
    cells = seeded.api("/api/v1/views/linkage")
    drawn = edges(dot(at))
    live = [c for c in cells if c["open"] or c["overdue"]]
    assert {(f"d_{c['department']}", f"c_{c['community']}") for c in live} == {
        pair for pair in drawn if pair[0].startswith("d_")
    }
    for c in live:
        label, colour = drawn[(f"d_{c['department']}", f"c_{c['community']}")]
        assert label == f"在办 {c['open']}／超期 {c['overdue']}"
        assert (colour == RED) is (c["overdue"] > 0)
    # The case 城管执法 never reported in: red all the way from 建外 to 建国里社区.
    assert drawn[("s_jianwai", "d_cgzf")] == ("在办 1／超期 1", RED)
    assert drawn[("d_cgzf", "c_jianwai_c02")] == ("在办 1／超期 1", RED)
    assert drawn[("s_hujialou", "d_zj")][1] != RED
    assert ("d_ghzr", "c_hujialou_c01") not in drawn  # closed: no live edge


def test_the_street_filter(seeded: Stack) -> None:
    at = page(seeded, street="hujialou")
    cells = [c for c in seeded.api("/api/v1/views/linkage") if c["street"] == "hujialou"]
    assert table(at) == expected_rows(seeded, cells)
    assert {pair[0] for pair in edges(dot(at))} <= {"s_hujialou", "d_zj", "d_ghzr"}


def test_a_street_without_cases_is_a_friendly_empty_state(seeded: Stack) -> None:
    at = page(seeded, street="maizidian")
    assert not at.dataframe
    assert any("还没有街乡吹哨的案件" in info.value for info in at.info)


def test_english(seeded: Stack) -> None:
    at = page(seeded, lang="en")
    assert at.title[0].value == "Street–department–community linkage"
    cells = seeded.api("/api/v1/views/linkage")
    rows = table(at)
    streets = reference(seeded, "streets", "en")
    assert [r["Street"] for r in rows] == [streets[c["street"]] for c in cells]
    assert [r["Overdue"] for r in rows] == [number(c["overdue"]) for c in cells]
    assert "open 1 / overdue 1" in dot(at)


def test_the_gateway_down_is_a_friendly_message(
    seeded: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = seeded.app()
    monkeypatch.setenv("WL_DASHBOARD_GATEWAY_URL", "http://127.0.0.1:9")  # nothing listens there
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception
    assert not at.dataframe
    assert any("无法连接网关" in error.value for error in at.error)
