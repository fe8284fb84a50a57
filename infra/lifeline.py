"""A child of `up`, `bench` or `chaos` ends when the process that started it is gone.

Children run in sessions of their own, so that a Ctrl-C reaches only the parent, which stops them
in order. A parent killed outright (SIGKILL, OOM) would leave them running for ever: a bench child
was once found hours later, still retrying a nats-server that had gone with its parent. The parent
names itself in WL_PARENT_PID; the child watches for being re-parented and then sends itself
SIGTERM, so it stops as cleanly as when its parent stops it.
"""

from __future__ import annotations

import os
import signal
import threading
import time

PARENT_ENV = "WL_PARENT_PID"
#: Seconds between two looks at the parent: an orphan lingers at most this long.
INTERVAL = 1.0


def parent_env() -> dict[str, str]:
    """What a spawner adds to its child's environment to be watched."""
    return {PARENT_ENV: str(os.getpid())}


def watch_parent(interval: float = INTERVAL) -> None:
    """Starts the watch when this process was spawned with `parent_env()`.

    The variable is taken out of the environment: this process's own children (a parallel
    rebuild's workers) have another parent, and are watched only if it names itself."""
    named = os.environ.pop(PARENT_ENV, "")
    if not named.isdigit():
        return
    parent = int(named)
    if os.getppid() != parent:  # gone before we looked
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
