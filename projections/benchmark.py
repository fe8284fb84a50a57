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

from infra.benchmarks.corpus import Corpus, corpus
from infra.benchmarks.memory import peak_rss_kib
from infra.benchmarks.relay import fill_stream
from infra.benchmarks.report import Limit, Result, Section, against_raw, print_section
from infra.benchmarks.store import backends
from infra.event_codec import EventEnvelope
from infra.lifeline import parent_env, watch_parent
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
from projections.views_db import create_views_tables, open_views_engine

TARGET_RATIO = 0.50  # "runner overhead ≤ 2× raw fetch+ack"
RAW = "raw fetch(500) + ack (AckPolicy.ALL)"


class NoOpProjection:
    """Decodes and checks every event, writes nothing: what is left is the runner's own cost."""

    name = "bench_noop"
    tables: tuple[Table, ...] = ()
    subjects = ("wl.ev.>",)

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool:
        return True


def runner_section(events: int, postgres_url: str = "") -> Section:
    """The no-op runner into SQLite views, then PostgreSQL views if a URL is given; each next to
    a raw fetch+ack of the same stream measured just before it."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="wl-bench-runner-") as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            fill_stream(Path(tmp), server.url, events)
            for backend, make in backends(postgres_url):
                with make() as settings:
                    total, raw = asyncio.run(_fresh_raw_rate(server.url))
                    applied = asyncio.run(_runner(settings, server.url, total))
                results += _runner_results(f"NATS → {backend} views", total, raw, applied)
        finally:
            server.kill()
    section = Section(
        "Projector runner (issue 4)",
        "runner overhead ≤ 2× raw fetch+ack, i.e. apply rate ≥ 50 % of it.",
        _NOTES,
        results,
    )
    print_section(section)
    return section


def _runner_results(backend: str, total: int, raw: float, applied: float) -> list[Result]:
    measured = {"runner, no-op projection (decode, check, tracking row, ack)": applied}
    return against_raw(backend, RAW, total, raw, measured, TARGET_RATIO)


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
    create_views_tables(engine)  # before the clock starts, as the runner would
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
    with engine.connect() as conn:
        return read_position(conn, NoOpProjection.name).last_stream_seq


_NOTES = """- The stream is filled by the relay with copies of the demo case (11 events each).
- *raw fetch+ack*: a durable pull consumer, `fetch(500)`, one ack per batch: the fastest this client
  reads the stream with delivery guarantees.
- *runner*: `ProjectorRunner` with a projection that does nothing, from a fresh durable consumer
  until its tracking row reaches the last sequence: each batch is decoded and checked
  (`EventEnvelope.from_message`), applied in one SQL transaction with the tracking row, then acked."""


# --- issue 5: the projections on a corpus ------------------------------------------------------

REBUILD_TARGET = 0.30  # rebuild rate per projection ≥ 30 % of raw fetch+ack
REBUILD_ALL_CEILING_S = 600.0  # issue 8: every projection rebuilt from 10⁶ events in ≤ 10 min
RSS_CEILING_MB = 300.0
P95_CEILING_MS = 50.0
QUERY_CALLS = 200
CORPUS_SEED = 20260101
#: PostgreSQL rebuilds on a corpus of at most this many events: the figures are rates, and a
#: 10⁶-event corpus would add most of an hour on a 2-core machine.
POSTGRES_CORPUS_EVENTS = 200_000


def projections_section(
    events: int, calls: int = QUERY_CALLS, seed: int = CORPUS_SEED, postgres_url: str = ""
) -> Section:
    """On a corpus of `events` simulated events (PostgreSQL: at most POSTGRES_CORPUS_EVENTS):
    raw fetch+ack, each projection's rebuild from the stream alone (peak RSS), all of them at
    once as `projections rebuild --jobs` runs them, then every query's latency."""
    results: list[Result] = []
    limits: list[Limit] = []
    corpora = []
    for backend, make in backends(postgres_url):
        built = corpus(seed, events if backend == "SQLite" else min(events, POSTGRES_CORPUS_EVENTS))
        corpora.append(f"{built.events:,} events ({built.cases:,} cases) for {backend}")
        with make() as settings:
            found, bounds = _measure_projections(backend, built, settings, calls, seed)
        results += found
        limits += bounds
    section = Section(
        "Projections on simulated events (issue 5, rebuild of all: issue 8)",
        f"rebuild ≥ {REBUILD_TARGET:.0%} of raw fetch+ack per projection; every projection "
        f"rebuilt from 10⁶ events in ≤ {REBUILD_ALL_CEILING_S / 60:.0f} min; projector peak RSS "
        f"≤ {RSS_CEILING_MB:.0f} MB; query p95 ≤ {P95_CEILING_MS:.0f} ms.",
        _PROJECTION_NOTES.format(
            seed=seed,
            corpora="; ".join(corpora),
            first=built.first_event_at[:10],
            last=built.last_event_at[:10],
            calls=calls,
            jobs=REBUILD_JOBS,
            pg_events=POSTGRES_CORPUS_EVENTS,
        ),
        results,
        limits,
    )
    print_section(section)
    return section


def _measure_projections(
    backend: str, built: Corpus, settings: Settings, calls: int, seed: int
) -> tuple[list[Result], list[Limit]]:
    label = f"NATS → {backend} views"
    server = built.nats_server().start()
    try:
        with tempfile.TemporaryDirectory(prefix="wl-bench-projections-") as tmp:
            if settings.views_database_url:  # the children's results and the audit key go here
                settings = settings.model_copy(update={"var_dir": Path(tmp)})
            total, raw = asyncio.run(_fresh_raw_rate(server.url))
            rebuilt = _rebuild_each(server.url, settings)
            seconds = _rebuild_all(settings.model_copy(update={"nats_url": server.url}))
    finally:
        server.stop()
    engine = open_views_engine(settings)
    try:
        latencies = QueryWorkload(engine, built, random.Random(seed)).measure(calls)
    finally:
        engine.dispose()
    measured = {f"rebuild {name} from the stream": rate for name, (rate, _) in rebuilt.items()}
    results = against_raw(label, RAW, total, raw, measured, REBUILD_TARGET)
    limits = [
        Limit(
            label,
            f"rebuild all {len(rebuilt)} at once (--jobs {REBUILD_JOBS}): {seconds:,.0f} s for "
            f"{total:,} events, per 10⁶ events",
            total,
            seconds * 1_000_000 / total,
            "s",
            REBUILD_ALL_CEILING_S,
        )
    ]
    limits += [
        Limit(label, f"projector peak RSS ({name})", 1, peak_mb, "MB", RSS_CEILING_MB)
        for name, (_, peak_mb) in rebuilt.items()
    ]
    limits += [
        Limit(
            f"{backend} views",
            f"query {name}",
            len(times),
            percentile(times, 95),
            "ms",
            P95_CEILING_MS,
            percentile(times, 50),
        )
        for name, times in latencies.items()
    ]
    return results, limits


#: Every projection at once: on 2 cores five similar rebuilds side by side end after 2.5 single
#: rebuild times, two at a time after 3.
REBUILD_JOBS = 5


def _rebuild_all(settings: Settings) -> float:
    """`whistleloop projections rebuild --jobs REBUILD_JOBS`, as an operator runs it; seconds."""
    started = time.perf_counter()
    if rebuild_in_child(settings, REBUILD_JOBS) != 0:
        raise RuntimeError("rebuilding every projection at once failed")
    return time.perf_counter() - started


def rebuild_in_child(settings: Settings, jobs: int) -> int:
    """The rebuild command as a child process on the settings' NATS, views and var dir (its
    logging set-up stays out of the benchmark's process); its exit code."""
    whistleloop = Path(sys.executable).with_name("whistleloop")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WL_")}
    env |= parent_env() | {
        "WL_VAR_DIR": str(Path(settings.var_dir).resolve()),
        "WL_VIEWS_DATABASE_URL": settings.views_database_url,
        "WL_NATS_URL": settings.nats_servers(),
    }
    command = [str(whistleloop), "projections", "rebuild", "--jobs", str(jobs)]
    return subprocess.run(command, env=env, check=False).returncode


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


def _rebuild_each(url: str, settings: Settings) -> dict[str, tuple[float, float]]:
    """Each projection rebuilt from the stream in a child process of its own, one after another,
    into one views database: name → (events/s, the child's peak RSS in MB)."""
    var_dir = Path(settings.var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, tuple[float, float]] = {}
    for name in _table_projection_names(settings):
        result = var_dir / f"{name}.json"
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "projections.benchmark",
                url,
                str(var_dir),
                settings.views_database_url,
                name,
                str(result),
            ],
            env={**os.environ, **parent_env()},
        )
        if child.wait() != 0:
            raise RuntimeError(f"rebuilding {name} failed in its child process")
        measured = json.loads(result.read_text())
        found[name] = (measured["rate"], measured["peak_kib"] / 1024)
        print(f"  rebuilt {name}: {measured['rate']:,.0f}/s, peak RSS {found[name][1]:,.0f} MB")
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


def _child_main(url: str, var_dir: str, views_url: str, name: str, result: str) -> None:
    settings = Settings(var_dir=Path(var_dir), views_database_url=views_url)
    rate = asyncio.run(_rebuild_one(url, settings, name))
    Path(result).write_text(json.dumps({"rate": rate, "peak_kib": peak_rss_kib()}))


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


_PROJECTION_NOTES = """- *corpus*: simulated with seed {seed} (`infra/simulator.py`, bulk driver): {corpora}; the
  last from {first} to {last}; stored in SQLite and relayed onto WL_EVENTS by the real relay; kept
  under `var/bench/` and reused by later runs. PostgreSQL views are measured on at most
  {pg_events:,} events: the figures are rates and latencies, and a 10⁶-event corpus would add most
  of an hour on PostgreSQL on this machine.
- *raw fetch+ack*: a durable pull consumer reading the whole corpus stream, `fetch(500)`, one ack
  per batch, measured first in the same run.
- *rebuild NAME*: `rebuild_from_stream` of that projection alone (reset, then its runner from the
  first sequence until its tracking row reaches the last), into an empty views database (a SQLite
  file, or a PostgreSQL schema). `dept_feeds` re-publishes rather than writes tables and is not
  rebuilt.
- *rebuild NAME* runs in a child process of its own (one after another, into one views
  database); *peak RSS* is that child's `VmHWM` (its peak resident set since its exec, read by
  the child at its end): a projector's whole footprint (interpreter, libraries, its caches, SQLite's page cache).
- *rebuild all at once*: `whistleloop projections rebuild --jobs {jobs}` as an operator runs it
  (one child process per projection; on SQLite each into a side file copied in at the end, see
  docs/PROJECTIONS.md), wall time from start to the last table copied in, then scaled linearly to
  10⁶ events when the corpus is smaller (that is what the 10-minute target is stated for).
- *queries*: every public query of `projections/queries/`, {calls} calls each, interleaved, on the
  views the rebuild built, with random cases, departments, streets, filters, follow-on cursor pages
  and periods of a day, week, month or year inside the corpus; `now` is the corpus's last event."""


if __name__ == "__main__":
    watch_parent()
    _child_main(*sys.argv[1:6])
