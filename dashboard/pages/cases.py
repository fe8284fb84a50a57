"""案件: find cases (text, street, status, stage, department, urgency, overdue, report dates), 50 a page
with a "next page" cursor, and open one: its details and its timeline with the deadlines marked.

The list is the gateway's keyset-paged `/api/v1/cases` (never more than a page is fetched); a page's
cursors are kept in the session so "previous" and "first" work, and any filter change starts over.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import streamlit as st

from dashboard.client import Json
from dashboard.formatting import china_time
from dashboard.i18n import Table, t
from dashboard.reference import Names, names
from dashboard.timeline import STATUSES, render_timeline, status_label
from dashboard.ui import friendly, get

TEXT: Table = {
    "filters": ("筛选", "Filters"),
    "text": ("标题包含", "Title contains"),
    "street": ("街乡", "Street"),
    "status": ("状态", "Status"),
    "stage": ("环节", "Stage"),
    "department": ("部门", "Department"),
    "urgency": ("紧急程度", "Urgency"),
    "overdue": ("超期", "Overdue"),
    "reported_from": ("上报日期起", "Reported from"),
    "reported_to": ("上报日期止", "Reported to"),
    "any": ("全部", "Any"),
    "overdue.true": ("仅超期", "Overdue only"),
    "overdue.false": ("未超期", "Not overdue"),
    "urgency.normal": ("一般", "Normal"),
    "urgency.urgent": ("紧急", "Urgent"),
    "urgency.emergency": ("突发", "Emergency"),
    "col.title": ("标题", "Title"),
    "col.street": ("街乡", "Street"),
    "col.status": ("状态", "Status"),
    "col.stage": ("环节", "Stage"),
    "col.lead": ("主责部门", "Lead department"),
    "col.urgency": ("紧急程度", "Urgency"),
    "col.reported_at": ("上报时间", "Reported at"),
    "col.case_id": ("案件编号", "Case id"),
    "page": ("第 {n} 页 · 本页 {count} 件", "Page {n} · {count} cases on this page"),
    "next": ("下一页", "Next page"),
    "previous": ("上一页", "Previous page"),
    "first": ("第一页", "First page"),
    "no_cases": ("没有符合条件的案件", "No case matches these filters"),
    "pick": ("查看案件", "Open a case"),
    "pick.placeholder": ("选择本页的一件案件", "Choose a case on this page"),
    "detail": ("案件详情", "Case details"),
    "assisting": ("协办部门", "Assisting departments"),
    "duty_item": ("职责事项", "Duty item"),
    "community": ("社区", "Community"),
    "round": ("办理轮次", "Round"),
    "rework": ("退回次数", "Reworks"),
    "time.reported_at": ("上报", "Reported"),
    "time.accepted_at": ("受理", "Accepted"),
    "time.whistled_at": ("吹哨", "Whistled"),
    "time.lead_reported_in_at": ("主责报到", "Lead reported in"),
    "time.handled_at": ("办结反馈", "Handled"),
    "time.closed_at": ("结案", "Closed"),
    "timeline": ("时间线", "Timeline"),
}

PAGE_SIZE = 50
STAGES = ("collect", "dispatch", "handle", "feedback", "evaluate")
URGENCIES = ("normal", "urgent", "emergency")
MILESTONES = (
    "reported_at",
    "accepted_at",
    "whistled_at",
    "lead_reported_in_at",
    "handled_at",
    "closed_at",
)
CURSORS = "cases.cursors"  # the cursors of the pages seen so far: [None, page 2's, …]
FILTERED = "cases.filtered"  # the filters those cursors belong to


def choice(name: str, options: list[str], shown: Mapping[str, str] | None = None) -> str:
    """A select box over `options` with "any" first; returns the code chosen, "" for any."""
    # Labels fixed now, in this run's language: a format function reading the session later
    # (Streamlit may call it outside the run) would mix languages.
    labels = {"": t("any", TEXT), **{code: (shown or {}).get(code, code) for code in options}}
    value: str = st.selectbox(
        t(name, TEXT), list(labels), format_func=labels.__getitem__, key=f"cases.{name}"
    )
    return value


def filters(known: Names) -> dict[str, Any]:
    """The filter widgets; returns the list's query parameters (empty ones are not sent)."""
    with st.expander(t("filters", TEXT), expanded=True):
        row = st.columns(4)
        with row[0]:
            text = st.text_input(t("text", TEXT), key="cases.text", max_chars=100)
        with row[1]:
            street = choice("street", list(known.streets), known.streets)
        with row[2]:
            status = choice("status", list(STATUSES), {s: status_label(s) for s in STATUSES})
        with row[3]:
            stage = choice("stage", list(STAGES), {s: t(f"stage.{s}") for s in STAGES})
        row = st.columns(4)
        with row[0]:
            department = choice("department", list(known.departments), known.departments)
        with row[1]:
            urgency = choice(
                "urgency", list(URGENCIES), {u: t(f"urgency.{u}", TEXT) for u in URGENCIES}
            )
        with row[2]:
            overdue = choice(
                "overdue",
                ["true", "false"],
                {v: t(f"overdue.{v}", TEXT) for v in ("true", "false")},
            )
        with row[3]:
            start = st.date_input(t("reported_from", TEXT), value=None, key="cases.from")
            end = st.date_input(t("reported_to", TEXT), value=None, key="cases.to")
    return {
        "text": text.strip(),
        "street": street,
        "status": status,
        "stage": stage,
        "department": department,
        "urgency": urgency,
        "overdue": overdue,
        "reported_from": start.isoformat() if isinstance(start, date) else "",
        "reported_to": end.isoformat() if isinstance(end, date) else "",
    }


# --- paging ---------------------------------------------------------------------------------------


def cursors(params: dict[str, Any]) -> list[str | None]:
    """The session's cursor stack for these filters; a change of filters starts at page one."""
    if st.session_state.get(FILTERED) != params:
        st.session_state[FILTERED] = params
        st.session_state[CURSORS] = [None]
    stack: list[str | None] = st.session_state[CURSORS]
    return stack


def _push(cursor: str) -> None:
    st.session_state[CURSORS].append(cursor)


def _pop() -> None:
    st.session_state[CURSORS].pop()


def _first() -> None:
    st.session_state[CURSORS] = [None]


def pager(stack: list[str | None], page: Json) -> None:
    count = len(page["items"])
    st.caption(t("page", TEXT, n=len(stack), count=count))
    buttons = st.columns([1, 1, 1, 5])
    with buttons[0]:
        st.button(t("first", TEXT), key="cases.first", on_click=_first, disabled=len(stack) < 2)
    with buttons[1]:
        st.button(t("previous", TEXT), key="cases.previous", on_click=_pop, disabled=len(stack) < 2)
    with buttons[2]:
        cursor = page.get("next_cursor")
        st.button(
            t("next", TEXT),
            key="cases.next",
            on_click=_push,
            args=(cursor,),
            disabled=not cursor,
        )


# --- the list and one case ------------------------------------------------------------------------


def case_rows(items: list[Json], known: Names) -> list[Json]:
    return [
        {
            t("col.title", TEXT): item["title"],
            t("col.street", TEXT): known.street(item["street"]),
            t("col.status", TEXT): status_label(item["status"]),
            t("col.stage", TEXT): t(f"stage.{item['stage']}"),
            t("col.lead", TEXT): lead(item, known),
            t("col.urgency", TEXT): t(f"urgency.{item['urgency']}", TEXT),
            t("col.reported_at", TEXT): china_time(item["reported_at"]),
            t("col.case_id", TEXT): item["case_id"],
        }
        for item in items
    ]


def pick(items: list[Json]) -> str | None:
    """A select box over the page's cases (reset when the page no longer holds the one picked)."""
    ids = [item["case_id"] for item in items]
    titles = {
        item["case_id"]: f"{item['title']} · {china_time(item['reported_at'])}" for item in items
    }
    if st.session_state.get("cases.pick") not in ids:
        st.session_state.pop("cases.pick", None)
    chosen: str | None = st.selectbox(
        t("pick", TEXT),
        ids,
        index=None,
        format_func=lambda case_id: f"{titles[case_id]} · {case_id[:8]}",
        placeholder=t("pick.placeholder", TEXT),
        key="cases.pick",
    )
    return chosen


def lead(case: Json, known: Names) -> str:
    code = case["lead_department"]
    return known.department(code) if code else "—"


def case_view(case_id: str, known: Names) -> None:
    detail = get(f"/api/v1/cases/{case_id}")
    case = detail["case"]
    st.subheader(f"{t('detail', TEXT)} · {case['title']}")
    columns = st.columns(4)
    columns[0].metric(t("status", TEXT), status_label(case["status"]))
    columns[1].metric(t("stage", TEXT), t(f"stage.{case['stage']}"))
    columns[2].metric(t("col.lead", TEXT), lead(case, known))
    columns[3].metric(t("urgency", TEXT), t(f"urgency.{case['urgency']}", TEXT))
    assisting = "、".join(known.department(d) for d in case["assisting_departments"]) or "—"
    st.caption(
        f"{t('street', TEXT)}：{known.street(case['street'])} · "
        f"{t('community', TEXT)}：{known.community(case['community'] or '—')} · "
        f"{t('duty_item', TEXT)}：{case['duty_item'] or '—'} · "
        f"{t('assisting', TEXT)}：{assisting} · "
        f"{t('round', TEXT)}：{case['round']} · {t('rework', TEXT)}：{case['rework_count']}"
    )
    st.caption(
        " · ".join(
            f"{t(f'time.{m}', TEXT)} {china_time(case[m])}" for m in MILESTONES if case.get(m)
        )
    )
    st.markdown(f"#### {t('timeline', TEXT)}")
    render_timeline(get(f"/api/v1/cases/{case_id}/history"), detail)


def main() -> None:
    st.title(t("page.cases"))
    chosen = None
    with friendly():
        known = names()
        params = filters(known)
        stack = cursors(params)
        page = get("/api/v1/cases", limit=PAGE_SIZE, cursor=stack[-1], **params)
        if not page["items"]:
            st.info(t("no_cases", TEXT), icon=":material/info:")
        else:
            st.dataframe(case_rows(page["items"], known), hide_index=True, width="stretch")
        pager(stack, page)
        chosen = pick(page["items"])
    if chosen:
        with friendly():
            case_view(chosen, known)


main()
