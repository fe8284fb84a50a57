"""Read-side benchmarks: the runner against raw fetch+ack (no-op projection), and issue 5's
projections on a large corpus: rebuild rates, a projector's peak memory, query latencies.

`python -m projections.benchmark URL VAR_DIR RESULT` is the child process of the memory figure: it
rebuilds every table projection together from the stream at URL into VAR_DIR and writes its timing
to RESULT.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig
from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.exc import OperationalError

from infra.benchmarks.corpus import Corpus, corpus
from infra.benchmarks.relay import fill_stream
from infra.benchmarks.report import Limit, Result, Section, print_section
from infra.event_codec import EventEnvelope
from infra.nats.connection import connect
from infra.nats.server import NatsServer
from infra.nats.streams import EVENTS_STREAM
from infra.settings import Settings
from projections import registry
from projections.base import ApplyContext
from projections.case_board import case_board
from projections.rebuild import NOT_REBUILDABLE, rebuild_from_stream
from projections.runner import ProjectorRunner
from projections.tracking import read_position
from projections.views_db import open_views_engine

TARGET_RATIO = 0.50  # "runner overhead ≤ 2× raw fetch+ack"
RAW = "raw fetch(500) + ack (AckPolicy.ALL)"


class NoOpProjection:
    """Decodes and checks every event, writes nothing: what is left is the runner's own cost."""

    name = "bench_noop"
    tables: tuple[Table, ...] = ()
    subjects = ("wl.ev.>",)

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool:
        return True


def runner_section(events: int) -> Section:
    with tempfile.TemporaryDirectory(prefix="wl-bench-runner-") as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            total = fill_stream(Path(tmp), server.url, events)
            raw = asyncio.run(_raw_fetch_ack(server.url, total))
            applied = asyncio.run(_runner(Settings(var_dir=Path(tmp) / "views"), server.url, total))
        finally:
            server.kill()
    section = Section(
        "Projector runner (issue 4)",
        "runner overhead ≤ 2× raw fetch+ack, i.e. apply rate ≥ 50 % of it.",
        _NOTES,
        [
            Result("NATS → SQLite views", RAW, total, raw, RAW, raw),
            Result(
                "NATS → SQLite views",
                "runner, no-op projection (decode, check, tracking row, ack)",
                total,
                applied,
                RAW,
                raw,
                TARGET_RATIO,
            ),
        ],
    )
    print_section(section)
    return section


async def _raw_fetch_ack(url: str, total: int) -> float:
    nc = await connect(url, name="bench-fetch")
    try:
        js = nc.jetstream()
        config = ConsumerConfig(durable_name="bench_raw", ack_policy=AckPolicy.ALL)
        subscription = await js.pull_subscribe("wl.ev.>", durable="bench_raw", config=config)
        started, seen = time.perf_counter(), 0
        while seen < total:
            batch = await subscription.fetch(500, timeout=5)
            await batch[-1].ack()
            seen += len(batch)
        return seen / (time.perf_counter() - started)
    finally:
        await nc.close()


async def _runner(settings: Settings, url: str, total: int) -> float:
    engine = open_views_engine(settings)
    nc = await connect(url, name="bench-runner")
    stop = asyncio.Event()
    runner = ProjectorRunner(nc, engine, [NoOpProjection()])
    started = time.perf_counter()
    task = asyncio.create_task(runner.run(stop))
    try:
        while _applied(engine) < total:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()
        return total / (time.perf_counter() - started)
    finally:
        stop.set()
        await task
        await nc.close()
        engine.dispose()


def _applied(engine: Engine) -> int:
    try:
        with engine.connect() as conn:
            return read_position(conn, NoOpProjection.name).last_stream_seq
    except OperationalError:  # the runner has not created its tables yet
        return 0


_NOTES = """- The stream is filled by the relay with copies of the demo case (11 events each).
- *raw fetch+ack*: a durable pull consumer, `fetch(500)`, one ack per batch: the fastest this client
  reads the stream with delivery guarantees.
- *runner*: `ProjectorRunner` with a projection that does nothing, from a fresh durable consumer
  until its tracking row reaches the last sequence: each batch is decoded and checked
  (`EventEnvelope.from_message`), applied in one SQL transaction with the tracking row, then acked."""


# --- issue 5: the projections on a corpus ------------------------------------------------------

REBUILD_TARGET = 0.30  # rebuild rate per projection ≥ 30 % of raw fetch+ack
RSS_CEILING_MB = 300.0
P95_CEILING_MS = 50.0
QUERY_CALLS = 200
CORPUS_SEED = 20260101
BACKEND = "NATS → SQLite views"


def projections_section(events: int, calls: int = QUERY_CALLS, seed: int = CORPUS_SEED) -> Section:
    """On a corpus of `events` simulated events: raw fetch+ack, each projection's rebuild from the
    stream, all of them together in a child process (peak RSS), then every query's latency."""
    built = corpus(seed, events)
    with tempfile.TemporaryDirectory(prefix="wl-bench-projections-") as tmp:
        server = built.nats_server().start()
        try:
            total, raw = asyncio.run(_fresh_raw_rate(server.url))
            rebuilt = _rebuild_each(server.url, Path(tmp) / "views")
        finally:
            server.stop()
        engine = open_views_engine(Settings(var_dir=Path(tmp) / "views"))
        try:
            latencies = QueryWorkload(engine, built, random.Random(seed)).measure(calls)
        finally:
            engine.dispose()
    results = [Result(BACKEND, RAW, total, raw, RAW, raw)]
    results += [
        Result(BACKEND, f"rebuild {name} from the stream", total, rate, RAW, raw, REBUILD_TARGET)
        for name, (rate, _) in rebuilt.items()
    ]
    limits = [
        Limit(BACKEND, f"projector peak RSS ({name})", 1, peak_mb, "MB", RSS_CEILING_MB)
        for name, (_, peak_mb) in rebuilt.items()
    ]
    limits += [
        Limit(
            "SQLite views",
            f"query {name}",
            len(times),
            percentile(times, 95),
            "ms",
            P95_CEILING_MS,
            percentile(times, 50),
        )
        for name, times in latencies.items()
    ]
    section = Section(
        f"Projections on {total:,} simulated events (issue 5)",
        f"rebuild ≥ {REBUILD_TARGET:.0%} of raw fetch+ack per projection; projector peak RSS "
        f"≤ {RSS_CEILING_MB:.0f} MB; query p95 ≤ {P95_CEILING_MS:.0f} ms.",
        _PROJECTION_NOTES.format(
            seed=seed,
            cases=built.cases,
            first=built.first_event_at[:10],
            last=built.last_event_at[:10],
            calls=calls,
        ),
        results,
        limits,
    )
    print_section(section)
    return section


def percentile(times: Sequence[float], percent: int) -> float:
    """The `percent`-th percentile of `times` (ms), by the inclusive method."""
    return statistics.quantiles(times, n=100, method="inclusive")[percent - 1]


async def _fresh_raw_rate(url: str) -> tuple[int, float]:
    """Deletes the consumers earlier runs left on the corpus's stream, then measures raw fetch+ack."""
    nc = await connect(url, name="bench-clean")
    try:
        js = nc.jetstream()
        for info in await js.consumers_info(EVENTS_STREAM):
            await js.delete_consumer(EVENTS_STREAM, info.name)
        total = (await js.stream_info(EVENTS_STREAM)).state.last_seq
    finally:
        await nc.close()
    return total, await _raw_fetch_ack(url, total)


def _rebuild_each(url: str, var_dir: Path) -> dict[str, tuple[float, float]]:
    """Each projection rebuilt from the stream in a child process of its own, one after another,
    into one views database: name → (events/s, peak RSS in MB from the kernel's `wait4`)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, tuple[float, float]] = {}
    for name in _table_projection_names(Settings(var_dir=var_dir)):
        result = var_dir / f"{name}.json"
        child = subprocess.Popen(
            [sys.executable, "-m", "projections.benchmark", url, str(var_dir), name, str(result)]
        )
        _pid, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"rebuilding {name} failed in its child process")
        rate = json.loads(result.read_text())["rate"]
        found[name] = (rate, usage.ru_maxrss / 1024)  # Linux: KiB
        print(f"  rebuilt {name}: {rate:,.0f}/s, peak RSS {usage.ru_maxrss / 1024:,.0f} MB")
    return found


def _table_projection_names(settings: Settings) -> list[str]:
    """Every registered projection with tables (dept_feeds publishes instead: not rebuilt)."""
    return [name for name in registry.registered(settings) if name not in NOT_REBUILDABLE]


async def _rebuild_one(url: str, settings: Settings, name: str) -> float:
    """The child's work: `rebuild_from_stream` of one projection, as the CLI runs it."""
    nc = await connect(url, name=f"bench-rebuild-{name}")
    engine = open_views_engine(settings)
    try:
        projection = registry.select([name], settings)[0]
        summary = await rebuild_from_stream(nc, engine, projection, lambda done, total: None)
        return summary.rate
    finally:
        await nc.close()
        engine.dispose()


def _child_main(url: str, var_dir: str, name: str, result: str) -> None:
    rate = asyncio.run(_rebuild_one(url, Settings(var_dir=Path(var_dir)), name))
    Path(result).write_text(json.dumps({"rate": rate}))


# --- query latencies ----------------------------------------------------------------------------


class QueryWorkload:
    """Calls every public query of `projections.queries` with varied, realistic arguments: random
    cases, departments and areas, periods of a day, week, month or year inside the corpus, filters
    and follow-on cursor pages; `now` is the corpus's last event time."""

    def __init__(self, engine: Engine, built: Corpus, rng: random.Random) -> None:
        from domain.reference import load_reference
        from projections import queries

        self.q = queries
        self.engine = engine
        self.rng = rng
        self.now = built.last_event_time
        self.first = datetime.fromisoformat(built.first_event_at)
        self.reference = load_reference()
        with engine.connect() as conn:
            ids = conn.execute(select(case_board.c.case_id)).scalars().all()
        self.case_ids = rng.sample(list(ids), min(len(ids), 2000))
        head = queries.tree_head(engine)
        self.head_size = int(head["tree_size"])
        self.cursors: list[tuple[Any, str]] = []

    def measure(self, calls: int) -> dict[str, list[float]]:
        """Milliseconds per call for each query, `calls` calls each, interleaved round by round."""
        queries = self.queries()
        times: dict[str, list[float]] = {name: [] for name in queries}
        for _round in range(calls):
            for name, call in queries.items():
                started = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - started) * 1000)
        return times

    def queries(self) -> dict[str, Callable[[], object]]:
        q, db, now = self.q, self.engine, self.now
        return {
            "list_cases": self.list_cases,
            "case_detail": lambda: q.case_detail(db, self.case_id()),
            "case_history": lambda: q.case_history(db, self.case_id()),
            "department_performance": lambda: q.department_performance(
                db, self.department(), self.period(), now
            ),
            "performance_ranking": lambda: q.performance_ranking(
                db, self.period(), now, by=self.rng.choice(list(q.RANKING_KEYS))
            ),
            "measures_by": lambda: q.measures_by(
                db, self.period(), now, dimension=self.rng.choice(q.DIMENSIONS)
            ),
            "linkage_matrix": lambda: q.linkage_matrix(db, now),
            "overview": lambda: q.overview(db, now),
            "supervision_board": lambda: q.supervision_board(db, now),
            "tree_head": lambda: q.tree_head(db),
            "inclusion_proof": self.inclusion_proof,
            "consistency_proof": self.consistency_proof,
        }

    def case_id(self) -> str:
        return str(self.rng.choice(self.case_ids))

    def department(self) -> str:
        return self.rng.choice(sorted(self.reference.departments))

    def period(self) -> Any:
        """A day, week, month or year ending on a random day of the corpus."""
        length = self.rng.choice((1, 7, 30, 365))
        span = max((self.now - self.first).days, 1)
        end = (self.first + timedelta(days=self.rng.randint(0, span))).date()
        return self.q.Period(end - timedelta(days=length - 1), end)

    def filters(self) -> Any:
        """One or two filters, as a dashboard's list page would set them."""
        q, rng, ref = self.q, self.rng, self.reference
        street = rng.choice(sorted(ref.streets))
        period = self.period()
        choices: list[dict[str, Any]] = [
            {},
            {"street": street},
            {"department": self.department()},
            {"status": rng.choice(["whistled", "in_handling", "handled", "closed"])},
            {"stage": rng.choice(["collect", "dispatch", "handle", "feedback", "evaluate"])},
            {"urgency": rng.choice(["normal", "urgent", "emergency"])},
            {"reported_from": period.first_day, "reported_to": period.last_day},
            {"overdue": True},
            {"street": street, "status": "closed"},
            {"duty_item": rng.choice(sorted(ref.duty_items))},
            {"text": "违法"},
        ]
        return q.CaseFilters(**rng.choice(choices))

    def list_cases(self) -> object:
        """A first page, or (one time in three) the next page of an earlier list."""
        if self.cursors and self.rng.random() < 1 / 3:
            filters, cursor = self.cursors.pop(self.rng.randrange(len(self.cursors)))
        else:
            filters, cursor = self.filters(), None
        page = self.q.list_cases(
            self.engine, filters, cursor, self.rng.choice((20, 50)), now=self.now
        )
        if page.next_cursor is not None:
            self.cursors.append((filters, page.next_cursor))
        return page

    def inclusion_proof(self) -> object:
        size = self.head_size if self.rng.random() < 0.5 else None
        return self.q.inclusion_proof(self.engine, self.rng.randint(1, self.head_size), size)

    def consistency_proof(self) -> object:
        second = self.rng.randint(2, self.head_size)
        return self.q.consistency_proof(self.engine, self.rng.randint(1, second - 1), second)


_PROJECTION_NOTES = """- *corpus*: {cases:,} cases simulated with seed {seed} (`infra/simulator.py`, bulk driver) from
  {first} to {last}, stored in SQLite and relayed onto WL_EVENTS by the real relay; kept under
  `var/bench/` and reused by later runs.
- *raw fetch+ack*: a durable pull consumer reading the whole corpus stream, `fetch(500)`, one ack
  per batch, measured first in the same run.
- *rebuild NAME*: `rebuild_from_stream` of that projection alone (reset, then its runner from the
  first sequence until its tracking row reaches the last), into an empty SQLite views database.
  `dept_feeds` re-publishes rather than writes tables and is not rebuilt.
- *rebuild NAME* runs in a child process of its own (one after another, into one views
  database); *peak RSS* is the kernel's `ru_maxrss` of that child (`wait4`): a projector's
  whole footprint (interpreter, libraries, its caches, SQLite's page cache).
- *queries*: every public query of `projections/queries/`, {calls} calls each, interleaved, on the
  views the children built, with random cases, departments, streets, filters, follow-on cursor pages
  and periods of a day, week, month or year inside the corpus; `now` is the corpus's last event."""


if __name__ == "__main__":
    _child_main(*sys.argv[1:5])
