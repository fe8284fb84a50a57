"""Labels, measure formatting and the flow graph of the 部门响应 and 联动 pages.

The gateway answers with codes (`cgzf`, `jianwai`, `jianwai_c01`) and raw numbers (rates in 0–1, hours,
scores 0–100); this module turns them into what a reader in the command centre expects, in the
session's language, and draws the street → department → community flow as Graphviz DOT. The bar
charts and heatmaps come from the shared `dashboard.charts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dashboard.formatting import hours, number, percent
from dashboard.i18n import Table, lang, t
from dashboard.reference import Names

TEXT: Table = {
    "measure.response_rate": ("响应率", "Response rate"),
    "measure.response_timeliness": ("响应及时率", "Response timeliness"),
    "measure.mean_response_hours": ("平均响应时长", "Mean response time"),
    "measure.p50_response_hours": ("中位响应时长", "Median response time"),
    "measure.p90_response_hours": ("90分位响应时长", "90th percentile response time"),
    "measure.handling_timeliness": ("处置及时率", "Handling timeliness"),
    "measure.overdue_rate": ("超期率", "Overdue rate"),
    "measure.on_time_closure": ("按期办结率", "On-time closure"),
    "measure.rework_rate": ("返工率", "Rework rate"),
    "measure.resolution_rate": ("解决率", "Resolution rate"),
    "measure.satisfaction_rate": ("满意率", "Satisfaction rate"),
    "measure.disposal_rate": ("办理率", "Disposal rate"),
    "measure.overdue_pending_rate": ("超期待处置率", "Overdue pending rate"),
    "measure.street_score": ("街乡评分", "Street's score"),
    "measure.two_way_score": ("双向评价得分", "Two-way assessment score"),
    "measure.composite_index": ("综合指数", "Composite index"),
    "flag.satisfaction_below_70": ("满意率低于70%", "Satisfaction below 70 %"),
    "flag.score_below_60": ("评分低于60分", "Score below 60"),
    "flag.veto": ("一票否决（红色督办）", "Veto (red supervision)"),
    "bucket.upto": ("≤{upper} 小时", "≤ {upper} h"),
    "bucket.over": (">{lower} 小时", "> {lower} h"),
}

#: Measures on a 0–100 scale (shown as numbers); `*_hours` are times; every other measure is a rate.
SCORES = frozenset({"street_score", "two_way_score", "composite_index"})

#: Edges the flow view draws at most: the most overdue, then the busiest (a district has hundreds).
MAX_FLOW_EDGES = 60

OVERDUE_COLOUR = "#d62728"
CALM_COLOUR = "#2c7fb8"


def measure_label(key: str) -> str:
    return t(f"measure.{key}", TEXT) if f"measure.{key}" in TEXT else key


def measure_text(key: str, value: float | None) -> str:
    """A measure as a reader expects it: a percent for rates, hours for times, a number for scores."""
    if key.endswith("_hours"):
        return hours(value, lang())
    if key in SCORES:
        return number(None if value is None else round(value, 1))
    return percent(value)


def flag_labels(flags: Mapping[str, bool]) -> list[str]:
    """The raised threshold flags of one department, in words (the API's keys when unknown)."""
    return [
        t(f"flag.{key}", TEXT) if f"flag.{key}" in TEXT else key for key, on in flags.items() if on
    ]


# --- response-time distribution ------------------------------------------------------------------


def bucket_labels(histogram: Sequence[Mapping[str, Any]]) -> list[str]:
    """'≤0.5 小时', '≤1 小时', … '>168 小时' for the API's bins (the last has no upper bound)."""
    labels: list[str] = []
    lower = 0.0
    for row in histogram:
        upper = row["upper_hours"]
        if upper is None:
            labels.append(t("bucket.over", TEXT, lower=f"{lower:g}"))
        else:
            labels.append(t("bucket.upto", TEXT, upper=f"{upper:g}"))
            lower = float(upper)
    return labels


def histogram_rows(
    histogram: Sequence[Mapping[str, Any]], bucket: str, count: str
) -> list[dict[str, Any]]:
    """The API's bins as rows {bucket label, count}, for the chart and the table beside it."""
    labels = bucket_labels(histogram)
    return [
        {bucket: label, count: int(row["count"])}
        for label, row in zip(labels, histogram, strict=True)
    ]


# --- linkage -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    """A street → department or department → community edge with its live counts."""

    source: str
    target: str
    open: int
    overdue: int


def flow_edges(cells: Iterable[Mapping[str, Any]]) -> tuple[list[Edge], list[Edge], int]:
    """Street → department edges (summed) and department → community edges of the live cells.

    Only cells with open or overdue cases are drawn; the most overdue and busiest come first and at
    most `MAX_FLOW_EDGES` department → community edges are kept. Returns both edge lists and how many
    live cells were left out.
    """
    live = [c for c in cells if c["open"] or c["overdue"]]
    live.sort(
        key=lambda c: (-c["overdue"], -c["open"], c["street"], c["department"], c["community"])
    )
    kept, dropped = live[:MAX_FLOW_EDGES], max(0, len(live) - MAX_FLOW_EDGES)
    upper: dict[tuple[str, str], tuple[int, int]] = {}
    for c in kept:
        o, d = upper.get((c["street"], c["department"]), (0, 0))
        upper[(c["street"], c["department"])] = (o + c["open"], d + c["overdue"])
    streets = [Edge(s, d, o, late) for (s, d), (o, late) in upper.items()]
    communities = [Edge(c["department"], c["community"], c["open"], c["overdue"]) for c in kept]
    return streets, communities, dropped


def flow_dot(cells: Iterable[Mapping[str, Any]], who: Names, edge_label: str) -> tuple[str, int]:
    """A left-to-right DOT graph street → department → community; overdue edges red.

    `edge_label` is a format string with `{open}` and `{overdue}`. Returns the DOT and how many live
    cells were left out of the picture.
    """
    streets, communities, dropped = flow_edges(cells)
    lines = [
        "digraph linkage {",
        "  rankdir=LR; bgcolor=transparent;",
        '  node [fontname="Noto Sans CJK SC, WenQuanYi Micro Hei, sans-serif", fontsize=11];',
        '  edge [fontname="Noto Sans CJK SC, WenQuanYi Micro Hei, sans-serif", fontsize=10];',
    ]
    nodes: dict[str, str] = {}
    for edge in streets:
        nodes[f"s_{edge.source}"] = f'label="{_quoted(who.street(edge.source))}", shape=box'
        nodes[f"d_{edge.target}"] = f'label="{_quoted(who.department(edge.target))}", shape=ellipse'
    for edge in communities:
        nodes[f"c_{edge.target}"] = f'label="{_quoted(who.community(edge.target))}", shape=note'
    lines += [f'  "{_quoted(node)}" [{attrs}];' for node, attrs in nodes.items()]
    lines += [_edge_line("s_", "d_", e, edge_label) for e in streets]
    lines += [_edge_line("d_", "c_", e, edge_label) for e in communities]
    lines.append("}")
    return "\n".join(lines), dropped


def _quoted(text: str) -> str:
    """Text safe inside a DOT double-quoted string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _edge_line(source_prefix: str, target_prefix: str, edge: Edge, edge_label: str) -> str:
    colour = OVERDUE_COLOUR if edge.overdue else CALM_COLOUR
    width = 2.5 if edge.overdue else 1.2
    label = edge_label.format(open=edge.open, overdue=edge.overdue)
    return (
        f'  "{_quoted(source_prefix + edge.source)}" -> "{_quoted(target_prefix + edge.target)}" '
        f'[label="{label}", color="{colour}", fontcolor="{colour}", penwidth={width}];'
    )
