"""A case's events as people read them: what happened (zh/en), who did it, when (Beijing time).

The 案件 page draws them as a timeline with the case's deadlines marked (overdue ones red); the 审计
page lists the same events with their hash chain and exports them. Both start from the gateway's
`/cases/{id}/history` (every event, from the audit log) and `/cases/{id}` (deadlines, obligations).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import altair as alt
import streamlit as st

from dashboard.client import Json
from dashboard.formatting import CHINA, china_time
from dashboard.i18n import Table, t

TEXT: Table = {
    "event.CaseReported": ("上报", "Reported"),
    "event.CaseAccepted": ("受理", "Accepted"),
    "event.CaseRejected": ("不予受理", "Rejected"),
    "event.Whistled": ("吹哨", "Whistled"),
    "event.ReportedIn": ("部门报到", "Reported in"),
    "event.HandedOff": ("移交", "Handed off"),
    "event.HandOffDisputed": ("移交争议", "Hand-off disputed"),
    "event.ResponsibilityDetermined": ("职责认定", "Responsibility determined"),
    "event.ConsultationHeld": ("会商", "Consultation held"),
    "event.HandlingReported": ("办理反馈", "Handling reported"),
    "event.SentBackForRework": ("退回重办", "Sent back for rework"),
    "event.Closed": ("结案", "Closed"),
    "event.Rated": ("评价", "Rated"),
    "event.Reopened": ("重新办理", "Reopened"),
    "event.DeadlineMissed": ("超时未办", "Deadline missed"),
    "event.SupervisionIssued": ("督办", "Supervision issued"),
    "event.EscalatedToDistrict": ("上报区级", "Escalated to the district"),
    "event.CaseCancelled": ("撤销", "Cancelled"),
    "role.resident": ("居民", "Resident"),
    "role.grid_worker": ("网格员", "Grid worker"),
    "role.community": ("社区", "Community"),
    "role.street": ("街乡", "Street"),
    "role.department": ("部门", "Department"),
    "role.command_centre": ("指挥中心", "Command centre"),
    "role.inspector": ("纪检监察", "Inspector"),
    "role.system": ("系统", "System"),
    "col.version": ("版本", "Version"),
    "col.time": ("时间", "Time"),
    "col.event": ("事件", "Event"),
    "col.actor": ("操作人", "Actor"),
    "col.kind": ("类别", "Kind"),
    "col.leaf": ("叶哈希", "Leaf hash"),
    "col.chain": ("链哈希", "Chain hash"),
    "kind.event": ("事件", "Event"),
    "kind.deadline": ("时限", "Deadline"),
    "deadline.response": ("{dept} 响应时限", "{dept} response deadline"),
    "deadline.handling": ("{dept} 办理时限", "{dept} handling deadline"),
    "mark.met": ("按时完成", "met"),
    "mark.late": ("逾期完成", "met late"),
    "mark.overdue": ("已逾期", "overdue"),
    "mark.open": ("未到期", "not due yet"),
    "mark.ended": ("已结束（移交）", "ended (handed off)"),
    "deadlines": ("时限", "Deadlines"),
    "no_deadlines": ("此案件尚无时限", "This case has no deadlines yet"),
    "no_events": (
        "尚无事件记录（审计日志尚未写入）",
        "No events yet (the audit log has not caught up)",
    ),
}

#: Events that mean something went wrong on the case: drawn in red.
ALARM_EVENTS = frozenset({"DeadlineMissed", "SupervisionIssued", "EscalatedToDistrict"})
RED, GREY, BLUE = "#d62728", "#7f7f7f", "#1f77b4"
HASH_SHOWN = 12


#: Case statuses in the closed loop's order (the gateway's `status` values).
STATUSES = (
    "reported",
    "accepted",
    "rejected",
    "whistled",
    "disputed",
    "in_handling",
    "handled",
    "closed",
    "cancelled",
)


def label(prefix: str, code: str | None) -> str:
    """`prefix.code` in the session language (this table, then `COMMON`); the code itself when
    neither knows it."""
    if not code:
        return "—"
    key = f"{prefix}.{code}"
    text = t(key, TEXT)
    return code if text == key else text


def event_label(event_type: str) -> str:
    return label("event", event_type)


def status_label(status: str | None) -> str:
    return label("status", status)


def actor_label(actor: Json) -> str:
    return f"{label('role', str(actor.get('role', '')))} · {actor.get('id', '')}"


def short_hash(value: str | None) -> str:
    return f"{value[:HASH_SHOWN]}…" if value else "—"


# --- deadline marks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """A deadline on the case: whose, when due, when met (if at all), and how it stands now."""

    kind: str  # response | handling
    department: str
    due: str
    done: str | None
    state: str  # met | late | overdue | open | ended

    @property
    def overdue(self) -> bool:
        return self.state in ("overdue", "late")

    @property
    def label(self) -> str:
        return t(f"deadline.{self.kind}", TEXT, dept=self.department)


def deadline_marks(detail: Json, now: datetime | None = None) -> list[Mark]:
    """Each department's response deadline and the lead's handling deadline, from the case detail.

    `now` defaults to the wall clock: the gateway's open deadlines are judged against the present.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    marks = [_response_mark(o, moment) for o in detail.get("obligations", [])]
    case = detail.get("case", {})
    if case.get("handling_deadline"):
        still_open = any(d["obligation"] == "handling" for d in detail.get("deadlines", []))
        done = None if still_open else case.get("handled_at")
        due = case["handling_deadline"]
        dept = str(case.get("lead_department") or "")
        marks.append(Mark("handling", dept, due, done, _state(due, done, moment, active=True)))
    return sorted(marks, key=lambda m: m.due)


def _response_mark(obligation: Json, moment: datetime) -> Mark:
    due, done = obligation["response_deadline"], obligation.get("reported_in_at")
    state = _state(due, done, moment, active=bool(obligation.get("active", True)))
    return Mark("response", str(obligation["department"]), due, done, state)


def _state(due: str, done: str | None, now: datetime, *, active: bool) -> str:
    if done:
        return "late" if _instant(done) > _instant(due) else "met"
    if not active:
        return "ended"
    return "overdue" if _instant(due) < now else "open"


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- tables and the chart -------------------------------------------------------------------------


def history_rows(history: Sequence[Json], with_hashes: bool = False) -> list[dict[str, Any]]:
    """One row per event, oldest first; with the (shortened) leaf and chain hashes when asked."""
    rows = []
    for event in history:
        row: dict[str, Any] = {
            t("col.version", TEXT): event["version"],
            t("col.time", TEXT): china_time(event["timestamp"], with_seconds=True),
            t("col.event", TEXT): event_label(event["event_type"]),
            t("col.actor", TEXT): actor_label(event["actor"]),
        }
        if with_hashes:
            row[t("col.leaf", TEXT)] = short_hash(event["leaf_hash"])
            row[t("col.chain", TEXT)] = short_hash(event["chain_hash"])
        rows.append(row)
    return rows


def _wall(value: str) -> str:
    """Beijing wall time labelled UTC: the chart's UTC scale then reads Beijing time in any browser."""
    moment = _instant(value).astimezone(CHINA)
    return moment.replace(tzinfo=None).isoformat() + "Z"


def timeline_chart(history: Sequence[Json], marks: Sequence[Mark]) -> alt.LayerChart:
    """Events as dots on a time axis, deadlines as vertical rules (red when overdue)."""
    kind, what = t("col.kind", TEXT), t("col.event", TEXT)
    events = [
        {
            "at": _wall(e["timestamp"]),
            "when": china_time(e["timestamp"]),
            what: event_label(e["event_type"]),
            t("col.actor", TEXT): actor_label(e["actor"]),
            "colour": RED if e["event_type"] in ALARM_EVENTS else BLUE,
            kind: t("kind.event", TEXT),
        }
        for e in history
    ]
    rules = [
        {
            "at": _wall(m.due),
            "when": china_time(m.due),
            what: f"{m.label}（{t(f'mark.{m.state}', TEXT)}）",
            "colour": RED if m.overdue else GREY,
        }
        for m in marks
    ]
    x = alt.X("at:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(format="%m-%d %H:%M"))
    colour = alt.Color("colour:N", scale=None)
    dots = (
        alt.Chart({"values": events})
        .mark_circle(size=120)
        .encode(
            x=x,
            y=alt.Y(f"{kind}:N", title=None),
            color=colour,
            tooltip=[f"{what}:N", f"{t('col.actor', TEXT)}:N", "when:N"],
        )
    )
    lines = (
        alt.Chart({"values": rules})
        .mark_rule(strokeWidth=2, strokeDash=[4, 3])
        .encode(x=x, color=colour, tooltip=[f"{what}:N", "when:N"])
    )
    return alt.LayerChart(layer=[lines, dots], height=140)


def render_timeline(history: Sequence[Json], detail: Json) -> None:
    """The case's timeline: chart, the events in order and the deadline marks (overdue in red)."""
    if not history:
        st.info(t("no_events", TEXT), icon=":material/info:")
        return
    marks = deadline_marks(detail)
    st.altair_chart(timeline_chart(history, marks), width="stretch")
    st.dataframe(history_rows(history), hide_index=True, width="stretch")
    st.markdown(f"**{t('deadlines', TEXT)}**")
    if not marks:
        st.caption(t("no_deadlines", TEXT))
    for mark in marks:
        st.markdown(mark_line(mark))


def mark_line(mark: Mark) -> str:
    """One deadline as a line of markdown: red when overdue (or met late)."""
    text = f"⏰ {mark.label}：{china_time(mark.due)} — {t(f'mark.{mark.state}', TEXT)}"
    if mark.done:
        text += f"（{china_time(mark.done)}）"
    return f":red[{text}]" if mark.overdue else text


# --- export ---------------------------------------------------------------------------------------

EXPORT_FIELDS = (
    "version",
    "notification_id",
    "leaf_index",
    "timestamp",
    "event_type",
    "actor_role",
    "actor_id",
    "payload",
    "leaf_hash",
    "chain_hash",
)


def history_csv(history: Sequence[Json]) -> bytes:
    """The history as CSV (UTF-8 with BOM, so Excel shows the Chinese), one row per event."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for event in history:
        actor = event.get("actor", {})
        writer.writerow(
            {
                **{k: event.get(k) for k in EXPORT_FIELDS},
                "actor_role": actor.get("role", ""),
                "actor_id": actor.get("id", ""),
                "payload": json.dumps(event.get("payload", {}), ensure_ascii=False, sort_keys=True),
            }
        )
    return out.getvalue().encode("utf-8-sig")


def history_json(case_id: str, history: Sequence[Json]) -> bytes:
    """The history exactly as the gateway gave it, under the case's id."""
    document = {"case_id": case_id, "events": list(history)}
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
