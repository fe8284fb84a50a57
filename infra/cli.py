"""`whistleloop`: the command line, and the composition root that builds services from settings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from domain.clock import Clock, SystemClock
from domain.errors import DomainError
from domain.reference import load_reference
from domain.service import CaseService
from infra import render
from infra.demo import demo_clock, run_demo_case
from infra.lifeline import watch_parent
from infra.logs import configure_logging
from infra.settings import get_settings
from infra.store import open_service, redact, store_stats
from infra.terminal import wide_console

if TYPE_CHECKING:
    from infra.benchmarks.report import Section

app = typer.Typer(
    help="whistleloop — 街乡吹哨、部门报到: event-sourced case tracking for the street–department "
    "closed loop. Settings come from WL_* environment variables (see README).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
store_app = typer.Typer(help="The event store: create it, inspect it.", no_args_is_help=True)
app.add_typer(store_app, name="store")
projections_app = typer.Typer(
    help="Read-model projections: status, rebuild, and an operator's resume or skip after a halt.",
    no_args_is_help=True,
)
app.add_typer(projections_app, name="projections")
audit_app = typer.Typer(
    help="The tamper-evident audit trail: verify it against the store, sign a tree head.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")
token_app = typer.Typer(help="Bearer tokens for the gateway's API and feeds.", no_args_is_help=True)
app.add_typer(token_app, name="token")
console = wide_console()


class ReferencePart(StrEnum):
    ALL = "all"
    DEPARTMENTS = "departments"
    DUTY_ITEMS = "duty-items"
    STREETS = "streets"


@app.callback()
def main_options(
    log_level: Annotated[
        str, typer.Option(help="Log level: debug, info, warning, error.")
    ] = "warning",
) -> None:
    configure_logging(log_level)
    watch_parent()


@app.command()
def version() -> None:
    """Print the installed whistleloop version."""
    console.print(f"whistleloop {package_version('whistleloop')}")


@app.command()
def reference(
    part: Annotated[
        ReferencePart, typer.Argument(help="Which table to print.")
    ] = ReferencePart.ALL,
) -> None:
    """Print the shipped reference data: departments and liaisons, the duty list, streets."""
    ref = load_reference()
    tables = {
        ReferencePart.DEPARTMENTS: render.departments_table,
        ReferencePart.DUTY_ITEMS: render.duty_items_table,
        ReferencePart.STREETS: render.streets_table,
    }
    for name, build in tables.items():
        if part in (ReferencePart.ALL, name):
            console.print(build(ref))


@store_app.command("init")
def store_init() -> None:
    """Create the event-store tables and publish the shipped duty list. Safe to run again.

    The store is SQLite under ./var by default, or PostgreSQL at WL_DATABASE_URL.
    """
    settings = get_settings()
    with _service() as service:
        version = service.publish_duty_list()
    console.print(f"event store ready: {redact(settings.event_store_url())}")
    console.print(f"duty list version {version} published")


@store_app.command("new-cipher-key")
def store_new_cipher_key() -> None:
    """Print a new random AES-256 key for WL_CIPHER_KEY (encrypts every event's state at rest).

    Set it before the store's first event and keep it apart from the database and its backups:
    without it the events cannot be read, and a store is either all encrypted or all clear.
    """
    from infra.store import new_cipher_key

    typer.echo(new_cipher_key())


@store_app.command("stats")
def store_stats_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Count the stored events by type, the cases and the last notification id."""
    settings = get_settings()
    with _service() as service:
        stats = store_stats(service, settings)
    if as_json:
        typer.echo(json.dumps(asdict(stats), ensure_ascii=False, indent=2))
        return
    console.print(f"store: {stats.url}")
    console.print(
        f"cases: {stats.cases}  events: {stats.events}  last id: {stats.last_notification_id}"
    )
    for topic, count in stats.by_topic.items():
        console.print(f"  {topic:<48} {count:>8}")


@app.command()
def demo() -> None:
    """Run one scripted case through the whole closed loop and print its history.

    Initialises the store first. The case goes report → accept → whistle → report in → handle →
    rework → handle → close → rate, with a clock that starts two days ago.
    """
    clock = demo_clock(SystemClock().now())
    with _service(clock) as service:
        service.publish_duty_list()
        case_id = run_demo_case(service, clock)
        history = service.history(case_id)
        case = service.case(case_id)
    console.print(render.history_table(history))
    console.print(
        f"case {case_id}: status {case['status']} (stage {case['stage']}), "
        f"{len(history)} events, rework {case['rework_count']}×, "
        f"resident {case['resident_rating']['satisfaction']}, street scores {case['street_scores']}"
    )
    console.print(
        f"store: {redact(get_settings().event_store_url())} — try `whistleloop store stats`"
    )


class BenchSection(StrEnum):
    STORE = "store"
    RELAY = "relay"
    RUNNER = "runner"
    PROJECTIONS = "projections"
    GATEWAY = "gateway"
    DASHBOARD = "dashboard"
    SYSTEM = "system"


@app.command()
def bench(
    quick: Annotated[
        bool,
        typer.Option(
            help="A smoke check of every section in about two minutes (small corpus, short "
            "runs); its ratios are noisy."
        ),
    ] = False,
    ops: Annotated[
        int, typer.Option(help="Operations per measurement (default 5000, quick 600).")
    ] = 0,
    events: Annotated[
        int,
        typer.Option(
            help="Simulated events in the projections corpus (default 1,000,000, quick 10,000)."
        ),
    ] = 0,
    only: Annotated[BenchSection | None, typer.Option(help="Run one section only.")] = None,
    update: Annotated[
        bool,
        typer.Option(
            help="With --only: put the fresh section into docs/BENCHMARKS.md, keeping the others "
            "as recorded."
        ),
    ] = False,
    postgres_url: Annotated[
        str,
        typer.Option(help="PostgreSQL to measure on; empty skips it.", envvar="WL_BENCH_PG_URL"),
    ] = "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    output: Annotated[
        Path | None,
        typer.Option(
            help="Markdown report to write (default docs/BENCHMARKS.md; with --only, "
            "var/bench/BENCHMARKS-<section>.md unless --update, so a partial run never replaces "
            "the full report)."
        ),
    ] = None,
) -> None:
    """Measure the event store, the relay, the projector runner, the projections and the gateway.

    CaseService commands vs raw appends (SQLite and PostgreSQL), the relay vs raw publish_async,
    the runner vs raw fetch+ack: each pair from the same run. Projections: on a simulated corpus
    (built once under var/bench/, then reused), each projection's rebuild rate vs raw fetch+ack,
    a projector's peak RSS and every query's p50/p95. Gateway: HTTP commands vs in-process
    CaseService, command → department WebSocket frame latency at 100 commands/s, gateway RSS.
    Ratios go to docs/BENCHMARKS.md (and a .json beside it).
    """
    from gateway.benchmark import gateway_section
    from gateway.system_benchmark import system_section
    from infra.benchmarks.relay import relay_section
    from infra.benchmarks.report import merged, write_report
    from infra.benchmarks.store import store_section
    from projections.benchmark import projections_section, runner_section

    stream_events = 5_000 if quick else 50_000
    corpus_events = events or (10_000 if quick else 1_000_000)
    runs: dict[BenchSection, Callable[[], Section]] = {
        BenchSection.STORE: lambda: store_section(ops or (600 if quick else 5000), postgres_url),
        BenchSection.RELAY: lambda: relay_section(stream_events, postgres_url),
        BenchSection.RUNNER: lambda: runner_section(stream_events, postgres_url),
        BenchSection.PROJECTIONS: lambda: projections_section(
            corpus_events, calls=50 if quick else 200, postgres_url=postgres_url
        ),
        BenchSection.GATEWAY: lambda: gateway_section(
            ops or (700 if quick else 2100), postgres_url, latency_seconds=5 if quick else 60
        ),
        BenchSection.DASHBOARD: lambda: _dashboard_bench(
            corpus_events, postgres_url, renders=3 if quick else 20
        ),
        BenchSection.SYSTEM: lambda: system_section(postgres_url, seconds=6 if quick else 300),
    }
    sections = []
    for name, run in runs.items():
        if only in (None, name):
            started = time.monotonic()
            sections.append(run())
            console.print(f"[dim]bench {name}: {time.monotonic() - started:,.0f} s[/dim]")
    report = Path("docs/BENCHMARKS.md")
    if only is not None and update:
        sections = merged(sections, report.with_suffix(".json"))
    elif only is not None:
        report = Path(f"var/bench/BENCHMARKS-{only}.md")
    write_report(sections, postgres_url, output or report)


def _dashboard_bench(events: int, postgres_url: str, renders: int) -> Section:
    """The dashboard section, wired here: infra may not import the dashboard, gateway or views."""
    import projections
    from dashboard.launch import APP
    from gateway.auth import Role, issue_token
    from gateway.benchmark import serving
    from infra.benchmarks.dashboard import Wiring, dashboard_section
    from projections.benchmark import (
        CORPUS_SEED,
        POSTGRES_CORPUS_EVENTS,
        REBUILD_JOBS,
        rebuild_in_child,
    )

    wiring = Wiring(
        app=APP,
        build_views=lambda settings: rebuild_in_child(settings, REBUILD_JOBS),
        serve=serving,
        issue=lambda settings, role: issue_token(settings, Role(role), subject=f"bench-{role}"),
        views_code=Path(projections.__file__).parent,
    )
    return dashboard_section(
        events,
        wiring,
        seed=CORPUS_SEED,
        renders=renders,
        postgres_url=postgres_url,
        postgres_events=POSTGRES_CORPUS_EVENTS,
    )


@app.command()
def up(
    demo: Annotated[
        bool, typer.Option(help="Move demo cases through the closed loop every 3 s.")
    ] = False,
    duration: Annotated[
        float, typer.Option(help="Stop by itself after this many seconds (0: run until Ctrl-C).")
    ] = 0.0,
    simulate: Annotated[
        bool,
        typer.Option(
            help="A simulated district: its last --backfill days written first (empty store only), "
            "then live traffic through the gateway. Implies dev mode, as --demo does."
        ),
    ] = False,
    rate: Annotated[
        float, typer.Option(help="With --simulate: live commands per second.", min=0.1)
    ] = 5.0,
    backfill: Annotated[
        float,
        typer.Option(help="With --simulate: days of history (0: none).", min=0, metavar="DAYS"),
    ] = 30.0,
) -> None:
    """Start the whole system on this machine and print events as they arrive.

    Runs the embedded nats-server (unless WL_NATS_URL is set), the relay, the projectors, the SLA
    clock, the gateway and the dashboard as supervised child processes (a crashed one is restarted
    with back-off); Ctrl-C or SIGTERM stops them all. Logs go to var/logs/. On PostgreSQL when
    WL_DATABASE_URL (and WL_VIEWS_DATABASE_URL) are set.
    """
    from gateway.cli import up_banner
    from infra.up import Simulated, run_up

    settings = get_settings()
    if demo or simulate:
        settings = settings.model_copy(update={"dev_mode": True})
    banner = up_banner(settings)  # refuses the default JWT secret outside dev mode
    run_up(
        settings,
        demo=demo,
        duration=duration or None,
        console=console,
        banner=banner,
        simulated=Simulated(rate, backfill) if simulate else None,
    )


@app.command()
def relay() -> None:
    """Relay stored events onto NATS JetStream (WL_EVENTS), in order, exactly once.

    Only one relay is active per store (a lock); start more as standbys. Stops on Ctrl-C/SIGTERM.
    """
    from infra.relay import main as run_relay

    run_relay(get_settings())


@app.command()
def project(
    names: Annotated[
        list[str] | None, typer.Argument(help="Projections to run (default: all).")
    ] = None,
) -> None:
    """Run projectors: durable consumers of WL_EVENTS that keep the read models up to date."""
    from projections.cli import run_projectors

    run_projectors(get_settings(), names or [])


@app.command()
def sla(
    every: Annotated[
        float | None,
        typer.Option(help="Seconds between ticks (default: WL_SLA_TICK_SECONDS, 30).", min=0.1),
    ] = None,
) -> None:
    """Run the SLA clock: white/yellow/red supervision, missed deadlines, escalation.

    Reads open obligations from the `deadlines` read model and issues the domain commands as
    system:sla-clock. Every command is idempotent per obligation, so several clocks may run. Stops on
    Ctrl-C/SIGTERM.
    """
    from infra.sla import run_clock
    from projections.deadlines import ViewsDueSource
    from projections.views_db import create_views_tables, open_views_engine

    settings = get_settings()
    engine = open_views_engine(settings)
    try:
        create_views_tables(engine)
        with _service() as service:
            run_clock(service, ViewsDueSource(engine), every or settings.sla_tick_seconds)
    finally:
        engine.dispose()


@projections_app.command("status")
def projections_status_command() -> None:
    """Show each projection's position, counts and state (running, or halted and why)."""
    from projections.cli import projections_status

    rows = projections_status(get_settings())
    if not rows:
        console.print("no projection has run yet")
    for row in rows:
        state = row.get("state") or "running"
        console.print(
            f"{row['name']:<16} {state:<8} notification {row['last_notification_id']:>9} "
            f"seq {row['last_stream_seq']:>9}  applied {row['applied']}  ignored {row['ignored']}"
        )
        if state == "halted":
            console.print(
                f"  halted at seq {row['halted_at_seq']} ({row['halted_subject']}): {row['error']}"
            )


@projections_app.command("resume")
def projections_resume(
    name: Annotated[str, typer.Argument(help="The halted projection.")],
) -> None:
    """Let a halted projection retry the message it halted at (after the cause is fixed)."""
    from projections.control import NotHalted, resume

    try:
        resume(get_settings(), name)
    except NotHalted as error:
        _fail(str(error))
    console.print(f"{name}: resumed; a running projector picks it up within seconds")


@projections_app.command("skip")
def projections_skip(
    name: Annotated[str, typer.Argument(help="The halted projection.")],
    seq: Annotated[int, typer.Option("--seq", help="The stream sequence it halted at.")],
) -> None:
    """Skip the one message a projection halted at; the skip is recorded and logged.

    Its read model then knowingly misses that event: use it for garbage that is not an event.
    """
    from projections.control import NotHalted, skip

    try:
        skip(get_settings(), name, seq)
    except NotHalted as error:
        _fail(str(error))
    console.print(f"{name}: skipped stream sequence {seq}")


@projections_app.command("rebuild")
def projections_rebuild(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Projections to rebuild (default: every one with tables)."),
    ] = None,
    from_store: Annotated[
        bool,
        typer.Option(
            "--from-store", help="Replay the event store instead of the stream WL_EVENTS."
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            help="Projections rebuilt at once, each in a process of its own (one per core is "
            "a good choice; 1: one after another in this process).",
            min=1,
            max=32,
        ),
    ] = 1,
) -> None:
    """Empty read models and replay them, with a progress bar and a final summary.

    Stop `whistleloop project` for those projections first (a rebuild refuses to run beside a
    live consumer). From the stream by default; `--from-store` reads the event store, for when the
    stream is not complete. dept_feeds has no tables and cannot be rebuilt.
    """
    from projections.cli import rebuild

    raise typer.Exit(code=rebuild(get_settings(), names or [], from_store, console, jobs))


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit trail from the event store and compare it with everything else.

    Every stored event's canonical body is checked against the stream WL_EVENTS and the audit
    projection's log (hash chain, Merkle leaves), and every signed tree head on WL_AUDIT against the
    recomputed root and the public key of WL_AUDIT_KEY_PATH. Each differing event is named. Exit
    code 0: all agree; 1: differences found; 2: the check could not run.
    """
    from projections.audit_verify import cli_verify

    raise typer.Exit(code=cli_verify(get_settings(), console=console))


@audit_app.command("sign")
def audit_sign() -> None:
    """Sign the audit log's current tree head now and publish it to WL_AUDIT (printed as JSON)."""
    from projections.audit_verify import cli_sign

    raise typer.Exit(code=cli_sign(get_settings(), console=console))


@app.command()
def simulate(
    seed: Annotated[
        int, typer.Option(help="The district's random seed (same seed, same cases).")
    ] = 1,
    backfill: Annotated[
        float,
        typer.Option(
            help="Write the history of the last DAYS days straight through the domain service "
            "(on a manual clock) first.",
            metavar="DAYS",
        ),
    ] = 0.0,
    rate: Annotated[
        float, typer.Option(help="Then send N commands/s to the running gateway.", metavar="N")
    ] = 0.0,
    duration: Annotated[
        float, typer.Option(help="Seconds of live traffic (0: until Ctrl-C).")
    ] = 0.0,
    open311_share: Annotated[
        float, typer.Option(help="The share of live reports that come in through Open311.")
    ] = 0.2,
    url: Annotated[
        str | None, typer.Option(help="The gateway (default: WL_GATEWAY_HOST:WL_GATEWAY_PORT).")
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the gateway to answer before giving up.")
    ] = 0.0,
) -> None:
    """Simulate a district: streets, communities and departments moving cases through the loop.

    --backfill writes past days into the configured store (the relay publishes them as any other
    events); --rate drives live traffic through the HTTP API as the district's users, with tokens
    signed by WL_JWT_SECRET. Refused commands are normal traffic; errors (5xx) fail the run.
    """
    from gateway.auth import Role, issue_token
    from infra.live_traffic import run_simulate

    settings = get_settings()

    def token_for(role: str, scope: dict[str, str]) -> str:
        return issue_token(
            settings,
            Role(role),
            subject=scope.get("subject"),
            dept=scope.get("dept"),
            street=scope.get("street"),
            community=scope.get("community"),
        )

    status = run_simulate(
        settings,
        seed=seed,
        backfill_days=backfill,
        rate=rate,
        duration=duration,
        open311_share=open311_share,
        token_for=token_for,
        url=url,
        wait=wait,
        console=console,
    )
    raise typer.Exit(code=status)


@app.command()
def chaos(
    kills: Annotated[
        int, typer.Option(help="Processes killed with SIGKILL during the run.", min=0)
    ] = 50,
    seconds: Annotated[
        float, typer.Option(help="Seconds of load (the kills fall in its middle 80 %).", min=5)
    ] = 600.0,
    rate: Annotated[float, typer.Option(help="Commands per second sent.", min=1)] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the kill schedule.")] = 1,
    work: Annotated[
        Path | None,
        typer.Option(help="Folder for the run's stores and logs (default: a temporary one)."),
    ] = None,
    cluster: Annotated[
        bool,
        typer.Option(
            help="Run a 3-node NATS cluster (streams R3); a `nats` kill is then one node's."
        ),
    ] = False,
    postgres: Annotated[
        str,
        typer.Option(
            help="PostgreSQL URL: the event store and read models in fresh schemas there "
            "(dropped afterwards) instead of SQLite files.",
            metavar="URL",
        ),
    ] = "",
) -> None:
    """Kill the system's processes under load, then prove nothing was lost or repeated.

    Runs nats-server (or a 3-node cluster), the relay, the projector, the SLA clock and the
    gateway on fresh SQLite or PostgreSQL stores; sends closed-loop cases through the HTTP API;
    SIGKILLs a process (or nats-server, or one cluster node) at seeded moments and starts it again. Then checks: every 2xx command stored, WL_EVENTS equal to
    the store (once each, in order), read models equal to a clean rebuild, `audit verify` clean,
    a resumed WebSocket client without gaps. Exit code 1 if any check fails. See
    docs/RELIABILITY.md.
    """
    import tempfile

    from gateway.chaos import Setup, print_report, run_chaos

    with tempfile.TemporaryDirectory(prefix="wl-chaos-") as tmp:
        folder = work or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        setup = Setup(cluster=cluster, postgres_url=postgres)
        report = run_chaos(seed, kills, seconds, rate, folder, console, setup)
    print_report(report, console)
    raise typer.Exit(code=0 if report.ok else 1)


@app.command("nats-config")
def nats_config(
    output: Annotated[Path, typer.Option(help="Where to write the server config.")] = Path(
        "var/nats/accounts.conf"
    ),
    cluster: Annotated[
        bool,
        typer.Option(
            help="Write node-1.conf…node-3.conf beside --output: a 3-node JetStream cluster on "
            "this machine's loopback, each node with the same accounts."
        ),
    ] = False,
    client_port: Annotated[
        int | None,
        typer.Option(
            help="With --cluster: node 1's client port, then +1, +2 (default WL_NATS_PORT).",
            min=1,
            max=65533,
        ),
    ] = None,
    route_port: Annotated[
        int,
        typer.Option(help="With --cluster: node 1's route port, then +1, +2.", min=1, max=65533),
    ] = 16222,
) -> None:
    """Write a nats-server config with the APP and DEPTS accounts and a user per department.

    Passwords are generated, stored bcrypt-hashed in the config and in clear in a credentials
    file beside it (mode 600) for the services and departments to use; running it again keeps them.
    See docs/OPERATIONS.md for the cluster.
    """
    from infra.nats.accounts import ClusterLayout, write_cluster_config, write_config

    settings = get_settings()
    if not cluster:
        write_config(settings, output)
        console.print(f"wrote {output} (credentials beside it)")
        return
    layout = ClusterLayout.consecutive(client_port or settings.nats_port, route_port)
    if set(layout.client_ports) & set(layout.route_ports):
        console.print("[red]error:[/red] the client and route port ranges overlap")
        raise typer.Exit(code=2)
    written = write_cluster_config(settings, output, layout)
    for node in written.nodes:
        console.print(f"wrote {node.config_file}")
    console.print(f"credentials: {written.credentials}")
    console.print(
        f"start each with `nats-server -c <node-i.conf>`, then\nWL_NATS_URL={written.url}"
    )


@app.command("gateway")
def gateway_command(
    host: Annotated[str | None, typer.Option(help="Interface (default: WL_GATEWAY_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: WL_GATEWAY_PORT, 8000).", min=1, max=65535)
    ] = None,
) -> None:
    """Serve the REST API, WebSocket feeds and Open311 with uvicorn (OpenAPI docs at /docs).

    Needs the event store, the read models and NATS of the same settings. Refuses to start with the
    default JWT secret unless WL_DEV_MODE=true.
    """
    from gateway.cli import serve

    serve(host, port)


@app.command()
def dashboard(
    host: Annotated[
        str | None, typer.Option(help="Interface (default: WL_DASHBOARD_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: WL_DASHBOARD_PORT, 8501).", min=1, max=65535)
    ] = None,
    gateway_url: Annotated[
        str | None,
        typer.Option(help="The gateway it reads (default: WL_GATEWAY_HOST:WL_GATEWAY_PORT)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="A viewer token (default: WL_DASHBOARD_TOKEN, else one issued with WL_JWT_SECRET).",
            envvar="WL_DASHBOARD_TOKEN",
        ),
    ] = None,
) -> None:
    """Serve the Streamlit dashboard (指挥中心, 部门响应, 联动, 案件, 审计); it reads the gateway only.

    An inspector token for the audit page's time travel comes from WL_DASHBOARD_INSPECTOR_TOKEN (in
    dev mode one is issued). Stops on Ctrl-C/SIGTERM.
    """
    import os

    from dashboard.launch import streamlit_argv
    from gateway.cli import dashboard_tokens

    settings = get_settings()
    viewer, inspector = dashboard_tokens(settings, token)
    env = {
        **os.environ,
        "WL_DASHBOARD_GATEWAY_URL": gateway_url or settings.gateway_url(),
        "WL_DASHBOARD_TOKEN": viewer,
        "WL_DASHBOARD_INSPECTOR_TOKEN": os.environ.get("WL_DASHBOARD_INSPECTOR_TOKEN") or inspector,
    }
    argv = streamlit_argv(host or settings.dashboard_host, port or settings.dashboard_port)
    console.print(
        f"dashboard on http://{host or settings.dashboard_host}:{port or settings.dashboard_port}"
    )
    os.execve(argv[0], argv, env)  # Streamlit takes this process's place: signals reach it


@app.command()
def feed(
    dept: Annotated[str, typer.Option(help="Department code whose feed to tail (e.g. cgzf).")],
    since: Annotated[
        int | None,
        typer.Option(
            help="Resume after this WL_DEPT stream sequence (0: from the start; default: now).",
            min=0,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Gateway base URL (default: http://WL_GATEWAY_HOST:WL_GATEWAY_PORT)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token (role department, command_centre or inspector).",
            envvar="WL_FEED_TOKEN",
        ),
    ] = None,
) -> None:
    """Tail a department's live feed over WebSocket: one JSON line per frame (events, heartbeats).

    Reconnects by itself and resumes after the last sequence it printed, so nothing is missed or
    printed twice. Stops on Ctrl-C/SIGTERM; a refused token or department ends it with status 1.
    """
    from infra.feed_client import run_feed

    settings = get_settings()
    if not token:
        _fail("give --token or WL_FEED_TOKEN (whistleloop token issue --role department --dept D)")
    base = url or f"http://{settings.gateway_host}:{settings.gateway_port}"
    raise typer.Exit(run_feed(base, token or "", dept, since))


@token_app.command("issue")
def token_issue(
    role: Annotated[
        str,
        typer.Option(
            help="command_centre, street, community, department, inspector, resident or viewer "
            "(docs/SECURITY.md says what each may do)."
        ),
    ],
    dept: Annotated[str | None, typer.Option(help="Department code (role department).")] = None,
    street: Annotated[str | None, typer.Option(help="Street code (role street).")] = None,
    community: Annotated[str | None, typer.Option(help="Community code (role community).")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Who holds it (the actor id of unscoped roles).")
    ] = None,
    ttl: Annotated[
        str | None, typer.Option(help="Lifetime: 30m, 8h, 7d (default: WL_TOKEN_TTL, 8h).")
    ] = None,
) -> None:
    """Print a signed bearer token (HS256, WL_JWT_SECRET) for one role and its scope."""
    from gateway.cli import issue

    issue(role, dept=dept, street=street, community=community, subject=subject, ttl=ttl)


@contextmanager
def _service(clock: Clock | None = None) -> Iterator[CaseService]:
    """Opens the configured store; turns domain and database errors into one clear line."""
    service = None
    try:
        service = open_service(get_settings(), clock)
        yield service
    except DomainError as error:
        _fail(f"{error.code}: {error.message('en')} / {error.message('zh')}")
    except SQLAlchemyError as error:
        _fail(
            f"event store unavailable ({redact(get_settings().event_store_url())}): {error.args[0]}"
        )
    except ValueError as error:  # what the mapper raises on state it cannot decrypt or decode
        _fail(
            f"the stored events cannot be read ({error}): a wrong WL_CIPHER_KEY, or a store "
            "written with a key read without one (or the other way round)"
        )
    finally:
        if service is not None:
            service.close()


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=1)


def main() -> None:
    app()
