"""`whistleloop feed` as an operator runs it: a department's live feed, one JSON line per frame."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from infra.nats.server import free_port
from tests.e2e.test_up import WHISTLELOOP, start_up

#: Generous bounds for a loaded machine; the demo whistles its first case within seconds.
START_TIMEOUT = 60.0
FRAME_TIMEOUT = 60.0


def feed_command_exists() -> bool:
    result = subprocess.run(
        [str(WHISTLELOOP), "feed", "--help"], capture_output=True, text=True, check=False
    )
    return result.returncode == 0


class Lines:
    """A process's output read by a thread, so a test can wait for a line with a deadline and a
    chatty process never blocks on a full pipe."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def until(self, timeout: float) -> Iterator[str]:
        """Lines as they come, until the stream ends or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                return
            if line is None:
                return
            yield line


def banner_token(lines: Lines, label: str) -> str:
    for line in lines.until(START_TIMEOUT):
        if line.strip().startswith(label):
            return line.rsplit(":", 1)[1].strip()
    raise AssertionError(f"the banner printed no {label!r}")


def wait_ready(base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError("the gateway never became ready")


def frames_until_an_event(lines: Lines, dept: str) -> list[dict[str, Any]]:
    frames = []
    for line in lines.until(FRAME_TIMEOUT):
        frame = json.loads(line)
        frames.append(frame)
        if frame["type"] == "event":
            assert frame["subject"].startswith(f"wl.dept.{dept}.")
            return frames
    raise AssertionError(f"no event on {dept}'s feed: {frames}")


@pytest.mark.skipif(not feed_command_exists(), reason="`whistleloop feed` is not wired yet")
def test_feed_prints_a_departments_events_as_json_lines_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    gateway_port = free_port()
    base = f"http://127.0.0.1:{gateway_port}"
    up, _ = start_up(tmp_path, "--demo", gateway_port=gateway_port)
    assert up.stdout is not None
    assert up.stderr is not None
    up_out = Lines(up.stdout)
    Lines(up.stderr)
    try:
        token = banner_token(up_out, "token department cgzf")
        wait_ready(base)
        feed = subprocess.Popen(
            [
                str(WHISTLELOOP),
                "feed",
                "--dept",
                "cgzf",
                "--since",
                "0",
                "--url",
                base,
                "--token",
                token,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert feed.stdout is not None
        try:
            frames = frames_until_an_event(Lines(feed.stdout), "cgzf")
        finally:
            feed.send_signal(signal.SIGINT)
            _, err = feed.communicate(timeout=30)
        assert feed.returncode == 0, err[-2000:]
        assert frames[-1]["seq"] >= 1
        assert isinstance(frames[-1]["event"]["payload"], dict)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)


@pytest.mark.skipif(not feed_command_exists(), reason="`whistleloop feed` is not wired yet")
def test_a_url_that_is_not_http_or_ws_is_one_clear_line() -> None:
    result = subprocess.run(
        [str(WHISTLELOOP), "feed", "--dept", "cgzf", "--url", "ftp://nowhere", "--token", "x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
