"""A small process supervisor for `whistleloop up`: start children, restart crashes, stop cleanly.

Each child's output goes to `<var>/logs/<name>.log`. A child that exits while we are not stopping is
restarted after a back-off that doubles (1 s … 30 s) and resets once it has stayed up for a minute.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.lifeline import parent_env

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff: float = 1.0
    started_at: float = 0.0
    restart_at: float | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    def __init__(self, children: list[Child], log_dir: Path) -> None:
        self.children = children
        self.log_dir = log_dir
        self.stopping = False

    def start_all(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            self._start(child)

    def _start(self, child: Child) -> None:
        with open(self.log_dir / f"{child.name}.log", "ab") as out:
            child.process = subprocess.Popen(
                child.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **child.env, **parent_env()},
                start_new_session=True,  # Ctrl-C reaches us, and we stop the children in order
            )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s", child.name, extra={"child": child.name, "pid": child.process.pid})

    def poll(self) -> None:
        """Restarts children that died, each after its back-off."""
        now = time.monotonic()
        for child in self.children:
            if self.stopping or child.running:
                if child.running and now - child.started_at > STABLE_AFTER:
                    child.backoff = 1.0
                continue
            if child.restart_at is None:
                code = child.process.returncode if child.process else None
                child.restart_at = now + child.backoff
                log.warning(
                    "%s exited (%s); restarting in %.0f s",
                    child.name,
                    code,
                    child.backoff,
                    extra={"child": child.name, "exit_code": code},
                )
                child.backoff = min(child.backoff * 2, MAX_BACKOFF)
            elif now >= child.restart_at:
                child.restarts += 1
                self._start(child)

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM in reverse start order, then SIGKILL whatever is still there after `timeout`."""
        self.stopping = True
        for child in reversed(self.children):
            if child.running:
                assert child.process is not None
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()
