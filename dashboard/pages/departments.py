"""部门响应: the departments ranked by every DOMAIN.md measure over a period, with threshold flags,
one department's response-time distribution and counts, and a drill-down to its cases.

Everything comes from the aggregate views (`/views/performance`, `/departments/{d}/performance`);
the case list is read a page of 50 at a time, so the page stays fast on a district-size store.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import streamlit as st

from dashboard import charts, reference, ui
from dashboard import dept_charts as labels
from dashboard.formatting import china_time, number
from dashboard.i18n import Table, t

TEXT: Table = {
    "intro": (
        "各职能部门在所选期间内的响应、处置与评价情况；指标口径见 DOMAIN.md。",
        "How each department responded, handled and was rated in the chosen period.",
    ),
    "period": ("统计期间", "Period"),
    "period.this_month": ("本月", "This month"),
    "period.month": ("按月", "By month"),
    "period.range": ("日期范围", "Date range"),
    "period.pick_month": ("月份", "Month"),
    "period.pick_range": ("起止日期", "From – to"),
    "period.caption": (
        "统计期间：{start} 至 {end}（北京时间）",
        "Period: {start} to {end} (Beijing time)",
    ),
    "by": ("排序依据", "Rank by"),
    "by.score": ("双向评价得分", "Two-way assessment score"),
    "by.received": ("接收吹哨数", "Whistles received"),
    "ranking": ("部门排名", "Department ranking"),
    "col.rank": ("排名", "Rank"),
    "col.department": ("部门", "Department"),
    "col.received": ("接收吹哨", "Whistles received"),
    "col.flags": ("预警", "Flags"),
    "flagged": ("触发阈值预警：{items}", "Thresholds crossed: {items}"),
    "empty.period": (
        "所选期间内没有部门被吹哨或办理案件，请换一个期间。",
        "No department was whistled or handled a case in this period; pick another one.",
    ),
    "distribution": ("响应时长分布", "Response-time distribution"),
    "pick_department": ("选择部门", "Department"),
    "col.bucket": ("响应时长", "Response time"),
    "col.count": ("次数", "Count"),
    "distribution.none": ("该部门在所选期间内没有报到记录。", "No report-ins in this period."),
    "distribution.data": ("分布数据", "The numbers"),
    "counts": ("计数", "Counts"),
    "col.count_name": ("项目", "Item"),
    "col.count_value": ("数量", "Number"),
    "count.received": ("接收吹哨", "Whistles received"),
    "count.responded": ("已报到", "Reported in"),
    "count.response_on_time": ("按时报到", "Reported in on time"),
    "count.response_due": ("应报到", "Report-ins due"),
    "count.handled": ("已反馈处置", "Handling reported"),
    "count.handling_on_time": ("按时处置", "Handled on time"),
    "count.handling_due": ("应处置", "Handling due"),
    "count.handling_done": ("已处置", "Handling done"),
    "count.sent_back": ("被返工", "Sent back for rework"),
    "count.closed": ("结案", "Closed"),
    "count.closed_on_time": ("按期结案", "Closed on time"),
    "count.rated": ("居民评价", "Residents' ratings"),
    "count.rated_solved": ("评价已解决", "Rated solved"),
    "count.satisfied": ("满意", "Satisfied"),
    "count.basically_satisfied": ("基本满意", "Basically satisfied"),
    "count.street_score_count": ("街乡评分次数", "Street scores"),
    "count.handoffs_out": ("移交他部门", "Handed off"),
    "count.disputes_lost": ("争议认定败诉", "Disputes lost"),
    "count.supervision_white": ("白色督办", "White supervisions"),
    "count.supervision_yellow": ("黄色督办", "Yellow supervisions"),
    "count.supervision_red": ("红色督办", "Red supervisions"),
    "count.escalations": ("上报区级", "Escalations to the district"),
    "count.deadlines_missed": ("超期次数", "Deadlines missed"),
    "count.open_obligations": ("当前在办事项", "Open obligations now"),
    "count.open_overdue": ("当前超期事项", "Overdue now"),
    "count.open_handling": ("当前待处置", "Handling open now"),
    "count.open_handling_overdue": ("当前处置超期", "Handling overdue now"),
    "cases": ("部门案件", "The department's cases"),
    "cases.caption": (
        "该部门参与过的全部案件（含已移交、已结束），按上报时间由新到旧，每页 {limit} 件。",
        "Every case the department is or was on, newest report first, {limit} a page.",
    ),
    "cases.more": ("加载更多", "More"),
    "cases.none": ("该部门暂无案件。", "This department has no cases yet."),
    "col.title": ("标题", "Title"),
    "col.street": ("街乡", "Street"),
    "col.community": ("社区", "Community"),
    "col.status": ("状态", "Status"),
    "col.stage": ("阶段", "Stage"),
    "col.lead": ("牵头部门", "Lead department"),
    "col.reported_at": ("上报时间", "Reported"),
    "col.whistled_at": ("吹哨时间", "Whistled"),
    "col.response_deadline": ("报到时限", "Report-in due"),
    "col.lead_reported_in_at": ("报到时间", "Reported in"),
    "col.handling_deadline": ("处置时限", "Handling due"),
    "col.closed_at": ("结案时间", "Closed"),
    "col.case_id": ("案件编号", "Case id"),
}

#: What the ranking may be sorted by (the gateway's `by`), best first for each.
RANKING_KEYS = (
    "score",
    "composite_index",
    "response_timeliness",
    "handling_timeliness",
    "on_time_closure",
    "response_rate",
    "resolution_rate",
    "satisfaction_rate",
    "mean_response_hours",
    "overdue_rate",
    "rework_rate",
    "received",
)

#: Marks a department over a threshold (in the warning and before its name in the ranking).
FLAG = "🚩"
#: Cases per page of the drill-down (the gateway's default page size).
CASE_PAGE = 50
#: Months the month picker offers, this one included.
MONTHS_BACK = 12
#: China-time columns of the drill-down table, in order after the case's identity.
TIME_COLUMNS = (
    "reported_at",
    "whistled_at",
    "response_deadline",
    "lead_reported_in_at",
    "handling_deadline",
    "closed_at",
)


def _months(today: date) -> list[str]:
    """This month and the eleven before it, as YYYY-MM."""
    months, first = [], today.replace(day=1)
    for _ in range(MONTHS_BACK):
        months.append(first.strftime("%Y-%m"))
        first = (first - timedelta(days=1)).replace(day=1)
    return months


def gateway_today() -> date:
    """The China date on the gateway's clock (the periods are the gateway's, not this machine's)."""
    return date.fromisoformat(ui.get("/api/v1/views/trend", days=1)["end"])


def period_params() -> dict[str, str]:
    """The period picker: this month (the gateway's month to date), a whole month, or a date range."""
    modes = ("this_month", "month", "range")
    mode = st.radio(
        t("period", TEXT),
        modes,
        format_func={m: t(f"period.{m}", TEXT) for m in modes}.__getitem__,
        horizontal=True,
        key="dept_period_mode",
    )
    if mode == "this_month":
        return {}
    today = gateway_today()
    if mode == "month":
        month = st.selectbox(t("period.pick_month", TEXT), _months(today), key="dept_month")
        return {"month": str(month)}
    picked = st.date_input(
        t("period.pick_range", TEXT),
        value=(today.replace(day=1), today),
        max_value=today,
        key="dept_range",
    )
    days = [d for d in (picked if isinstance(picked, tuple) else (picked,)) if d is not None]
    if not days:
        return {}
    return {"start": days[0].isoformat(), "end": days[-1].isoformat()}


def _is_empty(ranking: list[dict[str, Any]]) -> bool:
    """Nothing happened in the period: every count of the period is zero (open-now counts aside)."""
    return all(
        value == 0
        for entry in ranking
        for name, value in entry["counts"].items()
        if not name.startswith("open_")
    )


def ranking_rows(ranking: list[dict[str, Any]], names: reference.Names) -> list[dict[str, str]]:
    """One row per department in the API's order; every measure the API returns, formatted.

    A flagged department's name starts with 🚩, so it stands out in a table of eighteen.
    """
    rows = []
    for entry in ranking:
        flags = labels.flag_labels(entry["flags"])
        department = names.department(entry["department"])
        row = {
            t("col.rank", TEXT): "—" if entry["rank"] is None else str(entry["rank"]),
            t("col.department", TEXT): f"{FLAG} {department}" if flags else department,
            t("col.received", TEXT): number(entry["counts"]["received"]),
        }
        for key, value in entry["measures"].items():
            row[labels.measure_label(key)] = labels.measure_text(key, value)
        row[t("col.flags", TEXT)] = "、".join(flags)
        rows.append(row)
    return rows


def ranking_section(params: dict[str, str], names: reference.Names) -> list[dict[str, Any]]:
    """The ranking table; returns the ranking (empty when nothing happened in the period)."""
    st.subheader(t("ranking", TEXT))
    by = st.selectbox(
        t("by", TEXT),
        RANKING_KEYS,
        format_func={
            k: t(f"by.{k}", TEXT) if f"by.{k}" in TEXT else labels.measure_label(k)
            for k in RANKING_KEYS
        }.__getitem__,
        key="dept_by",
    )
    ranking: list[dict[str, Any]] = ui.get("/api/v1/views/performance", by=by, **params)
    if not ranking or _is_empty(ranking):
        st.info(t("empty.period", TEXT), icon=":material/info:")
        return []
    flagged = [
        f"{names.department(e['department'])}（{'、'.join(labels.flag_labels(e['flags']))}）"
        for e in ranking
        if any(e["flags"].values())
    ]
    if flagged:
        st.warning(t("flagged", TEXT, items="；".join(flagged)), icon=":material/flag:")
    st.dataframe(ranking_rows(ranking, names), hide_index=True, width="stretch")
    return ranking


def distribution_section(
    params: dict[str, str], ranking: list[dict[str, Any]], names: reference.Names
) -> str:
    """One department's response-time histogram and counts; returns the department picked."""
    st.subheader(t("distribution", TEXT))
    code = str(
        st.selectbox(
            t("pick_department", TEXT),
            [entry["department"] for entry in ranking],
            format_func=names.department,
            key="dept_pick",
        )
    )
    with ui.friendly():
        detail = ui.get(f"/api/v1/departments/{code}/performance", **params)
        st.caption(t("period.caption", TEXT, **detail["period"]))
        bucket, count = t("col.bucket", TEXT), t("col.count", TEXT)
        rows = labels.histogram_rows(detail["histogram"], bucket, count)
        left, right = st.columns([3, 2])
        with left:
            if not any(row[count] for row in rows):
                st.info(t("distribution.none", TEXT), icon=":material/info:")
            else:
                chart = charts.histogram(
                    rows, bin_label=bucket, count=count, titles=(bucket, count)
                )
                st.altair_chart(chart, width="stretch")
            with st.expander(t("distribution.data", TEXT)):
                st.dataframe(rows, hide_index=True, width="stretch")
        with right:
            st.dataframe(counts_rows(detail["counts"]), hide_index=True, width="stretch")
    return code


def counts_rows(counts: dict[str, int]) -> list[dict[str, str]]:
    """The department's counts (whistles, hand-offs, disputes lost, supervisions…) in words."""
    name, value = t("col.count_name", TEXT), t("col.count_value", TEXT)
    return [
        {name: t(f"count.{k}", TEXT) if f"count.{k}" in TEXT else k, value: number(v)}
        for k, v in counts.items()
    ]


def _cursors(code: str) -> list[str | None]:
    """The pages of the drill-down shown so far (None is the first); reset when the department changes."""
    if st.session_state.get("dept_cases_of") != code:
        st.session_state["dept_cases_of"] = code
        st.session_state["dept_cursors"] = [None]
    cursors: list[str | None] = st.session_state["dept_cursors"]
    return cursors


def cases_rows(items: list[dict[str, Any]], names: reference.Names) -> list[dict[str, str]]:
    """The drill-down table: the case's identity, then its milestones in Beijing time."""
    rows = []
    for case in items:
        row = {
            t("col.title", TEXT): case["title"],
            t("col.street", TEXT): names.street(case["street"]),
            t("col.community", TEXT): names.community(case["community"] or ""),
            t("col.status", TEXT): t(f"status.{case['status']}"),
            t("col.stage", TEXT): t(f"stage.{case['stage']}"),
            t("col.lead", TEXT): names.department(case["lead_department"] or ""),
        }
        row |= {t(f"col.{name}", TEXT): china_time(case[name]) for name in TIME_COLUMNS}
        row[t("col.case_id", TEXT)] = case["case_id"]
        rows.append(row)
    return rows


def cases_section(code: str, names: reference.Names) -> None:
    """The department's cases, 50 a page, with a button that loads the next page below."""
    st.subheader(f"{t('cases', TEXT)} · {names.department(code)}")
    st.caption(t("cases.caption", TEXT, limit=CASE_PAGE))
    cursors = _cursors(code)
    items: list[dict[str, Any]] = []
    next_cursor: str | None = None
    for cursor in cursors:
        page = ui.get("/api/v1/cases", involved=code, limit=CASE_PAGE, cursor=cursor)
        items += page["items"]
        next_cursor = page["next_cursor"]
    if not items:
        st.info(t("cases.none", TEXT), icon=":material/info:")
        return
    st.dataframe(cases_rows(items, names), hide_index=True, width="stretch")
    if next_cursor:
        st.button(
            t("cases.more", TEXT), on_click=cursors.append, args=(next_cursor,), key="dept_more"
        )


def main() -> None:
    st.title(t("page.departments"))
    st.caption(t("intro", TEXT))
    with ui.friendly():
        names = reference.names()
        params = period_params()
        ranking = ranking_section(params, names)
        if not ranking:
            return
        code = distribution_section(params, ranking, names)
        with ui.friendly():
            cases_section(code, names)
        ui.refreshed_caption()


main()
