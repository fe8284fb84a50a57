"""The rich console every command prints through."""

from __future__ import annotations

import shutil

from rich.console import Console


def wide_console() -> Console:
    """Wide enough for the Chinese tables when output is piped (no terminal to ask)."""
    return Console(width=shutil.get_terminal_size((160, 40)).columns)
