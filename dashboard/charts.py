"""Altair chart builders every page may use: funnel, heatmap, trend lines, pre-binned histogram.

They take plain rows (dicts, as the gateway sends them) and titles already translated, and know
nothing of pages or languages, so one look serves every page. Categories keep the order they come in
(the closed loop's stages, the histogram's bins, days), never Altair's alphabetical default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import altair as alt

Rows = Sequence[Mapping[str, Any]]
#: Colour schemes a heatmap may use (sequential, light = few).
Scheme = Literal["reds", "oranges", "blues", "greens", "greys"]

#: One bar colour for every page (the command centre's red); numbers on marks in dark grey.
BAR_COLOUR = "#c0392b"
LABEL_COLOUR = "#31333f"


def _frame(rows: Rows, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows with exactly `columns`: what the chart needs and no more goes to the browser."""
    return [{c: row.get(c) for c in columns} for row in rows]


def _inline(data: list[dict[str, Any]]) -> alt.InlineData:
    """Rows inline in the chart's spec (no pandas: the gateway's JSON goes in as it is)."""
    return alt.InlineData(values=data)


def funnel(rows: Rows, *, category: str, value: str, titles: tuple[str, str]) -> alt.LayerChart:
    """Horizontal bars in the rows' order (收集 at the top, 评价 at the bottom), each with its count;
    `titles` = (category, value)."""
    category_title, value_title = titles
    data = _frame(rows, (category, value))
    order = [row[category] for row in data]
    base = alt.Chart(_inline(data)).encode(
        y=alt.Y(f"{category}:N", sort=order, title=category_title),
        x=alt.X(f"{value}:Q", title=value_title),
        tooltip=[
            alt.Tooltip(f"{category}:N", title=category_title),
            alt.Tooltip(f"{value}:Q", title=value_title),
        ],
    )
    bars = base.mark_bar(color=BAR_COLOUR, cornerRadiusEnd=3)
    labels = base.mark_text(align="left", dx=4, color=LABEL_COLOUR).encode(text=f"{value}:Q")
    chart: alt.LayerChart = (bars + labels).properties(height=36 * max(len(order), 1))
    return chart


def heatmap(
    rows: Rows,
    *,
    x: str,
    y: str,
    value: str,
    titles: tuple[str, str, str],
    scheme: Scheme = "reds",
) -> alt.LayerChart:
    """A grid of `value` per (`x`, `y`) with the number in each cell; `titles` = (x, y, value)."""
    x_title, y_title, value_title = titles
    data = _frame(rows, (x, y, value))
    base = alt.Chart(_inline(data)).encode(
        x=alt.X(f"{x}:N", title=x_title, axis=alt.Axis(labelAngle=-40)),
        y=alt.Y(f"{y}:N", title=y_title),
        tooltip=[
            alt.Tooltip(f"{x}:N", title=x_title),
            alt.Tooltip(f"{y}:N", title=y_title),
            alt.Tooltip(f"{value}:Q", title=value_title),
        ],
    )
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(f"{value}:Q", title=value_title, scale=alt.Scale(scheme=scheme))
    )
    numbers = base.mark_text(color=LABEL_COLOUR).encode(
        text=alt.condition(f"datum.{value} > 0", f"{value}:Q", alt.value(""))
    )
    chart: alt.LayerChart = cells + numbers
    return chart


def trend_lines(
    rows: Rows,
    *,
    x: str,
    series: Mapping[str, str],
    titles: tuple[str, str, str],
) -> alt.Chart:
    """One line per `series` key (shown under its label) over `x`, taken as ordered categories
    (China dates as text, so a browser in another time zone does not shift them);
    `titles` = (x axis, y axis, legend)."""
    x_title, y_title, legend_title = titles
    long = [
        {"x": row[x], "series": label, "value": row.get(key, 0)}
        for row in rows
        for key, label in series.items()
    ]
    data = _frame(long, ("x", "series", "value"))
    chart: alt.Chart = (
        alt.Chart(_inline(data))
        .mark_line(point=True)
        .encode(
            x=alt.X("x:O", title=x_title, sort=None, axis=alt.Axis(labelAngle=-40)),
            y=alt.Y("value:Q", title=y_title),
            color=alt.Color("series:N", title=legend_title, sort=list(series.values())),
            tooltip=[
                alt.Tooltip("x:O", title=x_title),
                alt.Tooltip("series:N", title=legend_title),
                alt.Tooltip("value:Q", title=y_title),
            ],
        )
    )
    return chart


def histogram(rows: Rows, *, bin_label: str, count: str, titles: tuple[str, str]) -> alt.Chart:
    """Bars of counts already binned by the gateway (e.g. response hours), bins in the rows' order;
    `titles` = (bin, count)."""
    bin_title, count_title = titles
    data = _frame(rows, (bin_label, count))
    chart: alt.Chart = (
        alt.Chart(_inline(data))
        .mark_bar(color=BAR_COLOUR)
        .encode(
            x=alt.X(f"{bin_label}:N", sort=[row[bin_label] for row in data], title=bin_title),
            y=alt.Y(f"{count}:Q", title=count_title),
            tooltip=[
                alt.Tooltip(f"{bin_label}:N", title=bin_title),
                alt.Tooltip(f"{count}:Q", title=count_title),
            ],
        )
    )
    return chart
