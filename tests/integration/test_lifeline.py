"""A `whistleloop` child whose parent is SIGKILLed stops by itself (infra/lifeline.py).

The child is `whistleloop relay` pointed at a NATS port nobody listens on: it retries for ever,
the very orphan once found hours after its `bench` parent had gone. It also ignored SIGTERM while
connecting, until infra/signals.py gave every command's work a grace period after the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from infra import lifeline, signals
from infra.nats.server import free_port

#: The parent: starts the relay as `up`, `bench` and `chaos` start their children, prints its pid.
PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from infra.lifeline import parent_env
    child = subprocess.Popen(
        [sys.argv[1], "relay"], env={**os.environ, **parent_env()}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie no one has reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def start_parent(tmp_path: Path, watched: bool) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WL_")}
    env |= {"WL_NATS_URL": f"nats://127.0.0.1:{free_port()}", "WL_VAR_DIR": str(tmp_path)}
    script = PARENT if watched else PARENT.replace("**parent_env()", "")
    whistleloop = str(Path(sys.executable).with_name("whistleloop"))
    parent = subprocess.Popen(
        [sys.executable, "-c", script, whistleloop], env=env, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_child_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent, child = start_parent(tmp_path, watched=True)
    time.sleep(3)  # the relay is up and retrying NATS
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # SIGTERM within a look at the parent; the relay, still connecting, is cancelled after GRACE
    timeout = lifeline.INTERVAL + signals.GRACE + 5
    assert wait_gone(child, timeout), "the orphaned relay kept running"


def test_without_the_lifeline_the_orphan_would_run_on(tmp_path: Path) -> None:
    """The control: the same child, not told its parent, outlives it (so the test above can fail)."""
    parent, child = start_parent(tmp_path, watched=False)
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert not wait_gone(child, timeout=4)
    finally:
        os.kill(child, signal.SIGKILL)
