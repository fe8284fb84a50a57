"""Numbers and times as people in China read them: Beijing time, thousands separators, percents."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def china_time(value: str | None, with_seconds: bool = False) -> str:
    """An ISO-8601 instant (as the gateway sends it) in Beijing time; empty for None."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(CHINA)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def number(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def percent(ratio: float | None) -> str:
    """A ratio in 0–1 as a percent with one decimal; an em dash when there is nothing to divide."""
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


def hours(value: float | None, lang: str = "zh") -> str:
    if value is None:
        return "—"
    return f"{value:.1f} 小时" if lang == "zh" else f"{value:.1f} h"
