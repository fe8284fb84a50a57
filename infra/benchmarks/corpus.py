"""A benchmark corpus: an event store of N simulated events and a nats-server whose WL_EVENTS holds
them, built once per (seed, N) under `var/bench/corpus-<seed>-<n>/` and reused afterwards.

Building 10^6 events takes minutes (the bulk simulator, then the real relay), so a corpus is kept;
`complete.json` is written only once both halves are done, and a directory without it (or from
another `SIMULATOR_VERSION`) is thrown away and built again. Benchmarks must leave the stream as they
found it: they may add and delete consumers, never messages (WL_EVENTS denies both anyway).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from domain.service import CaseService
from infra.leader import NoLeaderLock
from infra.nats.server import NatsServer
from infra.relay import Relay
from infra.settings import Settings
from infra.simulator import SIMULATOR_VERSION, bulk_traffic, simulation_clock
from infra.store import open_service
from infra.terminal import counted_progress, wide_console

MARKER = "complete.json"
DEFAULT_ROOT = Path("var/bench")


@dataclass(frozen=True)
class Corpus:
    """A finished corpus: where it is and what it holds (times are ISO strings of the simulation)."""

    path: str
    seed: int
    events: int
    cases: int
    first_event_at: str
    last_event_at: str
    stream_last_seq: int
    build_seconds: float
    simulator: int = SIMULATOR_VERSION

    @property
    def store_settings(self) -> Settings:
        return Settings(var_dir=Path(self.path) / "store")

    @property
    def last_event_time(self) -> datetime:
        return datetime.fromisoformat(self.last_event_at)

    def nats_server(self) -> NatsServer:
        """A server on the corpus's JetStream directory (not started)."""
        return NatsServer(Path(self.path) / "nats")


def corpus(
    seed: int, events: int, root: Path = DEFAULT_ROOT, console: Console | None = None
) -> Corpus:
    """The corpus of `events` events for `seed`, built now unless a complete one exists."""
    path = root / f"corpus-{seed}-{events}"
    marker = path / MARKER
    if marker.exists():
        found = Corpus(**json.loads(marker.read_text()))
        if found.simulator == SIMULATOR_VERSION:
            return found
    if path.exists():
        shutil.rmtree(path)  # half-built, or by another simulator
    built = _build(path, seed, events, console or wide_console())
    marker.write_text(json.dumps(asdict(built), indent=2) + "\n")
    return built


def _build(path: Path, seed: int, events: int, console: Console) -> Corpus:
    started = time.perf_counter()
    clock = simulation_clock()
    first = clock.now()
    service = open_service(Settings(var_dir=path / "store"), clock)
    try:
        with counted_progress(console, 22) as bar:
            cases = _fill(service, seed, events, bar)
            last = clock.now()
            server = NatsServer(path / "nats").start()
            try:
                last_seq = asyncio.run(_relay(service, server.url, events, bar))
            finally:
                server.stop()
    finally:
        service.close()
    return Corpus(
        str(path),
        seed,
        events,
        cases,
        first.isoformat(),
        last.isoformat(),
        last_seq,
        round(time.perf_counter() - started, 1),
    )


def _fill(service: CaseService, seed: int, events: int, bar: Progress) -> int:
    """`events` events in the store: the duty list, then simulated traffic; returns the cases."""
    service.publish_duty_list()
    existing = service.recorder.max_notification_id() or 0
    task = bar.add_task("simulate → event store", total=events)
    simulation = bulk_traffic(service, seed, expected_events=events)
    simulation.run(events - existing, lambda done: bar.update(task, completed=existing + done))
    bar.update(task, completed=events)
    return simulation.cases


async def _relay(service: CaseService, url: str, events: int, bar: Progress) -> int:
    """Runs the real relay until the last stored event is on WL_EVENTS; its stream sequence."""
    task = bar.add_task("relay → WL_EVENTS", total=events)
    relay = Relay(service, Settings(nats_url=url, relay_poll_interval=0.05), lock=NoLeaderLock())
    stop = asyncio.Event()
    runner = asyncio.create_task(relay.run(stop))
    try:
        while relay.stats.last_notification_id < events:
            await asyncio.sleep(0.2)
            bar.update(task, completed=relay.stats.last_notification_id)
            if runner.done():
                runner.result()
                raise RuntimeError("the relay stopped before the end of the store")
    finally:
        stop.set()
        await runner
    bar.update(task, completed=events)
    return relay.stats.last_notification_id
