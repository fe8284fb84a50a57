"""街乡–部门–社区联动: who is working on what where, live.

The linkage matrix (`/views/linkage`: street × department × community with open, overdue, closed and
mean response) as a table and a heatmap, and a flow view street → department → community whose edges
carry the open and overdue counts (overdue edges red). The street filter sits outside the live
fragment, so choosing a street does not wait for a refresh and a refresh does not reset it.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import charts, reference, ui
from dashboard import dept_charts as labels
from dashboard.formatting import hours, number
from dashboard.i18n import Table, lang, t

TEXT: Table = {
    "intro": (
        "街乡吹哨、部门报到、社区落实：每个街乡、部门与社区之间的在办、超期与已结案件，实时更新。",
        "Streets whistle, departments report in, communities follow through: open, overdue and "
        "closed cases between them, live.",
    ),
    "street": ("街乡", "Street"),
    "all_streets": ("全部街乡", "All streets"),
    "department": ("部门", "Department"),
    "community": ("社区", "Community"),
    "open": ("在办", "Open"),
    "overdue": ("超期", "Overdue"),
    "closed": ("已结", "Closed"),
    "responded": ("已报到", "Reported in"),
    "mean_response_hours": ("平均响应时长", "Mean response time"),
    "matrix": ("联动矩阵", "Linkage matrix"),
    "heatmap": ("热力图", "Heatmap"),
    "heat_value": ("热力图指标", "Heatmap shows"),
    "flow": ("联动流向", "Flow"),
    "flow.caption": (
        "街乡 → 部门 → 社区；边上为在办／超期件数，红色表示有超期。",
        "Street → department → community; edges show open / overdue cases, red where any is overdue.",
    ),
    "flow.edge": ("在办 {open}／超期 {overdue}", "open {open} / overdue {overdue}"),
    "flow.dropped": (
        "另有 {count} 个联动单元未画出（只画超期最多、在办最多的前 {limit} 个）。",
        "{count} more cells are not drawn (only the {limit} most overdue and busiest are).",
    ),
    "flow.none": ("当前没有在办案件。", "No open cases right now."),
    "empty.linkage": (
        "还没有街乡吹哨的案件：部门报到后这里会显示联动情况。",
        "No case has been whistled yet: the linkage shows once departments are on cases.",
    ),
}

#: The linkage figures, in the table's order after street, department and community.
COUNTS = ("open", "overdue", "closed", "responded")


def street_filter(names: reference.Names) -> str | None:
    """A street, or None for all of them."""
    options: list[str | None] = [None, *names.streets]
    picked: str | None = st.selectbox(
        t("street", TEXT),
        options,
        format_func={
            code: t("all_streets", TEXT) if code is None else names.street(code) for code in options
        }.__getitem__,
        key="linkage_street",
    )
    return picked


def matrix_rows(cells: list[dict[str, Any]], names: reference.Names) -> list[dict[str, str]]:
    """The API's cells in the API's order, with names and formatted numbers."""
    return [
        {
            t("street", TEXT): names.street(cell["street"]),
            t("department", TEXT): names.department(cell["department"]),
            t("community", TEXT): names.community(cell["community"]),
            **{t(key, TEXT): number(cell[key]) for key in COUNTS},
            t("mean_response_hours", TEXT): hours(cell["mean_response_hours"], lang()),
        }
        for cell in cells
    ]


def heat_rows(
    cells: list[dict[str, Any]], names: reference.Names, street: str | None, value: str
) -> list[dict[str, Any]]:
    """`value` summed per (department, street), or per (department, community) within one street."""
    across = "community" if street else "street"
    label = names.community if street else names.street
    summed: dict[tuple[str, str], int] = {}
    for cell in cells:
        key = (names.department(cell["department"]), label(cell[across]))
        summed[key] = summed.get(key, 0) + int(cell[value])
    return [{"department": d, "across": a, "value": n} for (d, a), n in summed.items()]


def heatmap_section(
    cells: list[dict[str, Any]], names: reference.Names, street: str | None
) -> None:
    st.subheader(t("heatmap", TEXT))
    value = str(
        st.radio(
            t("heat_value", TEXT),
            ("open", "overdue", "closed"),
            format_func={key: t(key, TEXT) for key in ("open", "overdue", "closed")}.__getitem__,
            horizontal=True,
            key="linkage_heat_value",
        )
    )
    across = t("community" if street else "street", TEXT)
    chart = charts.heatmap(
        heat_rows(cells, names, street, value),
        x="across",
        y="department",
        value="value",
        titles=(across, t("department", TEXT), t(value, TEXT)),
    )
    st.altair_chart(chart, width="stretch")


def flow_section(cells: list[dict[str, Any]], names: reference.Names) -> None:
    st.subheader(t("flow", TEXT))
    st.caption(t("flow.caption", TEXT))
    if not any(cell["open"] or cell["overdue"] for cell in cells):
        st.info(t("flow.none", TEXT), icon=":material/info:")
        return
    dot, dropped = labels.flow_dot(cells, names, t("flow.edge", TEXT))
    st.graphviz_chart(dot, width="stretch")
    if dropped:
        st.caption(t("flow.dropped", TEXT, count=dropped, limit=labels.MAX_FLOW_EDGES))


def live(street: str | None) -> None:
    """The live part: re-read and redrawn every `refresh_seconds` by the fragment."""
    with ui.friendly():
        names = reference.names()
        cells = [
            c for c in ui.get("/api/v1/views/linkage") if street is None or c["street"] == street
        ]
        if not cells:
            st.info(t("empty.linkage", TEXT), icon=":material/info:")
            return
        totals = st.columns(len(COUNTS[:3]))
        for column, key in zip(totals, COUNTS[:3], strict=True):
            column.metric(t(key, TEXT), number(sum(int(c[key]) for c in cells)))
        st.subheader(t("matrix", TEXT))
        st.dataframe(matrix_rows(cells, names), hide_index=True, width="stretch")
        left, right = st.columns(2)
        with left:
            heatmap_section(cells, names, street)
        with right:
            flow_section(cells, names)
        ui.refreshed_caption()


def main() -> None:
    st.title(t("page.linkage"))
    st.caption(t("intro", TEXT))
    with ui.friendly():
        street = street_filter(reference.names())
        st.fragment(live, run_every=ui.config().refresh_seconds)(street)


main()
