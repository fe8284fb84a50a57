"""The rich console every command prints through, and its progress bars."""

from __future__ import annotations

import shutil

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def wide_console() -> Console:
    """Wide enough for the Chinese tables when output is piped (no terminal to ask)."""
    return Console(width=shutil.get_terminal_size((160, 40)).columns)


def counted_progress(console: Console, label_width: int) -> Progress:
    """Bars of counted work (events, notifications): a label, the bar, done/total, time left."""
    return Progress(
        TextColumn(f"{{task.description:<{label_width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )
