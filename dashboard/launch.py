"""How `whistleloop dashboard` starts Streamlit: the script, the server flags and the CJK font.

Kept beside the app (and free of the other packages' imports) so the command line and the browser
tests start it the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
#: Debian's chromium has no CJK glyphs of its own and picks a Japanese variant unless told: name a
#: Simplified Chinese font first (NOTES.md); `fonts-noto-cjk` or `fonts-wqy-microhei` provide them.
FONT = "Source Sans, Noto Sans CJK SC, WenQuanYi Micro Hei, sans-serif"


def streamlit_argv(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--client.toolbarMode=viewer",
        f"--theme.font={FONT}",
    ]
