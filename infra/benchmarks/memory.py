"""A process's peak resident set, as the benchmarks report it."""

from __future__ import annotations

from pathlib import Path


def peak_rss_kib(pid: int | str = "self") -> int:
    """The process's peak resident set since its exec (`VmHWM`, kB); 0 when it is already gone.

    Not `ru_maxrss` from `wait4`: a forked child starts with its parent's resident set, so that
    counts the benchmark process's size whenever the child stays smaller.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
