"""The gateway's section of `whistleloop bench` (issue 6): HTTP commands against in-process
`CaseService`, command → department WebSocket frame latency, and the gateway's peak memory.

It lives here rather than in `infra.benchmarks` because infra may not import the gateway; the CLI
imports it lazily, as it does `projections.benchmark`. The gateway, relay and projectors run as
separate `whistleloop …` processes, as `whistleloop up` runs them, so the figures include every
process boundary a deployment has, and the gateway's peak RSS comes from the kernel (`wait4`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from domain.actors import Actor
from domain.service import CaseService
from gateway.auth import Role, issue_token
from infra.benchmarks.memory import peak_rss_kib
from infra.benchmarks.report import Limit, Result, Section, print_section
from infra.benchmarks.store import backends
from infra.feed_client import Frame, tail_department
from infra.lifeline import parent_env
from infra.nats.server import NatsServer, free_port
from infra.settings import Settings
from infra.store import open_service
from projections.benchmark import percentile

TARGET_RATIO = 0.50
P50_CEILING_MS = 50.0
P99_CEILING_MS = 250.0
#: Keep-alive HTTP clients issuing commands at once in the throughput measure.
CONCURRENCY = 8
#: Cases in flight in the paced latency run: a case's next command waits for its previous one, so
#: this many workers keep the pace even when single requests are slow.
PACED_WORKERS = 16
#: Interleaved rounds of each throughput measure; the best round counts (the least disturbed).
ROUNDS = 3
#: Seconds a child may take to come up, and the feed to show the warm-up case.
READY_TIMEOUT = 60.0
#: Seconds to wait, after the last paced command, for frames still on their way.
DRAIN_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
FEED_DEPT = "cgzf"
RESIDENT_ID = "bench"
CASES = "/api/v1/cases"
REFERENCE = "in-process CaseService, same mix"


@dataclass(frozen=True)
class Step:
    """One command of the mix, as both sides issue it: the HTTP body is the service's keywords."""

    action: str  # the path after /cases/{id}/ ("" for the report, which is POST /cases)
    method: str  # the CaseService method
    who: str  # whose token (HTTP) or actor (in process): resident, street or department
    body: dict[str, Any]
    event: str  # the event type it appends

    def path(self, case_id: str) -> str:
        """Where the step is POSTed (the report creates the case, so it needs no id)."""
        return f"{CASES}/{case_id}/{self.action}" if self.action else CASES


REPORT = Step(
    "",
    "report",
    "resident",
    {"source": "hotline_12345", "street": "jianwai", "title": "占道经营", "description": "bench"},
    "CaseReported",
)
#: The store section's closed loop, preceded by the report: 7 commands, one event each.
LOOP = (
    REPORT,
    Step("accept", "accept", "street", {}, "CaseAccepted"),
    Step("whistle", "whistle", "street", {"lead": FEED_DEPT, "duty_item": "CG-001"}, "Whistled"),
    Step("report-in", "report_in", "department", {"mode": "on_site"}, "ReportedIn"),
    Step(
        "report-handling",
        "report_handling",
        "department",
        {"result": "resolved"},
        "HandlingReported",
    ),
    Step("close", "close_case", "street", {}, "Closed"),
    Step(
        "rate",
        "rate_by_resident",
        "resident",
        {"satisfaction": "satisfied", "solved": True},
        "Rated",
    ),
)
#: The commands whose events reach the department's feed: from the whistle on.
ON_FEED = frozenset(step.event for step in LOOP[2:])
ACTORS = {
    "resident": Actor.of("resident", RESIDENT_ID),
    "street": Actor.of("street", "jianwai"),
    "department": Actor.of("department", FEED_DEPT),
}


def gateway_section(
    ops: int, postgres_url: str, *, latency_seconds: float = 60.0, rate: float = 100.0
) -> Section:
    """Throughput on SQLite (and PostgreSQL if given), then the paced latency run on SQLite."""
    results: list[Result] = []
    limits: list[Limit] = []
    with tempfile.TemporaryDirectory(prefix="wl-bench-gateway-") as tmp:
        work = Path(tmp)
        server = NatsServer(work / "nats").start()
        try:
            for name, make in backends(postgres_url):
                found, peak = _throughput(name, make, ops, server.url, work / name)
                results += found
                limits.append(_rss(name, "HTTP throughput run", peak))
            run, peak = _latency(server.url, work / "latency", latency_seconds, rate)
        finally:
            server.kill()
    limits += run.limits()
    limits.append(_rss(FEED_BACKEND, "latency run", peak))
    section = Section(
        "Gateway (issue 6)",
        f"HTTP commands ≥ {TARGET_RATIO:.0%} of in-process CaseService; command → department "
        f"frame p50 ≤ {P50_CEILING_MS:.0f} ms, p99 ≤ {P99_CEILING_MS:.0f} ms.",
        _NOTES.format(concurrency=CONCURRENCY, rounds=ROUNDS, dept=FEED_DEPT, workers=PACED_WORKERS)
        + run.notes(),
        results,
        limits,
    )
    print_section(section)
    return section


def _rss(backend: str, run: str, peak_mb: float) -> Limit:
    return Limit(backend, f"gateway peak RSS ({run})", 1, peak_mb, "MB")


# --- the gateway and its neighbours as child processes ------------------------------------------


def child_env(settings: Settings) -> dict[str, str]:
    """What a child needs to share this run's stores, NATS and token secret (WL_* wins over .env)."""
    return {
        "WL_VAR_DIR": str(settings.var_dir.resolve()),
        "WL_DATABASE_URL": settings.database_url,
        "WL_DATABASE_SCHEMA": settings.database_schema,
        "WL_VIEWS_DATABASE_URL": settings.views_database_url,
        "WL_NATS_URL": settings.nats_servers(),
        "WL_NATS_REPLICAS": str(settings.nats_replicas),
        "WL_JWT_SECRET": settings.jwt_secret,
        "WL_DEV_MODE": "false",
        "WL_GATEWAY_HOST": settings.gateway_host,
        "WL_GATEWAY_PORT": str(settings.gateway_port),
        "WL_GATEWAY_WRITE_RATE": "0",  # throughput is measured, not the per-caller limit
        "WL_AUDIT_HEAD_EVERY": str(settings.audit_head_every),
        "WL_AUDIT_HEAD_INTERVAL": f"{settings.audit_head_interval:g}",
    }


@dataclass
class Children:
    """`whistleloop` commands run as children (like `up`, without restarts: a crash ends the run).

    `stop()` reaps them with `wait4`, so `usage` holds what the kernel counted for each one.
    """

    log_dir: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    usage: dict[str, resource.struct_rusage] = field(default_factory=dict)
    peak_kib: dict[str, int] = field(default_factory=dict)

    def peak_mb(self, name: str) -> float:
        """The child's peak RSS since its exec, read just before it was stopped."""
        return self.peak_kib[name] / 1024

    def cpu_seconds(self, name: str) -> float:
        return self.usage[name].ru_utime + self.usage[name].ru_stime

    def start(self, name: str, command: str, settings: Settings) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        whistleloop = str(Path(sys.executable).with_name("whistleloop"))
        with open(self.log_dir / f"{name}.log", "ab") as out:
            self.running[name] = subprocess.Popen(
                [whistleloop, command],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **child_env(settings), **parent_env()},
                cwd=self.log_dir,  # no stray .env or ./var of the caller's
                start_new_session=True,
            )

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash: no clean-up of any kind; reaped at once."""
        process = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()

    def check(self, name: str) -> None:
        """Fails the run, with the end of its log, when the child has exited."""
        if self.running[name].poll() is not None:
            log = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited during the benchmark:\n{log}")

    def stop(self) -> None:
        """SIGTERM to every child, then SIGKILL to any still there after STOP_TIMEOUT."""
        for name, process in self.running.items():
            self.peak_kib[name] = peak_rss_kib(process.pid)
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process in self.running.items():
            self.usage[name] = _reap(process.pid, deadline)
        self.running.clear()


def _reap(pid: int, deadline: float) -> resource.struct_rusage:
    """Waits for the child, killing it at `deadline`; what the kernel counted for it."""
    while True:
        reaped, _status, usage = os.wait4(pid, os.WNOHANG)
        if reaped:
            return usage
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return os.wait4(pid, 0)[2]
        time.sleep(0.05)


@contextlib.contextmanager
def children(log_dir: Path) -> Iterator[Children]:
    running = Children(log_dir)
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def serving(store: Settings, log_dir: Path) -> Iterator[Settings]:
    """`whistleloop gateway` as a child on the store's database, var dir (views, audit key) and
    NATS, with a fresh secret and port, answering /healthz, until the context ends."""
    settings = gateway_settings(store, store.var_dir, store.nats_url)
    with children(log_dir) as running:
        running.start("gateway", "gateway", settings)
        wait_ready(settings, running)
        yield settings


def gateway_settings(store: Settings, var_dir: Path, nats_url: str) -> Settings:
    """The store's database (if any) with this run's own var dir, NATS, port and a fresh secret."""
    return store.model_copy(
        update={
            "var_dir": var_dir,
            "nats_url": nats_url,
            "jwt_secret": secrets.token_urlsafe(32),
            "gateway_port": free_port(),
            "dev_mode": False,
        }
    )


def base_url(settings: Settings) -> str:
    return f"http://{settings.gateway_host}:{settings.gateway_port}"


def wait_ready(settings: Settings, running: Children) -> None:
    """Until the gateway answers /healthz (it has opened the store and NATS by then)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        running.check("gateway")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url(settings)}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the gateway did not come up within {READY_TIMEOUT:g} s")


def tokens(settings: Settings) -> dict[str, dict[str, str]]:
    """Authorization headers per `Step.who`, signed with the run's secret."""
    issued = {
        "resident": issue_token(settings, Role.RESIDENT, subject=RESIDENT_ID),
        "street": issue_token(settings, Role.STREET, street="jianwai"),
        "department": issue_token(settings, Role.DEPARTMENT, dept=FEED_DEPT),
    }
    return {who: {"Authorization": f"Bearer {token}"} for who, token in issued.items()}


# --- the command mix over HTTP and in process ------------------------------------------------------

Pace = Callable[[], Awaitable[bool]]
Record = Callable[[str, Step, float, float], None]


@dataclass
class Driver:
    """Runs cases around the loop over HTTP, as a client of the REST contract."""

    http: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    idempotent: bool = False

    async def run_case(self, pace: Pace | None = None, record: Record | None = None) -> str | None:
        """One case through LOOP; its id, or None when `pace` ran out of slots part-way.

        `pace` is awaited before each command; `record(case_id, step, sent, answered)` after it.
        """
        case_id = ""
        for step in LOOP:
            if pace is not None and not await pace():
                return None
            sent = time.perf_counter()
            case_id = await self._post(step, case_id)
            if record is not None:
                record(case_id, step, sent, time.perf_counter())
        return case_id

    async def _post(self, step: Step, case_id: str) -> str:
        path = step.path(case_id)
        headers = self.headers[step.who]
        if self.idempotent:
            headers = headers | {"Idempotency-Key": secrets.token_hex(16)}
        response = await self.http.post(path, json=step.body, headers=headers)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        found: str = response.json()["case_id"]
        return found


def _client(settings: Settings, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url(settings), limits=limits, timeout=30)


def _direct_case(service: CaseService) -> None:
    """LOOP in process: the same commands, bodies and actors, without HTTP."""
    case_id = service.report(ACTORS[REPORT.who], **REPORT.body)
    for step in LOOP[1:]:
        getattr(service, step.method)(case_id, ACTORS[step.who], **step.body)


def _direct_rate(service: CaseService, cases: int) -> float:
    started = time.perf_counter()
    for _ in range(cases):
        _direct_case(service)
    return cases * len(LOOP) / (time.perf_counter() - started)


async def _http_rate(driver: Driver, cases: int) -> float:
    """`cases` cases shared out to CONCURRENCY workers; commands per second."""
    remaining = iter(range(cases))

    async def worker() -> None:
        for _ in remaining:
            await driver.run_case()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return cases * len(LOOP) / (time.perf_counter() - started)


async def _http_round(settings: Settings, cases: int, idempotent: bool) -> float:
    async with _client(settings, CONCURRENCY) as http:
        return await _http_rate(Driver(http, tokens(settings), idempotent), cases)


# --- 1. throughput ------------------------------------------------------------------------------


def _throughput(
    backend: str,
    make: Callable[[], contextlib.AbstractContextManager[Settings]],
    ops: int,
    nats_url: str,
    work: Path,
) -> tuple[list[Result], float]:
    """In process and over HTTP on two stores of the same kind; results and the gateway's peak RSS.

    Only NATS runs beside the gateway (its nudges need it): no relay or projectors, so both sides
    do exactly the store's work and the difference is the gateway's own cost.
    """
    cases = max(ops // (ROUNDS * len(LOOP)), 1)
    with make() as direct, make() as store:
        settings = gateway_settings(store, work / "gateway", nats_url)
        with children(work / "logs") as running:
            running.start("gateway", "gateway", settings)
            wait_ready(settings, running)
            best = _best_rates(direct, settings, cases, running)
    done = cases * len(LOOP) * ROUNDS
    raw = best["direct"]
    results = [
        Result(backend, REFERENCE, done, raw, REFERENCE, raw),
        Result(backend, HTTP, done, best["http"], REFERENCE, raw, TARGET_RATIO),
        Result(backend, f"{HTTP} with Idempotency-Key", done, best["idempotent"], REFERENCE, raw),
    ]
    return results, running.peak_mb("gateway")


HTTP = f"HTTP commands, {CONCURRENCY} keep-alive clients"


def _best_rates(
    direct: Settings, settings: Settings, cases: int, running: Children
) -> dict[str, float]:
    """The best of ROUNDS interleaved rounds per measure: a noisy moment hits all of them alike."""
    best = {"direct": 0.0, "http": 0.0, "idempotent": 0.0}
    service = open_service(direct)
    try:
        service.publish_duty_list()
        _direct_rate(service, 1)  # warm-up, untimed: first loads, caches, connections
        asyncio.run(_http_round(settings, 1, idempotent=False))
        for _round in range(ROUNDS):
            best["direct"] = max(best["direct"], _direct_rate(service, cases))
            for name in ("http", "idempotent"):
                rate = asyncio.run(_http_round(settings, cases, idempotent=name == "idempotent"))
                best[name] = max(best[name], rate)
            running.check("gateway")
    finally:
        service.close()
    return best


# --- 2. command → department frame latency ----------------------------------------------------

FEED_BACKEND = "HTTP → SQLite → NATS → WebSocket"


@dataclass
class FeedRun:
    """What the paced run saw: per-frame latencies and POST round trips, in ms."""

    rate: float
    seconds: float
    latencies: list[float]
    posts: list[float]
    sent: int
    elapsed: float
    missing: int
    #: CPU seconds (user + system) of each child over its whole life, start-up included.
    cpu: dict[str, float] = field(default_factory=dict)

    def limits(self) -> list[Limit]:
        frames, posts = self.latencies, self.posts
        name = f"command → {FEED_DEPT} frame"
        return [
            Limit(
                FEED_BACKEND,
                f"{name}, p50",
                len(frames),
                percentile(frames, 50),
                "ms",
                P50_CEILING_MS,
            ),
            Limit(
                FEED_BACKEND,
                f"{name}, p99",
                len(frames),
                percentile(frames, 99),
                "ms",
                P99_CEILING_MS,
                percentile(frames, 50),
            ),
            Limit(
                FEED_BACKEND,
                "POST round trip (reference), p99",
                len(posts),
                percentile(posts, 99),
                "ms",
                median=percentile(posts, 50),
            ),
        ]

    def notes(self) -> str:
        achieved = self.sent / self.elapsed if self.elapsed else 0.0
        line = (
            f"\n- This run: {self.sent} commands in {self.elapsed:.1f} s ({achieved:.0f}/s, "
            f"target pace {self.rate:g}/s for {self.seconds:g} s); {len(self.latencies)} "
            f"frames matched"
        )
        if self.missing:
            line += f", **{self.missing} never arrived** within {DRAIN_TIMEOUT:g} s"
        spent = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.cpu.items())
        return f"{line}. CPU of the children over their lives (start-up included): {spent}."


class Pacer:
    """Hands out `total` send slots `1/rate` apart from the first call: an open-loop pace."""

    def __init__(self, rate: float, total: int) -> None:
        self.interval = 1.0 / rate
        self.total = total
        self.issued = 0
        self.started: float | None = None

    async def slot(self) -> bool:
        if self.issued >= self.total:
            return False
        if self.started is None:
            self.started = time.perf_counter()
        due = self.started + self.issued * self.interval
        self.issued += 1
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return True


def _latency(nats_url: str, work: Path, seconds: float, rate: float) -> tuple[FeedRun, float]:
    """Gateway, relay and every projector as children on a fresh SQLite store; the run and the
    gateway's peak RSS."""
    store = Settings(database_url="", views_database_url="")
    settings = gateway_settings(store, work / "var", nats_url)
    with children(work / "logs") as running:
        for name in PIPELINE:
            running.start(name, name, settings)
        wait_ready(settings, running)
        run = asyncio.run(_paced(settings, seconds, rate))
        for name in PIPELINE:
            running.check(name)
    run.cpu = {name: running.cpu_seconds(name) for name in PIPELINE}
    return run, running.peak_mb("gateway")


#: The `whistleloop` commands of the latency run, as `whistleloop up` starts them.
PIPELINE = ("relay", "project", "gateway")


async def _paced(settings: Settings, seconds: float, rate: float) -> FeedRun:
    """A feed client on the department's feed, one warm-up case, then the paced commands."""
    arrivals: dict[tuple[str, str], float] = {}
    sent: dict[tuple[str, str], float] = {}
    posts: list[float] = []

    def on_frame(frame: Frame) -> None:
        if frame.get("type") == "event":
            _wl, _dept, _code, case_id, event = str(frame["subject"]).split(".")
            arrivals.setdefault((case_id, event), time.perf_counter())

    def record(case_id: str, step: Step, started: float, answered: float) -> None:
        posts.append((answered - started) * 1000)
        if step.event in ON_FEED:
            sent[(case_id, step.event)] = started

    headers = tokens(settings)
    token = headers["department"]["Authorization"].removeprefix("Bearer ")
    stop = asyncio.Event()
    async with _client(settings, PACED_WORKERS) as http:
        driver = Driver(http, headers)
        feed = asyncio.create_task(
            tail_department(base_url(settings), token, FEED_DEPT, 0, on_frame, stop)
        )
        try:
            warm = await driver.run_case()
            await _until(lambda: (warm, "Rated") in arrivals, READY_TIMEOUT, feed)
            total = round(rate * seconds)
            pacer = Pacer(rate, total)

            async def worker() -> None:
                while await driver.run_case(pacer.slot, record) is not None:
                    pass

            started = time.perf_counter()
            # A short run with all workers would be reports and accepts only: none reach the feed.
            workers = max(1, min(PACED_WORKERS, total // len(LOOP)))
            await asyncio.gather(*(worker() for _ in range(workers)))
            elapsed = time.perf_counter() - started
            await _until(lambda: sent.keys() <= arrivals.keys(), DRAIN_TIMEOUT, feed, fail=False)
        finally:
            stop.set()
            await asyncio.wait([feed], timeout=STOP_TIMEOUT)
    latencies = [(arrivals[key] - at) * 1000 for key, at in sent.items() if key in arrivals]
    if len(latencies) < 2:
        raise RuntimeError(f"only {len(latencies)} feed frames matched: too short a run")
    return FeedRun(rate, seconds, latencies, posts, len(posts), elapsed, len(sent) - len(latencies))


async def _until(
    condition: Callable[[], bool], timeout: float, feed: asyncio.Task[Any], *, fail: bool = True
) -> None:
    """Polls `condition`; a feed client that gave up (a refusal) ends the wait with its error."""
    deadline = time.monotonic() + timeout
    while not condition():
        if feed.done():
            feed.result()
            raise RuntimeError("the feed client stopped")
        if time.monotonic() > deadline:
            if fail:
                raise TimeoutError(f"the {FEED_DEPT} feed did not deliver within {timeout:g} s")
            return
        await asyncio.sleep(0.01)


_NOTES = """- *in-process CaseService* (the raw limit): one thread runs cases through report → accept →
  whistle (lead cgzf, CG-001) → report in → report handling → close → resident rating (the store
  section's closed loop plus its report; 7 commands, one event each) on a store of its own.
- *HTTP commands*: the same commands and bodies, `POST /api/v1/cases…` with bearer tokens of the
  role that owns each step, from {concurrency} keep-alive httpx clients in the benchmark process to
  `whistleloop gateway` (uvicorn, one process) in a child process on a store of the same kind. Only
  nats-server runs beside it (the gateway nudges the relay through it); no relay, no projectors.
  Both sides run in {rounds} interleaved rounds; the best round of each counts. *with
  Idempotency-Key*: a fresh key per request, so each POST also claims and records its key.
- *command → {dept} frame*: `whistleloop gateway`, `relay` and `project` (every projection,
  `dept_feeds` among them) as separate child processes, as `whistleloop up` runs them, on a fresh
  SQLite store. A `websockets` client (`infra.feed_client.tail_department`) follows
  `/ws/departments/{dept}`; up to {workers} workers post cases around the same loop at a steady open-loop pace.
  For each command from the whistle on (the ones that reach {dept}'s feed), the latency is the
  frame's receipt time minus the time just before its POST was sent, matched by case id and event
  type from the frame's subject; the path is gateway → event store → relay (nudged) → WL_EVENTS →
  `dept_feeds` → WL_DEPT → the gateway's ordered consumer → WebSocket. The reference is the POST
  round trip itself (send → response), measured on the same commands. A warm-up case goes first.
- *gateway peak RSS*: the kernel's `ru_maxrss` of the `whistleloop gateway` process (`wait4`) over
  the whole run it served."""
