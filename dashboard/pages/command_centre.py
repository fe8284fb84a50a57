"""指挥中心 (command centre): the closed loop as it stands now, refreshing itself.

Funnel of the five stages and today's flow, the overdue list and the 红黄白 supervision board, a
street × department heatmap of open and overdue cases, and a 7/30-day trend. Everything reads the
gateway's aggregate views (overview, supervision, linkage, trend), never case lists, so the page costs
the same at 100 cases as at 100,000. The live part is one `st.fragment(run_every=…)`: it reruns alone,
the page is not reloaded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from dashboard import charts, reference
from dashboard.client import GatewayProblem, Json
from dashboard.formatting import china_time, number
from dashboard.i18n import Table, t
from dashboard.ui import config, empty, get, refreshed_caption, show_problem

OVERVIEW = "/api/v1/views/overview"
SUPERVISION = "/api/v1/views/supervision"
LINKAGE = "/api/v1/views/linkage"
TREND = "/api/v1/views/trend"

#: 收集 → 分流 → 处置 → 反馈 → 评价, top to bottom of the funnel.
STAGES = ("collect", "dispatch", "handle", "feedback", "evaluate")
#: What a day of the trend counts (the gateway's `TREND_KEYS`), in the loop's order.
MEASURES = ("reported", "whistled", "reported_in", "closed", "rated")
#: The supervision board's sections, most pressing first.
BOARD = ("overdue", "red", "yellow", "white")
#: The heatmaps side by side: what each counts and its colours.
HEATMAPS: tuple[tuple[str, charts.Scheme], ...] = (("open", "oranges"), ("overdue", "reds"))
TREND_DAYS = (7, 30)
#: Session key of the 7/30 choice; today's figures read the same trend, so one request serves both.
TREND_CHOICE = "command_centre.trend_days"

TEXT: Table = {
    "intro": (
        "闭环全流程实时态势，每 {seconds} 秒自动刷新",
        "The closed loop live, refreshed every {seconds} s",
    ),
    "funnel": ("闭环漏斗", "Closed-loop funnel"),
    "cases": ("案件数", "Cases"),
    "stage": ("环节", "Stage"),
    "open": ("在办案件", "Open cases"),
    "overdue_cases": ("超期案件", "Overdue cases"),
    "today": ("今日动态（{day}）", "Today ({day})"),
    "today.measure": ("今日{measure}", "{measure} today"),
    "measure.reported": ("上报", "Reported"),
    "measure.whistled": ("吹哨", "Whistled"),
    "measure.reported_in": ("报到", "Reported in"),
    "measure.closed": ("结案", "Closed"),
    "measure.rated": ("评价", "Rated"),
    "supervision": ("超期与红黄白督办", "Overdue and red / yellow / white supervision"),
    "board.overdue": ("超期事项", "Overdue"),
    "board.red": ("红色督办", "Red supervision"),
    "board.yellow": ("黄色督办", "Yellow supervision"),
    "board.white": ("白色预警", "White warning"),
    "board.empty": ("暂无{section}", "No {section} now"),
    "board.more": ("仅列出前 {shown} 条，共 {total} 条", "Listing the first {shown} of {total}"),
    "col.title": ("案件", "Case"),
    "col.department": ("部门", "Department"),
    "col.obligation": ("时限", "Limit"),
    "col.street": ("街乡", "Street"),
    "col.community": ("社区", "Community"),
    "col.due": ("截止时间", "Due"),
    "col.status": ("状态", "Status"),
    "col.escalated": ("已上报区级", "Escalated"),
    "obligation.response": ("响应", "Response"),
    "obligation.handling": ("办理", "Handling"),
    "heatmap": ("街乡 × 部门", "Street × department"),
    "heat.open": ("在办案件", "Open cases"),
    "heat.overdue": ("超期案件", "Overdue cases"),
    "street": ("街乡", "Street"),
    "department": ("部门", "Department"),
    "trend": ("近期趋势", "Trend"),
    "trend.days": ("统计范围", "Range"),
    "trend.option": ("近 {n} 天", "Last {n} days"),
    "day": ("日期", "Day"),
    "count": ("数量", "Count"),
    "measure": ("指标", "Measure"),
    "yes": ("是", "yes"),
}


def main() -> None:
    st.title(t("page.command_centre"))
    seconds = config().refresh_seconds
    st.caption(t("intro", TEXT, seconds=number(seconds)))
    st.fragment(live, run_every=seconds)()


def live() -> None:
    """Every section in turn; a problem is shown where it happened and the next section still
    renders, unless the gateway is down or the token refused (then every section would say so)."""
    for section in SECTIONS:
        try:
            section()
        except GatewayProblem as problem:
            show_problem(problem)
            if problem.kind in ("down", "auth"):
                return
    refreshed_caption()


# --- funnel and today ----------------------------------------------------------------------------


def funnel_section() -> None:
    overview: Json = get(OVERVIEW)
    st.subheader(t("funnel", TEXT))
    stages = overview["stages"]
    *stage_columns, open_column, overdue_column = st.columns(len(STAGES) + 2)
    for column, stage in zip(stage_columns, STAGES, strict=True):
        column.metric(t(f"stage.{stage}"), number(stages.get(stage, 0)))
    open_column.metric(t("open", TEXT), number(overview["open"]))
    overdue_column.metric(t("overdue_cases", TEXT), number(overview["overdue"]))
    rows = [{"stage": t(f"stage.{s}"), "cases": stages.get(s, 0)} for s in STAGES]
    chart = charts.funnel(
        rows, category="stage", value="cases", titles=(t("stage", TEXT), t("cases", TEXT))
    )
    st.altair_chart(chart, width="stretch")


def today_section() -> None:
    today = trend()["days"][-1]
    st.subheader(t("today", TEXT, day=today["day"]))
    for column, measure in zip(st.columns(len(MEASURES)), MEASURES, strict=True):
        label = t("today.measure", TEXT, measure=t(f"measure.{measure}", TEXT))
        column.metric(label, number(today[measure]))


def trend() -> Json:
    """The trend over the chosen days (7 until someone picks 30)."""
    return get(TREND, days=st.session_state.get(TREND_CHOICE, TREND_DAYS[0]))


# --- supervision ---------------------------------------------------------------------------------


def supervision_section() -> None:
    board: Json = get(SUPERVISION)
    st.subheader(t("supervision", TEXT))
    counts = board["counts"]
    for column, section in zip(st.columns(len(BOARD)), BOARD, strict=True):
        column.metric(t(f"board.{section}", TEXT), number(counts.get(section, 0)))
    departments = reference.names().departments
    for tab, section in zip(st.tabs([t(f"board.{s}", TEXT) for s in BOARD]), BOARD, strict=True):
        with tab:
            board_table(board[section], counts.get(section, 0), section, departments)


def board_table(rows: list[Json], total: int, section: str, departments: Mapping[str, str]) -> None:
    if not rows:
        st.info(
            t("board.empty", TEXT, section=t(f"board.{section}", TEXT)),
            icon=":material/check_circle:",
        )
        return
    st.dataframe([board_row(row, departments) for row in rows], hide_index=True, width="stretch")
    if total > len(rows):
        st.caption(t("board.more", TEXT, shown=number(len(rows)), total=number(total)))


def board_row(row: Json, departments: Mapping[str, str]) -> dict[str, str]:
    """One obligation as a person reads it: names, Beijing time, the status in words."""
    status = row.get("status") or ""
    return {
        t("col.title", TEXT): row.get("title") or row["case_id"][:8],
        t("col.department", TEXT): departments.get(row["department"], row["department"]),
        t("col.obligation", TEXT): t(f"obligation.{row['obligation']}", TEXT),
        t("col.street", TEXT): reference.names().street(row["street"]),
        t("col.community", TEXT): row["community"],
        t("col.due", TEXT): china_time(row["due_at"]),
        t("col.status", TEXT): t(f"status.{status}", TEXT) if status else "",
        t("col.escalated", TEXT): t("yes", TEXT) if row["escalated"] else "",
    }


# --- street × department -------------------------------------------------------------------------


def heatmap_section() -> None:
    cells: list[Json] = get(LINKAGE)
    st.subheader(t("heatmap", TEXT))
    if not cells:
        empty()
        return
    rows = street_department_totals(cells, reference.names().streets, reference.names().departments)
    titles = (t("department", TEXT), t("street", TEXT))
    for column, (value, scheme) in zip(st.columns(len(HEATMAPS)), HEATMAPS, strict=True):
        with column:
            chart = charts.heatmap(
                rows,
                x="department",
                y="street",
                value=value,
                titles=(*titles, t(f"heat.{value}", TEXT)),
                scheme=scheme,
            )
            st.markdown(f"**{t(f'heat.{value}', TEXT)}**")
            st.altair_chart(chart, width="stretch")


def street_department_totals(
    cells: list[Json], streets: Mapping[str, str], departments: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The linkage cells (street × department × community) summed over communities, named."""
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"open": 0, "overdue": 0})
    for cell in cells:
        total = totals[(cell["street"], cell["department"])]
        total["open"] += int(cell["open"])
        total["overdue"] += int(cell["overdue"])
    return [
        {"street": streets.get(s, s), "department": departments.get(d, d), **total}
        for (s, d), total in sorted(totals.items())
    ]


# --- trend ---------------------------------------------------------------------------------------


def trend_section() -> None:
    st.subheader(t("trend", TEXT))
    st.radio(
        t("trend.days", TEXT),
        TREND_DAYS,
        format_func={n: t("trend.option", TEXT, n=n) for n in TREND_DAYS}.__getitem__,
        key=TREND_CHOICE,
        horizontal=True,
    )
    days = trend()["days"]
    chart = charts.trend_lines(
        [day | {"label": day["day"][5:]} for day in days],  # MM-DD: the year is in the caption
        x="label",
        series={m: t(f"measure.{m}", TEXT) for m in MEASURES},
        titles=(t("day", TEXT), t("count", TEXT), t("measure", TEXT)),
    )
    st.altair_chart(chart, width="stretch")
    st.caption(f"{days[0]['day']} – {days[-1]['day']}")


SECTIONS: tuple[Callable[[], None], ...] = (
    funnel_section,
    today_section,
    supervision_section,
    heatmap_section,
    trend_section,
)

main()
