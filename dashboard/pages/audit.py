"""审计: one case's history with its hash chain, "verify" (the gateway recomputes it from the event
store), the inclusion proofs against the signed tree head, the case as it stood at any past moment
(inspector token only) and its history exported as CSV and JSON.

Every check runs in the gateway; this page only shows what it answers, so an inspector can compare
it with `whistleloop audit verify` or their own recomputation from the exported JSON.
"""

from __future__ import annotations

import re

import streamlit as st

from dashboard.client import GatewayProblem, Json
from dashboard.formatting import china_time, number
from dashboard.i18n import Table, lang, t
from dashboard.timeline import (
    event_label,
    history_csv,
    history_json,
    history_rows,
    short_hash,
    status_label,
)
from dashboard.ui import config, friendly, gateway, get

TEXT: Table = {
    "pick.recent": ("最近的案件", "Recent cases"),
    "pick.placeholder": ("选择一件案件", "Choose a case"),
    "pick.id": ("或输入案件编号", "Or enter a case id"),
    "pick.bad_id": (
        "案件编号应为 UUID，例如 6353ba58-389f-…",
        "A case id is a UUID, e.g. 6353ba58-389f-…",
    ),
    "pick.none": ("请选择或输入一件案件", "Choose or enter a case"),
    "no_events": (
        "审计日志中尚无此案件的事件，请稍后再试",
        "The audit log has no events of this case yet; try again shortly",
    ),
    "chain": ("事件与哈希链", "Events and hash chain"),
    "chain.help": (
        "叶哈希 = SHA-256(0x00‖事件规范 JSON)；链哈希 = SHA-256(上一链哈希‖事件规范 JSON)",
        "leaf = SHA-256(0x00 ‖ canonical JSON); chain = SHA-256(previous chain ‖ canonical JSON)",
    ),
    "chain.full": ("完整哈希", "Full hashes"),
    "verify": ("校验", "Verify"),
    "verify.button": ("向网关校验此案件", "Verify this case with the gateway"),
    "verify.ok": (
        "校验通过：全部事件与事件库一致，签名树头有效",
        "Verified: every event matches the event store and the signed head is valid",
    ),
    "verify.failed": (
        "校验未通过：见下表标记 ✗ 的事件",
        "Verification failed: see the events marked ✗",
    ),
    "verify.signature": ("树头签名（Ed25519）", "Tree head signature (Ed25519)"),
    "verify.tree_size": ("签名树头规模", "Signed tree size"),
    "verify.unchecked": ("未能校验（尚无树头或无公钥）", "not checked (no head yet, or no key)"),
    "col.event": ("事件", "Event"),
    "col.store_leaf": ("事件库叶哈希", "Store leaf hash"),
    "col.verdict": ("结果", "Result"),
    "col.leaf_ok": ("叶哈希", "Leaf"),
    "col.chain_ok": ("链", "Chain"),
    "col.included": ("包含证明", "Included"),
    "col.issues": ("问题", "Issues"),
    "issue.body_differs": ("审计记录内容被改动", "audit row body altered"),
    "issue.leaf_differs": ("叶哈希不符", "leaf hash differs"),
    "issue.chain_broken": ("哈希链断裂", "chain broken"),
    "issue.not_included": ("不在签名树中", "not in the signed tree"),
    "issue.missing_from_audit": ("审计日志缺失", "missing from the audit log"),
    "issue.missing_from_store": ("事件库中不存在", "missing from the event store"),
    "issue.undecodable": ("事件库记录无法解码", "undecodable in the store"),
    "pending": ("⏳ 待签名", "⏳ pending"),
    "proof": ("包含证明", "Inclusion proof"),
    "proof.head": (
        "签名树头：规模 {size} · 根 {root} · 密钥 {key_id} · 签名于 {at}",
        "Signed tree head: size {size} · root {root} · key {key_id} · signed {at}",
    ),
    "proof.pending": (
        "{n} 个事件在最新签名树头之后，待下次签名",
        "{n} events came after the latest signed head; the next head covers them",
    ),
    "proof.no_head": ("审计日志尚未签名树头", "The audit log has no signed tree head yet"),
    "col.leaf_index": ("叶序号", "Leaf index"),
    "col.tree_size": ("树规模", "Tree size"),
    "col.path": ("审计路径", "Audit path"),
    "travel": ("时光回溯", "Time travel"),
    "travel.moment": ("案件在此时刻的状态", "The case as it stood at"),
    "travel.version": ("版本", "Version"),
    "travel.status": ("状态", "Status"),
    "travel.stage": ("环节", "Stage"),
    "travel.lead": ("主责部门", "Lead department"),
    "travel.state": ("当时的完整状态", "The full state then"),
    "travel.needs_inspector": (
        "时光回溯需要纪检监察（inspector）令牌：请设置 WL_DASHBOARD_INSPECTOR_TOKEN",
        "Time travel needs an inspector token: set WL_DASHBOARD_INSPECTOR_TOKEN",
    ),
    "export": ("导出", "Export"),
    "export.csv": ("下载 CSV", "Download CSV"),
    "export.json": ("下载 JSON", "Download JSON"),
    "export.caption": ("共 {n} 个事件", "{n} events"),
}

UUID_SHAPE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
RECENT = 10
VERIFIED = "audit.verified"  # (case id, the gateway's answer) of the last verification


def tick(value: bool | str | None) -> str:
    if value == "pending":
        return t("pending", TEXT)
    return "—" if value is None else "✓" if value else "✗"


# --- choosing a case ------------------------------------------------------------------------------


def pick_case() -> str | None:
    """A typed id wins over the recent-cases box; a malformed one is refused here, not by the API."""
    recent = get("/api/v1/cases", limit=RECENT)["items"]
    titles = {c["case_id"]: f"{c['title']} · {china_time(c['reported_at'])}" for c in recent}
    columns = st.columns(2)
    with columns[0]:
        chosen: str | None = st.selectbox(
            t("pick.recent", TEXT),
            list(titles),
            index=None,
            format_func=lambda case_id: f"{titles[case_id]} · {case_id[:8]}",
            placeholder=t("pick.placeholder", TEXT),
            key="audit.recent",
        )
    with columns[1]:
        typed = st.text_input(t("pick.id", TEXT), key="audit.case_id", max_chars=36).strip()
    if typed and not UUID_SHAPE.match(typed):
        st.warning(t("pick.bad_id", TEXT), icon=":material/info:")
        return None
    return typed.lower() or chosen


# --- the sections ---------------------------------------------------------------------------------


def chain_section(history: list[Json]) -> None:
    st.subheader(t("chain", TEXT), help=t("chain.help", TEXT))
    st.dataframe(history_rows(history, with_hashes=True), hide_index=True, width="stretch")
    with st.expander(t("chain.full", TEXT)):
        st.dataframe(
            [
                {
                    "version": e["version"],
                    "notification_id": e["notification_id"],
                    "leaf_index": e["leaf_index"],
                    "leaf_hash": e["leaf_hash"],
                    "chain_hash": e["chain_hash"],
                }
                for e in history
            ],
            hide_index=True,
            width="stretch",
        )


def verify_section(case_id: str) -> None:
    st.subheader(t("verify", TEXT))
    if st.button(t("verify.button", TEXT), key="audit.verify", type="primary"):
        answer = gateway().get(f"/api/v1/cases/{case_id}/verify", lang=lang())
        st.session_state[VERIFIED] = (case_id, answer)
    last = st.session_state.get(VERIFIED)
    if not last or last[0] != case_id:
        return
    result: Json = last[1]
    if result["ok"]:
        st.success(t("verify.ok", TEXT), icon=":material/check_circle:")
    else:
        st.error(t("verify.failed", TEXT), icon=":material/cancel:")
    signature = result["head_signature_ok"]
    columns = st.columns(2)
    columns[0].metric(
        t("verify.signature", TEXT),
        tick(signature) if signature is not None else t("verify.unchecked", TEXT),
    )
    columns[1].metric(t("verify.tree_size", TEXT), number(result["tree_size"]))
    st.dataframe(verification_rows(result["events"]), hide_index=True, width="stretch")


def verification_rows(events: list[Json]) -> list[Json]:
    return [
        {
            t("travel.version", TEXT): e["version"],
            t("col.verdict", TEXT): tick(e["ok"]),
            t("col.leaf_ok", TEXT): tick(e["leaf_hash"] == e["store_leaf_hash"]),
            t("col.chain_ok", TEXT): tick(e["chain_ok"]),
            t("col.included", TEXT): tick(e["included"]),
            t("col.event", TEXT): event_label(e["event_type"]),
            t("col.issues", TEXT): "；".join(t(f"issue.{i}", TEXT) for i in e["issues"]),
            t("col.store_leaf", TEXT): short_hash(e["store_leaf_hash"]),
        }
        for e in events
    ]


def proof_section(case_id: str) -> None:
    st.subheader(t("proof", TEXT))
    try:
        proof = get(f"/api/v1/cases/{case_id}/proof")
    except GatewayProblem as problem:
        if problem.code != "no_tree_head":
            raise
        st.info(t("proof.no_head", TEXT), icon=":material/info:")
        return
    head = proof["tree_head"]
    st.caption(
        t(
            "proof.head",
            TEXT,
            size=number(head["tree_size"]),
            root=short_hash(head["root_hash"]),
            key_id=head["key_id"],
            at=china_time(head["timestamp"], with_seconds=True),
        )
    )
    st.dataframe(
        [
            {
                t("travel.version", TEXT): e["version"],
                t("col.event", TEXT): event_label(e["event_type"]),
                t("col.leaf_index", TEXT): e["leaf_index"],
                t("col.tree_size", TEXT): e["tree_size"],
                t("col.path", TEXT): " → ".join(short_hash(node) for node in e["proof"]),
            }
            for e in proof["events"]
        ],
        hide_index=True,
        width="stretch",
    )
    if proof["pending"]:
        st.caption(t("proof.pending", TEXT, n=len(proof["pending"])))
    with st.expander(t("col.path", TEXT)):
        st.json(proof, expanded=False)


def travel_section(case_id: str, history: list[Json]) -> None:
    """A slider over the case's event times; the case then, replayed by the gateway (inspectors)."""
    st.subheader(t("travel", TEXT))
    inspector = config().inspector_token
    if not inspector:
        st.info(t("travel.needs_inspector", TEXT), icon=":material/lock:")
        return
    moments = list(dict.fromkeys(e["timestamp"] for e in history))
    moment = st.select_slider(
        t("travel.moment", TEXT),
        options=moments,
        value=moments[-1],
        format_func=lambda value: china_time(value, with_seconds=True),
        key="audit.moment",
    )
    then = get(f"/api/v1/cases/{case_id}", token=inspector, as_of=moment)
    case = then["case"]
    columns = st.columns(4)
    columns[0].metric(t("travel.version", TEXT), then["version"])
    columns[1].metric(t("travel.status", TEXT), status_label(case.get("status")))
    columns[2].metric(t("travel.stage", TEXT), t(f"stage.{case.get('stage')}"))
    columns[3].metric(t("travel.lead", TEXT), case.get("lead_department") or "—")
    with st.expander(t("travel.state", TEXT)):
        st.json(case, expanded=False)


def export_section(case_id: str, history: list[Json]) -> None:
    st.subheader(t("export", TEXT))
    st.caption(t("export.caption", TEXT, n=len(history)))
    columns = st.columns(2)
    with columns[0]:
        st.download_button(
            t("export.csv", TEXT),
            data=history_csv(history),
            file_name=f"case-{case_id}-history.csv",
            mime="text/csv",
            key="audit.csv",
        )
    with columns[1]:
        st.download_button(
            t("export.json", TEXT),
            data=history_json(case_id, history),
            file_name=f"case-{case_id}-history.json",
            mime="application/json",
            key="audit.json",
        )


def main() -> None:
    st.title(t("page.audit"))
    case_id = None
    with friendly():
        case_id = pick_case()
    if not case_id:
        st.info(t("pick.none", TEXT), icon=":material/info:")
        return
    history: list[Json] = []
    with friendly():
        history = get(f"/api/v1/cases/{case_id}/history")
        if history:
            chain_section(history)
        else:
            st.info(t("no_events", TEXT), icon=":material/info:")
    if not history:
        return
    for section in (verify_section, proof_section):
        with friendly():
            section(case_id)
    with friendly():
        travel_section(case_id, history)
    export_section(case_id, history)


main()
