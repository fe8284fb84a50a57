"""`whistleloop chaos`: the whole system under load while its processes are killed, then proved whole.

Closed-loop cases go through the HTTP API as their users send them (an `Idempotency-Key` per
command, resent after a lost answer) while, at seeded moments, the relay, the projector, the SLA
clock or the gateway is killed with SIGKILL and started again, or nats-server is killed and
restarted on its JetStream store (with `cluster`, the node leading WL_EVENTS of a three-node
cluster is killed and brought back while the other two carry on). The stores are SQLite files, or
with `postgres_url` fresh PostgreSQL schemas, whose sessions are then also terminated at seeded
moments. A WebSocket client follows the command-centre feed from the first event and resumes with
`since` whenever its connection drops. At the end, with every process caught up and stopped:

- every command that got a 2xx is in the store;
- WL_EVENTS holds every stored event exactly once, in the store's order;
- every read model equals a clean rebuild from the stream;
- `audit verify` is clean;
- the WebSocket client saw every stream sequence exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from nats.js.api import StreamInfo
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from gateway.auth import Role, issue_token
from gateway.benchmark import LOOP, Children, Step, base_url, tokens, wait_ready
from infra.benchmarks.store import postgres_everything
from infra.nats.connection import connect as nats_connect
from infra.nats.server import NatsServer, cluster_nodes, cluster_url, free_port
from infra.nats.streams import EVENTS_STREAM
from infra.settings import Settings
from infra.store import notifications_after, open_service
from projections import registry
from projections.audit_verify import cli_verify
from projections.benchmark import REBUILD_JOBS, rebuild_in_child
from projections.compare import differences, table_dump
from projections.control import status_rows
from projections.rebuild import NOT_REBUILDABLE
from projections.views_db import open_views_engine

#: What can be killed, and the `whistleloop` command that runs it.
COMMANDS = {"relay": "relay", "projector": "project", "sla": "sla", "gateway": "gateway"}
TARGETS = (*COMMANDS, "nats")
#: On a PostgreSQL store, also: every database session of the run terminated by the server.
PG_TARGETS = (*TARGETS, "postgres")
#: Seconds a killed process stays dead before it is started again.
DEAD_FOR = 1.0
#: Load threads, each taking cases round the loop one command at a time.
WORKERS = 4
#: Seconds everything has to catch up once the load stops.
SETTLE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Kill:
    at: float  # seconds after the load started
    target: str


def schedule(
    seed: int, kills: int, seconds: float, targets: tuple[str, ...] = TARGETS
) -> list[Kill]:
    """`kills` moments in the middle 80 % of the run; every target at least once when there are
    enough kills, the rest drawn at random."""
    rng = random.Random(seed)
    drawn = list(targets) if kills >= len(targets) else []
    drawn += [rng.choice(targets) for _ in range(kills - len(drawn))]
    rng.shuffle(drawn)
    times = sorted(rng.uniform(0.1 * seconds, 0.9 * seconds) for _ in drawn)
    return [Kill(at, target) for at, target in zip(times, drawn, strict=True)]


@dataclass
class ChaosReport:
    kills: list[Kill]
    acked: int = 0
    unknown: int = 0
    events: int = 0
    checks: dict[str, str] = field(default_factory=dict)  # name → "" (passed) or what failed

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not any(self.checks.values())


# --- load --------------------------------------------------------------------------------------


class Load:
    """Cases round the closed loop over HTTP; records every command answered 2xx."""

    def __init__(self, settings: Settings, rate: float) -> None:
        self.url = base_url(settings)
        self.headers = tokens(settings)
        self.pause = WORKERS / rate
        self.stop = threading.Event()
        self.acked: list[tuple[str, int]] = []  # (case id, the version its command made)
        self.unknown = 0  # commands whose outcome a crash hid (the path ends there)
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(WORKERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _work(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            while not self.stop.is_set():
                self._one_case(client)

    def _one_case(self, client: httpx.Client) -> None:
        case_id = ""
        for step in LOOP:
            answer = self._send(client, step, case_id)
            if answer is None:
                return
            case_id = case_id or str(answer["case_id"])
            with self._lock:
                self.acked.append((case_id, int(answer["version"])))
            self.stop.wait(self.pause)

    def _send(self, client: httpx.Client, step: Step, case_id: str) -> dict[str, Any] | None:
        """The command's answer; None when its outcome is unknown (or the run is stopping).

        Resent with the same key while the gateway is down or answers 5xx. A 409 for a key in
        flight, or a refusal after a resend, means an earlier attempt may have gone through with
        its answer lost: the case's path ends there, as a user would look before going on. Any
        other refusal is a failure of the run."""
        path = step.path(case_id)
        headers = self.headers[step.who] | {"Idempotency-Key": uuid.uuid4().hex}
        resent = False
        while not self.stop.is_set():
            try:
                response = client.post(path, json=step.body, headers=headers)
            except httpx.HTTPError:
                resent = True
                self.stop.wait(0.3)
                continue
            if response.status_code in (200, 201):
                answer: dict[str, Any] = response.json()
                return answer
            if response.status_code >= 500 or response.status_code == 429:
                resent = True
                self.stop.wait(0.3)
                continue
            if resent:
                with self._lock:
                    self.unknown += 1
                return None
            with self._lock:
                self.failures.append(
                    f"{step.action or 'report'}: {response.status_code} {response.text[:200]}"
                )
            return None
        return None


# --- the WebSocket watcher ---------------------------------------------------------------------


class Watcher:
    """The command-centre feed from its first event, resumed with `since` after every drop."""

    def __init__(self, settings: Settings) -> None:
        self.url = base_url(settings).replace("http://", "ws://") + "/ws/command-centre"
        self.token = issue_token(settings, Role.COMMAND_CENTRE, subject="chaos")
        self.seqs: list[int] = []
        self.reconnects = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(timeout=30)

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    async def _watch(self) -> None:
        protocols = [Subprotocol("bearer"), Subprotocol(self.token)]
        while not self.stop.is_set():
            with contextlib.suppress(Exception):  # a dropped or refused connection: resume
                async with connect(f"{self.url}?since={self.last}", subprotocols=protocols) as ws:
                    while not self.stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            frame = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                            if frame["type"] == "event":
                                self.seqs.append(int(frame["seq"]))
            self.reconnects += 1
            await asyncio.sleep(0.3)


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Where the run's system lives: one nats-server or a three-node cluster; SQLite files or a
    PostgreSQL server (a fresh schema for the system, another for the clean rebuild)."""

    cluster: bool = False
    postgres_url: str = ""

    def describe(self) -> str:
        nats = "a 3-node NATS cluster" if self.cluster else "one nats-server"
        return f"{'PostgreSQL' if self.postgres_url else 'SQLite'} stores, {nats}"

    @property
    def targets(self) -> tuple[str, ...]:
        return PG_TARGETS if self.postgres_url else TARGETS


class Sessions:
    """The run's PostgreSQL sessions, known by their application_name. `terminate` ends them all
    from the server's side, which is what the processes see when PostgreSQL restarts (the server
    itself is this machine's, shared with other work, so its own crash recovery is not tried)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"wl-chaos-{uuid.uuid4().hex[:8]}"

    def tag(self, url: str) -> str:
        tagged = make_url(url).update_query_dict({"application_name": self.name})
        return tagged.render_as_string(hide_password=False)

    def terminate(self) -> int:
        engine = sqlalchemy.create_engine(self.admin_url)
        try:
            with engine.begin() as conn:
                ended = conn.execute(
                    sqlalchemy.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = :name"
                    ),
                    {"name": self.name},
                )
                return len(ended.all())
        finally:
            engine.dispose()


class Nats:
    """The run's NATS: `kill_one` SIGKILLs the server, or in a cluster the node leading WL_EVENTS
    (the harshest one-node fault: the relay's next publish must find the new leader), and starts it
    again on its JetStream store after DEAD_FOR."""

    def __init__(self, work: Path, cluster: bool, seed: int) -> None:
        if cluster:
            ports = [free_port() for _ in range(6)]
            self.nodes = cluster_nodes(work / "nats", ports[:3], ports[3:])
        else:
            self.nodes = [NatsServer(work / "nats")]
        self._rng = random.Random(seed)

    @property
    def url(self) -> str:
        return cluster_url(self.nodes)

    def start(self) -> Nats:
        for node in self.nodes:
            node.start()
        return self

    def kill_one(self) -> str:
        leader = asyncio.run(_events_leader(self.url)) if len(self.nodes) > 1 else ""
        by_name = {node.name: node for node in self.nodes}
        node = by_name.get(leader) or self._rng.choice(self.nodes)  # no leader: any node
        node.kill()
        time.sleep(DEAD_FOR)
        node.start()
        return node.name if len(self.nodes) > 1 else ""

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


def run_chaos(
    seed: int,
    kills: int,
    seconds: float,
    rate: float,
    work: Path,
    console: Console,
    setup: Setup = Setup(),
) -> ChaosReport:
    """The load, the kills and the checks; `work` holds the stores, logs and JetStream."""
    plan = schedule(seed, kills, seconds, setup.targets)
    report = ChaosReport(plan)
    nats = Nats(work, setup.cluster, seed)
    running = Children(work / "logs")
    sessions = Sessions(setup.postgres_url) if setup.postgres_url else None
    with ExitStack() as stack:
        stack.callback(nats.kill)
        stack.callback(running.stop)
        settings, rebuilt_views = stack.enter_context(_stores(setup, sessions, work))
        settings = settings.model_copy(update=_run_settings(nats.start().url, setup))
        faults = Faults(running, nats, sessions, settings)
        console.print(f"chaos on {setup.describe()}, seed {seed}")
        open_service(settings).close()  # the store's tables, before four processes race for them
        for name, command in COMMANDS.items():
            running.start(name, command, settings)
        wait_ready(settings, running)
        load, watcher = Load(settings, rate), Watcher(settings)
        load.start()
        watcher.start()
        _kill_on_schedule(plan, seconds, faults, console)
        load.finish()
        report.acked, report.unknown = len(load.acked), load.unknown
        console.print(f"load stopped: {report.acked} commands acked, {report.unknown} unknown")
        _settle(settings, watcher)
        watcher.finish()
        running.stop()
        rebuilt = settings.model_copy(update={"views_database_url": rebuilt_views})
        _check(report, settings, rebuilt, load, watcher, console)
    return report


def _run_settings(nats_url: str, setup: Setup) -> dict[str, Any]:
    return {
        "nats_url": nats_url,
        "nats_replicas": 3 if setup.cluster else 1,
        "jwt_secret": secrets.token_urlsafe(32),
        "gateway_port": free_port(),
        "audit_head_every": 200,  # heads during the run, so verify checks some against the store
        "audit_head_interval": 2.0,
    }


@contextlib.contextmanager
def _stores(setup: Setup, sessions: Sessions | None, work: Path) -> Iterator[tuple[Settings, str]]:
    """The system's settings (stores only) and the views database URL of the clean rebuild,
    on the same backend so that both sides are compared like for like."""
    if sessions is None:
        yield Settings(var_dir=work / "var"), f"sqlite:///{work / 'rebuilt.db'}"
        return
    with (
        postgres_everything(sessions.admin_url) as system,
        postgres_everything(sessions.admin_url) as clean,
    ):
        tagged = {
            "var_dir": work / "var",
            "database_url": sessions.tag(system.database_url),
            "views_database_url": sessions.tag(system.views_database_url),
        }
        yield system.model_copy(update=tagged), clean.views_database_url


@dataclass
class Faults:
    """What the schedule can hit, and how each hit is made."""

    running: Children
    nats: Nats
    sessions: Sessions | None
    settings: Settings

    def inject(self, target: str) -> str:
        """Hits `target`; what was done, for the run's log."""
        if target == "nats":
            return f"SIGKILL nats {self.nats.kill_one()}".rstrip()
        if target == "postgres":
            assert self.sessions is not None
            return f"postgres: {self.sessions.terminate()} sessions terminated"
        self.running.kill(target)
        time.sleep(DEAD_FOR)
        self.running.start(target, COMMANDS[target], self.settings)
        return f"SIGKILL {target}"


def _kill_on_schedule(plan: list[Kill], seconds: float, faults: Faults, console: Console) -> None:
    started = time.monotonic()
    for kill in plan:
        time.sleep(max(0.0, kill.at - (time.monotonic() - started)))
        console.print(f"{kill.at:6.1f} s  {faults.inject(kill.target)}")
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))


def _settle(settings: Settings, watcher: Watcher) -> None:
    """Until the relay has published, every projection applied, and the watcher seen everything."""
    service = open_service(settings)
    engine = open_views_engine(settings)
    names = set(registry.registered(settings))
    deadline = time.monotonic() + SETTLE_TIMEOUT
    try:
        while time.monotonic() < deadline:
            last = service.recorder.max_notification_id() or 0
            rows = {r["name"]: r for r in status_rows(engine)}
            projected = names <= rows.keys() and all(
                rows[n]["last_notification_id"] >= last for n in names
            )
            if projected and watcher.last >= asyncio.run(_stream_last(settings)):
                return
            time.sleep(0.5)
        raise TimeoutError(f"the system did not catch up within {SETTLE_TIMEOUT:g} s")
    finally:
        service.close()
        engine.dispose()


async def _events_info(url: str) -> StreamInfo:
    nc = await nats_connect(url, name="chaos-probe")
    try:
        return await nc.jetstream().stream_info(EVENTS_STREAM)
    finally:
        await nc.close()


async def _events_leader(url: str) -> str:
    """The name of the node leading WL_EVENTS, or "" while it has none (an election going on)."""
    with contextlib.suppress(Exception):
        cluster = (await _events_info(url)).cluster
        return (cluster.leader or "") if cluster else ""
    return ""


async def _stream_last(settings: Settings) -> int:
    return int((await _events_info(settings.nats_servers())).state.last_seq)


# --- the checks --------------------------------------------------------------------------------


def _check(
    report: ChaosReport,
    settings: Settings,
    rebuilt: Settings,
    load: Load,
    watcher: Watcher,
    console: Console,
) -> None:
    checks: dict[str, Callable[[], str]] = {
        "no command refused for a reason other than a crash": lambda: "; ".join(load.failures[:5]),
        "every 2xx command is in the store": lambda: _acked_in_store(settings, load.acked),
        "WL_EVENTS holds each stored event once, in order": lambda: _stream_equals_store(
            settings, report
        ),
        "audit verify is clean": lambda: _audit_clean(settings, console),
        "every read model equals a clean rebuild": lambda: _views_equal_rebuild(settings, rebuilt),
        "the resumed WebSocket client missed nothing": lambda: _no_gaps(watcher.seqs),
    }
    for name, check in checks.items():
        try:
            report.checks[name] = check()
        except Exception as error:  # a check that cannot run is a failed check, said plainly
            report.checks[name] = f"could not check: {type(error).__name__}: {error}"


def _acked_in_store(settings: Settings, acked: list[tuple[str, int]]) -> str:
    service = open_service(settings)
    try:
        missing = [
            f"{case_id[:8]} v{version}"
            for case_id, version in acked
            if service.case(uuid.UUID(case_id))["version"] < version
        ]
    finally:
        service.close()
    return f"{len(missing)} missing: {', '.join(missing[:5])}" if missing else ""


def _stream_equals_store(settings: Settings, report: ChaosReport) -> str:
    service = open_service(settings)
    try:
        stored, last = [], 0
        while batch := notifications_after(service, last, 1000):
            stored += [n.id for n in batch]
            last = batch[-1].id
    finally:
        service.close()
    report.events = len(stored)
    published = asyncio.run(_published_ids(settings))
    if published == stored:
        return ""
    duplicates = len(published) - len(set(published))
    return (
        f"store {len(stored)} events, stream {len(published)} ({duplicates} repeated, "
        f"{len(set(stored) - set(published))} missing, in order: {published == sorted(published)})"
    )


async def _published_ids(settings: Settings) -> list[int]:
    """The Wl-Notification-Id of every message of WL_EVENTS, in stream order."""
    nc = await nats_connect(settings.nats_servers(), name="chaos-reader")
    try:
        js = nc.jetstream()
        last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        subscription = await js.pull_subscribe("wl.ev.>", stream=EVENTS_STREAM)
        found: list[int] = []
        while len(found) < last:
            for msg in await subscription.fetch(500, timeout=5):
                found.append(int((msg.headers or {})["Wl-Notification-Id"]))
                await msg.ack()
        return found
    finally:
        await nc.close()


def _views_equal_rebuild(settings: Settings, rebuilt: Settings) -> str:
    if rebuild_in_child(rebuilt, REBUILD_JOBS) != 0:
        return "the clean rebuild failed"
    names = [n for n in registry.registered(settings) if n not in NOT_REBUILDABLE]
    projections = registry.select(names, settings)
    live, clean = open_views_engine(settings), open_views_engine(rebuilt)
    try:
        return "; ".join(differences(table_dump(live, projections), table_dump(clean, projections)))
    finally:
        live.dispose()
        clean.dispose()


def _audit_clean(settings: Settings, console: Console) -> str:
    code = cli_verify(settings, console=console)
    return "" if code == 0 else f"audit verify exited {code}"


def _no_gaps(seqs: list[int]) -> str:
    expected = list(range(1, len(seqs) + 1))
    if seqs == expected:
        return ""
    repeated = len(seqs) - len(set(seqs))
    missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
    return f"{repeated} frames repeated, {len(missing)} missing (first {missing[:5]})"


def print_report(report: ChaosReport, console: Console) -> None:
    table = Table(title=f"chaos: {len(report.kills)} kills, {report.acked} commands acked")
    table.add_column("check")
    table.add_column("result")
    for name, failure in report.checks.items():
        table.add_row(name, f"[red]{failure}[/red]" if failure else "[green]passed[/green]")
    console.print(table)
    killed = Counter(kill.target for kill in report.kills)
    console.print(
        f"killed: {', '.join(f'{t} ×{n}' for t, n in sorted(killed.items()))}; "
        f"{report.events} events stored; {report.unknown} commands with an outcome a crash hid"
    )
