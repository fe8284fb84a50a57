"""`whistleloop up`: the whole system on one machine, supervised, until Ctrl-C or SIGTERM.

Today that is the embedded nats-server (unless WL_NATS_URL names one), the relay, the projectors (all
of them), the SLA clock, the gateway and the dashboard. With `--demo`, demo cases
move through the closed loop every few seconds; with `--simulate`, a simulated district's last days
are written first (on an empty store) and a `whistleloop simulate` child sends live traffic through
the gateway. Every event is printed as it arrives on WL_EVENTS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from rich.console import Console

from domain.service import CaseService
from infra.demo import LiveTraffic
from infra.event_codec import HEADER_TOPIC
from infra.live_traffic import backfill_with_progress
from infra.nats.connection import connect
from infra.nats.server import NatsServer, nats_server_binary, wait_for_port
from infra.nats.streams import ensure_streams
from infra.relay import Nudger
from infra.render import EVENT_LABELS, china_time
from infra.settings import Settings
from infra.signals import stop_on_signals
from infra.store import has_cases, open_service, redact
from infra.supervisor import Child, Supervisor


@dataclass(frozen=True)
class Simulated:
    """`up --simulate`: a district's history written before the children start (on a store with
    no case yet), then a `whistleloop simulate` child driving live traffic through the gateway."""

    rate: float
    backfill_days: float
    seed: int = 1


def children(settings: Settings, simulated: Simulated | None = None) -> list[Child]:
    """What `up` runs; every child gets the same settings through the environment."""
    whistleloop = str(Path(sys.executable).with_name("whistleloop"))
    env = {
        "WL_NATS_URL": settings.nats_servers(),
        "WL_VAR_DIR": str(settings.var_dir.resolve()),
        "WL_DEV_MODE": "true" if settings.dev_mode else "false",
    }
    found: list[Child] = []
    if not settings.nats_url:
        server = NatsServer(settings.var_dir / "nats", port=settings.nats_port, name="whistleloop")
        server.store_dir.mkdir(parents=True, exist_ok=True)
        server.config_path.write_text(server.config_text())
        found.append(Child("nats", [str(nats_server_binary()), "-c", str(server.config_path)]))
    found.append(Child("relay", [whistleloop, "relay"], env))
    found.append(Child("projector", [whistleloop, "project"], env))
    found.append(Child("sla", [whistleloop, "sla"], env))
    found.append(Child("gateway", [whistleloop, "gateway"], env))
    found.append(Child("dashboard", [whistleloop, "dashboard"], env))
    if simulated is not None:
        rate = ["--rate", f"{simulated.rate:g}", "--seed", str(simulated.seed)]
        command = [whistleloop, "simulate", *rate, "--wait", f"{GATEWAY_WAIT:g}"]
        found.append(Child("simulate", command, env))
    return found


#: Seconds the simulator waits for the gateway, which starts beside it.
GATEWAY_WAIT = 60.0


def run_up(
    settings: Settings,
    *,
    demo: bool,
    duration: float | None,
    console: Console,
    banner: Sequence[str] = (),
    simulated: Simulated | None = None,
) -> None:
    """`banner`: lines the caller adds to the start-up banner (the gateway's URLs and demo tokens)."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    service = open_service(settings)
    service.publish_duty_list()
    if simulated is not None and simulated.backfill_days > 0:
        _backfill_once(settings, service, simulated, console)
    supervisor = Supervisor(children(settings, simulated), settings.var_dir / "logs")
    supervisor.start_all()
    try:
        if not settings.nats_url:
            wait_for_port(settings.nats_port)
        asyncio.run(_serve(settings, service, supervisor, demo, duration, console, banner))
    finally:
        supervisor.stop_all()
        service.close()
        console.print("stopped: all processes ended")


def _backfill_once(
    settings: Settings, service: CaseService, simulated: Simulated, console: Console
) -> None:
    """History for a fresh store only: started again, `up` keeps what it has and adds live traffic."""
    if has_cases(service):
        console.print("store already holds cases: no backfill")
        return
    done = backfill_with_progress(settings, simulated.seed, simulated.backfill_days, console)
    console.print(done.summary())


async def _serve(
    settings: Settings,
    service: CaseService,
    supervisor: Supervisor,
    demo: bool,
    duration: float | None,
    console: Console,
    banner: Sequence[str],
) -> None:
    stop = stop_on_signals()
    loop = asyncio.get_running_loop()
    nc = await connect(settings.nats_servers(), name="whistleloop-up")
    try:
        await ensure_streams(nc.jetstream(), settings.nats_replicas)
        _print_banner(settings, supervisor, console, banner)
        await nc.jetstream().subscribe(
            "wl.ev.>",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            cb=partial(_print_event, console=console),
        )
        if demo:
            service.after_save.append(Nudger(nc, loop))
        await _watch(supervisor, LiveTraffic(service) if demo else None, stop, duration)
    finally:
        await nc.drain()


async def _watch(
    supervisor: Supervisor, traffic: LiveTraffic | None, stop: asyncio.Event, duration: float | None
) -> None:
    """Keeps children alive and (with --demo) moves demo cases every 3 s until stopped."""
    ends = time.monotonic() + duration if duration else None
    next_tick = time.monotonic()
    while not stop.is_set() and (ends is None or time.monotonic() < ends):
        supervisor.poll()
        if traffic is not None and time.monotonic() >= next_tick:
            await asyncio.to_thread(traffic.tick)
            next_tick = time.monotonic() + 3.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


async def _print_event(msg: Msg, console: Console) -> None:
    body = json.loads(msg.data)
    kind = (msg.headers or {}).get(HEADER_TOPIC, "?").rsplit(".", 1)[-1]
    actor = body.get("actor", {})
    console.print(
        f"{china_time(datetime.fromisoformat(body['timestamp']))}  #{msg.metadata.sequence.stream:<6}"
        f" {EVENT_LABELS.get(kind, kind):<6} {kind:<20} {body['street']:<11}"
        f" {body['aggregate_id'][:8]}  {actor.get('role', '')}:{actor.get('id', '')}"
    )


def _print_banner(
    settings: Settings, supervisor: Supervisor, console: Console, extra: Sequence[str]
) -> None:
    console.print("[bold]whistleloop is up[/bold]")
    console.print(f"  event store : {redact(settings.event_store_url())}")
    console.print(
        f"  NATS        : {settings.nats_servers()} (streams WL_EVENTS, WL_DEPT, WL_AUDIT)"
    )
    console.print(f"  processes   : {', '.join(c.name for c in supervisor.children)}")
    console.print(f"  logs        : {settings.var_dir / 'logs'}")
    for line in extra:
        console.print(f"  {line}", soft_wrap=True)
    console.print("Events arriving on WL_EVENTS (Ctrl-C stops everything):")
