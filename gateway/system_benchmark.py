"""The full-system section of `whistleloop bench` (issue 8): every process `whistleloop up` runs
(relay, projectors, SLA clock, gateway; nats-server), commands paced over HTTP for minutes, and how
far behind the store each projection runs.

Lag is measured from outside, as `/readyz` reports it: the store's newest notification id and each
projection's position, read from the databases every `POLL_SECONDS` (not through the busy gateway). Event
n counts as stored when a poll first sees the store at or past n, and as applied by projection P
when a poll first sees P at or past n; the difference is its lag, exact to within one poll interval.
The target is absolute (200 commands/s sustained, lag p99 ≤ 1 s), so the "raw limit" of the rate row
is the pace asked for: the ratio says whether the system kept up with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.benchmark import (
    DRAIN_TIMEOUT,
    Driver,
    Pacer,
    _client,
    children,
    gateway_settings,
    tokens,
    wait_ready,
)
from infra.benchmarks.report import Limit, Result, Section, print_section
from infra.benchmarks.store import backends
from infra.nats.server import NatsServer
from infra.settings import Settings
from infra.store import open_service
from projections.benchmark import percentile
from projections.control import status_rows
from projections.views_db import open_views_engine

RATE = 200.0
SECONDS = 300.0
LAG_CEILING_MS = 1000.0
#: The achieved rate must be this share of the pace asked for to count as sustained.
KEPT_UP = 0.98
POLL_SECONDS = 0.05
#: Cases in flight: a case's next command waits for its previous one, so at 200/s with round trips
#: of up to ~0.3 s under load this many keep the pace.
WORKERS = 64
#: The processes of `whistleloop up` (the dashboard aside: its reads are the gateway's queries).
PROCESSES = ("relay", "project", "sla", "gateway")


@dataclass
class Probe:
    """`/readyz` samples: (seconds since start, store's newest id, {projection: position})."""

    samples: list[tuple[float, int, dict[str, int]]] = field(default_factory=list)

    def lags(self) -> dict[str, list[float]]:
        """Per projection, the lag of every event it applied (ms), by the first-seen rule."""
        stored_at = _first_seen([(t, store) for t, store, _ in self.samples])
        names = self.samples[0][2].keys() if self.samples else []
        found: dict[str, list[float]] = {}
        for name in names:
            applied_at = _first_seen([(t, positions[name]) for t, _, positions in self.samples])
            found[name] = [
                (at - stored_at[n]) * 1000 for n, at in applied_at.items() if n in stored_at
            ]
        return found

    def behind(self) -> dict[str, int]:
        """Events each projection had not applied at the last sample (0 when it caught up)."""
        if not self.samples:
            return {}
        _, store, positions = self.samples[-1]
        return {name: max(0, store - position) for name, position in positions.items()}


def _first_seen(series: list[tuple[float, int]]) -> dict[int, float]:
    """For a monotonic counter sampled over time: when each value it passed was first seen."""
    seen: dict[int, float] = {}
    last = series[0][1] if series else 0
    for at, value in series:
        for n in range(last + 1, value + 1):
            seen[n] = at
        last = max(last, value)
    return seen


@dataclass
class SystemRun:
    backend: str
    rate: float
    seconds: float
    sent: int
    elapsed: float
    posts: list[float]
    probe: Probe
    cpu: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)

    @property
    def achieved(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0

    def result(self) -> Result:
        return Result(
            self.backend,
            f"HTTP commands sustained for {self.seconds:g} s, every process of `up` running",
            self.sent,
            self.achieved,
            f"the pace asked for ({self.rate:g}/s)",
            self.rate,
            KEPT_UP,
        )

    def limits(self) -> list[Limit]:
        found = [
            Limit(
                self.backend,
                f"projection lag {name}, p99",
                len(lags),
                percentile(lags, 99) if len(lags) > 1 else float("inf"),
                "ms",
                LAG_CEILING_MS,
                percentile(lags, 50) if len(lags) > 1 else None,
            )
            for name, lags in sorted(self.probe.lags().items())
        ]
        if len(self.posts) > 1:
            found.append(
                Limit(
                    self.backend,
                    "POST round trip, p99",
                    len(self.posts),
                    percentile(self.posts, 99),
                    "ms",
                    median=percentile(self.posts, 50),
                )
            )
        found += [
            Limit(self.backend, f"peak RSS {name}", 1, mb, "MB")
            for name, mb in self.peak_mb.items()
        ]
        return found

    def notes(self) -> str:
        cpu = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.cpu.items())
        behind = {name: n for name, n in self.probe.behind().items() if n}
        line = (
            f"- {self.backend}: {self.sent} commands in {self.elapsed:.1f} s "
            f"({self.achieved:.0f}/s); CPU over the run: {cpu}"
        )
        if behind:
            line += f"; **still behind {DRAIN_TIMEOUT:g} s after the last command**: {behind}"
        return line + "."


def system_section(postgres_url: str, *, rate: float = RATE, seconds: float = SECONDS) -> Section:
    """The sustained run on SQLite, then on PostgreSQL (store and views) if a URL is given."""
    runs = []
    for name, make in backends(postgres_url):
        with make() as store:
            runs.append(_run(name, store, rate, seconds))
    section = Section(
        "Full system (issue 8)",
        f"{rate:g} commands/s sustained over HTTP for {seconds:g} s (≥ {KEPT_UP:.0%} of the pace) "
        f"with every projection's lag p99 ≤ {LAG_CEILING_MS:,.0f} ms.",
        _NOTES.format(workers=WORKERS, poll=POLL_SECONDS * 1000, processes=", ".join(PROCESSES))
        + "\n".join(run.notes() for run in runs),
        [run.result() for run in runs],
        [limit for run in runs for limit in run.limits()],
    )
    print_section(section)
    return section


def _run(backend: str, store: Settings, rate: float, seconds: float) -> SystemRun:
    with tempfile.TemporaryDirectory(prefix="wl-bench-system-") as tmp:
        work = Path(tmp)
        server = NatsServer(work / "nats").start()
        try:
            settings = gateway_settings(store, work / "var", server.url)
            with children(work / "logs") as running, _logs_kept_on_failure(work / "logs", backend):
                for name in PROCESSES:
                    running.start(name, name, settings)
                wait_ready(settings, running)
                run = asyncio.run(_paced(backend, settings, rate, seconds))
                for name in PROCESSES:
                    running.check(name)
            run.cpu = {name: running.cpu_seconds(name) for name in PROCESSES}
            run.peak_mb = {name: running.peak_mb(name) for name in PROCESSES}
        finally:
            server.kill()
    return run


@contextlib.contextmanager
def _logs_kept_on_failure(logs: Path, backend: str) -> Iterator[None]:
    """A failed run leaves its children's logs in var/bench/system-<backend>/ to read."""
    try:
        yield
    except BaseException:
        kept = Path("var/bench") / f"system-{backend.lower()}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(logs, kept)
        print(f"the children's logs are in {kept}")
        raise


async def _paced(backend: str, settings: Settings, rate: float, seconds: float) -> SystemRun:
    """Cases around the loop at `rate` commands/s while `/readyz` is sampled; then the drain."""
    posts: list[float] = []

    def record(_case_id: str, _step: Any, started: float, answered: float) -> None:
        posts.append((answered - started) * 1000)

    async with _client(settings, WORKERS) as http:
        driver = Driver(http, tokens(settings))
        await driver.run_case()  # warm-up: every process has seen a whole case
        started = time.perf_counter()
        prober = Prober(settings, started)
        prober.start()
        pacer = Pacer(rate, round(rate * seconds))

        async def worker() -> None:
            while await driver.run_case(pacer.slot, record) is not None:
                pass

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        elapsed = time.perf_counter() - started
        probe = prober.probe
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline and (not probe.samples or any(probe.behind().values())):
            await asyncio.sleep(POLL_SECONDS)
        prober.stopping.set()
        await asyncio.to_thread(prober.join)
    return SystemRun(backend, rate, seconds, len(posts), elapsed, posts, probe)


class Prober(threading.Thread):
    """Samples the store's newest notification id and every projection's position, straight from
    the databases (the gateway's `/readyz` reads the same, but answers late when it is busy)."""

    def __init__(self, settings: Settings, started: float) -> None:
        super().__init__(name="lag-probe", daemon=True)
        self.settings = settings
        self.started = started
        self.probe = Probe()
        self.stopping = threading.Event()

    def run(self) -> None:
        service = open_service(self.settings)
        views = open_views_engine(self.settings)
        try:
            while not self.stopping.is_set():
                store = service.recorder.max_notification_id() or 0
                positions = {
                    str(row["name"]): int(row["last_notification_id"] or 0)
                    for row in status_rows(views)
                }
                self.probe.samples.append((time.perf_counter() - self.started, store, positions))
                self.stopping.wait(POLL_SECONDS)
        finally:
            service.close()
            views.dispose()


_NOTES = """- Each backend runs on a fresh store with its own nats-server; {processes} run as separate
  `whistleloop` processes, as `whistleloop up` starts them (the dashboard aside). The benchmark
  process drives the gateway from {workers} cases in flight, each going around the closed loop
  (report → accept → whistle → report in → report handling → close → rating, the gateway section's
  mix), paced open-loop: a slow system shows as a lower achieved rate, not a slower pace.
- *projection lag*: from the moment an event is stored to the moment the projection has applied it,
  as the store's newest notification id and the projection's tracking row show them (what `/readyz`
  reports), read straight from the databases every {poll:.0f} ms (so ± one poll). Every event of the run
  counts, for each projection `project` runs (`dept_feeds` re-publishes to the departments' stream).
- The load generator shares the machine's two cores with the system it measures.
"""
