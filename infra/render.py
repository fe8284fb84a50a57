"""Terminal tables (rich) for the CLI: reference data, a case's history, store statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table

from domain.clock import CHINA_TZ
from domain.reference import ReferenceData

#: 中文 names of the events, as the command centre says them.
EVENT_LABELS = {
    "CaseReported": "上报",
    "CaseAccepted": "受理",
    "CaseRejected": "不予受理",
    "Whistled": "吹哨",
    "ReportedIn": "报到",
    "HandedOff": "移交",
    "HandOffDisputed": "移交争议",
    "ResponsibilityDetermined": "责任认定",
    "ConsultationHeld": "会商",
    "HandlingReported": "办理反馈",
    "SentBackForRework": "返工",
    "Closed": "核查结案",
    "Rated": "评价",
    "Reopened": "重启",
    "DeadlineMissed": "超期",
    "SupervisionIssued": "督办",
    "EscalatedToDistrict": "上报区级",
    "CaseCancelled": "撤销",
}

ROLE_LABELS = {
    "lead": "负责",
    "organise": "组织协调",
    "assist": "参与协助",
}


def china_time(moment: datetime) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


def departments_table(ref: ReferenceData) -> Table:
    table = Table(title=f"{ref.district} 职能部门 ({len(ref.departments)})")
    for column in ("代码", "部门", "简称", "联络员", "电话"):
        table.add_column(column)
    for d in ref.departments.values():
        table.add_row(
            d.code, d.name, d.short_name, f"{d.liaison.name}（{d.liaison.title}）", d.liaison.phone
        )
    return table


def duty_items_table(ref: ReferenceData) -> Table:
    title = f"街道职责清单 第 {ref.duty_list_version} 版 ({len(ref.duty_items)} 项)"
    table = Table(title=title)
    for column in ("编号", "事项", "街乡角色", "牵头部门", "配合部门", "响应", "办理"):
        table.add_column(column)
    for item in ref.duty_items.values():
        table.add_row(
            item.code,
            item.name,
            ROLE_LABELS[item.street_role],
            ref.departments[item.lead_department].short_name,
            "、".join(ref.departments[d].short_name for d in item.cooperating_departments),
            f"{item.response_limit_hours} 小时",
            f"{item.handling_limit_working_days} 个工作日",
        )
    return table


def streets_table(ref: ReferenceData) -> Table:
    table = Table(title=f"街乡与社区 ({len(ref.streets)} 个街乡, {len(ref.communities)} 个社区)")
    for column in ("街乡", "代码", "社区", "网格数"):
        table.add_column(column)
    for street in ref.streets.values():
        communities = [c for c in ref.communities.values() if c.street == street.code]
        table.add_row(
            street.name,
            street.code,
            "、".join(c.name for c in communities),
            str(sum(len(c.grids) for c in communities)),
        )
    return table


def history_table(history: list[dict[str, Any]]) -> Table:
    table = Table(title="案件历史（每一步都是不可篡改的事件）")
    for column in ("#", "时间", "事件", "操作者", "内容"):
        table.add_column(column)
    for entry in history:
        actor = entry["actor"]
        table.add_row(
            str(entry["version"]),
            china_time(entry["at"]),
            f"{EVENT_LABELS.get(entry['type'], entry['type'])} {entry['type']}",
            f"{actor['role']}:{actor['id']}",
            _summary(entry["payload"]),
        )
    return table


def _summary(payload: dict[str, Any]) -> str:
    shown = []
    for key, value in payload.items():
        if value in (None, "", [], {}):
            continue
        text = china_time(value) if isinstance(value, datetime) else str(value)
        shown.append(f"{key}={text[:60]}")
    return "; ".join(shown[:5])
