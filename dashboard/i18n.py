"""UI text in Chinese (default) and English: one table of shared words here, one per page beside it.

`t(key)` looks the key up in the page's table, then in `COMMON`; the language is the session's
choice (the sidebar toggle), Chinese until a user picks English.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

LANGUAGES = {"zh": "中文", "en": "English"}
DEFAULT = "zh"

Table = Mapping[str, tuple[str, str]]  # key → (zh, en)

COMMON: Table = {
    "app.title": ("街乡吹哨 · 部门报到", "The street whistles, departments report in"),
    "page.command_centre": ("指挥中心", "Command centre"),
    "page.departments": ("部门响应", "Department response"),
    "page.linkage": ("街乡–部门–社区联动", "Street–department–community linkage"),
    "page.cases": ("案件", "Cases"),
    "page.audit": ("审计", "Audit"),
    "language": ("语言", "Language"),
    "refreshed": ("数据更新于", "Updated at"),
    "empty": ("暂无数据", "Nothing to show yet"),
    "problem.down": (
        "无法连接网关，请稍后再试（{detail}）",
        "The gateway cannot be reached; try again shortly ({detail})",
    ),
    "problem.auth": (
        "访问令牌无效或已过期，请联系管理员（{detail}）",
        "The access token is missing, invalid or expired; ask an administrator ({detail})",
    ),
    "problem.forbidden": ("无权查看此内容（{detail}）", "Not allowed to see this ({detail})"),
    "problem.not_found": ("未找到（{detail}）", "Not found ({detail})"),
    "problem.invalid": ("输入有误：{detail}", "Invalid input: {detail}"),
    "problem.error": ("网关出错：{detail}", "The gateway failed: {detail}"),
    "stage.collect": ("收集", "Collect"),
    "stage.dispatch": ("分流", "Dispatch"),
    "stage.handle": ("处置", "Handle"),
    "stage.feedback": ("反馈", "Feedback"),
    "stage.evaluate": ("评价", "Evaluate"),
    "status.reported": ("已上报", "Reported"),
    "status.accepted": ("已受理", "Accepted"),
    "status.rejected": ("不予受理", "Rejected"),
    "status.whistled": ("已吹哨，待报到", "Whistled"),
    "status.disputed": ("移交争议", "Disputed"),
    "status.in_handling": ("办理中", "In handling"),
    "status.handled": ("已反馈，待核查", "Handled"),
    "status.closed": ("已结案", "Closed"),
    "status.cancelled": ("已撤销", "Cancelled"),
}


def lang() -> str:
    value = st.session_state.get("lang", DEFAULT)
    return value if value in LANGUAGES else DEFAULT


def t(key: str, table: Table | None = None, **values: object) -> str:
    """The text of `key` in the session's language; the key itself if no table has it."""
    entry = (table or {}).get(key) or COMMON.get(key)
    if entry is None:
        return key
    text = entry[0] if lang() == "zh" else entry[1]
    return text.format(**values) if values else text
