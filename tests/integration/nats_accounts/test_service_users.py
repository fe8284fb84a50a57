"""Each service user in APP can do its process's job through nats-py, and is refused the rest.

(The `secured` fixture itself already relies on the projector creating the department consumers and
publishing into WL_DEPT and WL_AUDIT.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import nats
import pytest
from asgi_lifespan import LifespanManager
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from domain.actors import Actor
from domain.clock import ManualClock
from gateway import create_app
from gateway.feeds import Feed, department_source
from infra.nats.accounts import department_consumer, department_filter
from infra.nats.server import NatsServer
from infra.nats.streams import (
    AUDIT_STREAM,
    DEPT_STREAM,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    NUDGE_SUBJECT,
    ensure_streams,
)
from infra.settings import Settings
from infra.store import open_service
from tests.integration.builders import run_full_loop
from tests.integration.nats_accounts.conftest import GeneratedConfig
from tests.integration.nats_accounts.support import (
    OTHER,
    OWN,
    PROJECTOR_CONSUMER,
    Probe,
    Secured,
    feed_of,
    probe,
    server_state,
    settle,
)
from tests.integration.relay.support import running_relay, wait_for

pytestmark = pytest.mark.asyncio


async def assert_refused(secured: Secured, user: Probe, subject: str, data: bytes = b"") -> None:
    """The server reports a violation for `subject` and the streams and consumers do not change."""
    before = await server_state(secured.admin)
    reasons = await user.denied(
        lambda: user.client.publish(subject, data, reply=user.client.new_inbox())
    )
    assert f'publish to "{subject.lower()}"' in " ".join(reasons), (subject, reasons)
    assert await server_state(secured.admin) == before, f"{subject} changed the server"


async def test_relay_creates_the_streams_publishes_and_finds_its_resume_point(
    secured_server: NatsServer, nats_config: GeneratedConfig
) -> None:
    """On an empty server, as at first start: everything the relay's run loop calls."""
    password = nats_config.credentials.services["relay"]
    async with probe(secured_server.url, "relay", password) as relay:
        js = relay.client.jetstream(timeout=2)
        await ensure_streams(js)
        await ensure_streams(js)  # the second run updates in place
        nudges = await relay.client.subscribe(NUDGE_SUBJECT)
        acks = [await js.publish_async(f"wl.ev.jianwai.c{i}.Reported", b"{}") for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*acks), timeout=5)
        last = await js.get_last_msg(EVENTS_STREAM, EVENTS_SUBJECTS, direct=True)
        plain = await js.get_last_msg(EVENTS_STREAM, EVENTS_SUBJECTS)
        gateway = nats_config.credentials.services["gateway"]
        async with probe(secured_server.url, "gateway", gateway) as gw:
            await gw.client.publish(NUDGE_SUBJECT, b"")
            await gw.client.flush(timeout=2)
        nudge = await nudges.next_msg(timeout=2)
        counts = {
            name: (await js.stream_info(name)).state.messages
            for name in (EVENTS_STREAM, DEPT_STREAM, AUDIT_STREAM)
        }
        assert relay.recorder.violations() == []

    assert (last.seq, last.subject, plain.seq) == (3, "wl.ev.jianwai.c2.Reported", 3)
    assert nudge.subject == NUDGE_SUBJECT
    assert counts == {EVENTS_STREAM: 3, DEPT_STREAM: 0, AUDIT_STREAM: 0}


async def test_relay_cannot_delete_purge_consume_or_write_other_streams(secured: Secured) -> None:
    async with probe(secured.url, *secured.service("relay")) as relay:
        for subject in [
            f"$JS.API.STREAM.DELETE.{EVENTS_STREAM}",
            f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}",
            f"$JS.API.STREAM.MSG.DELETE.{EVENTS_STREAM}",
            f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}",
            f"$JS.API.CONSUMER.DELETE.{EVENTS_STREAM}.{PROJECTOR_CONSUMER}",
            f"$JS.API.CONSUMER.MSG.NEXT.{DEPT_STREAM}.{department_consumer(OWN)}",
            "wl.dept.cgzf.c1.Forged",
            "wl.audit.sth",
        ]:
            await assert_refused(secured, relay, subject, b"{}")


async def test_projector_consumes_events_and_manages_department_consumers(secured: Secured) -> None:
    """What projections/runner.py, base.py and dept_feeds.py call, under the projector user."""
    async with probe(secured.url, *secured.service("projector")) as projector:
        js = projector.client.jetstream(timeout=2)
        await ensure_streams(js)
        subscription = await js.pull_subscribe(EVENTS_SUBJECTS, durable=PROJECTOR_CONSUMER)
        events = await subscription.fetch(10, timeout=2)
        await events[-1].ack_sync(timeout=2)
        await js.reset_consumer(EVENTS_STREAM, PROJECTOR_CONSUMER, seq=2)
        replayed = await (await js.pull_subscribe_bind(PROJECTOR_CONSUMER, EVENTS_STREAM)).fetch(
            10, timeout=2
        )
        name = department_consumer(OTHER)
        await js.delete_consumer(DEPT_STREAM, name)
        await js.add_consumer(
            DEPT_STREAM,
            ConsumerConfig(
                durable_name=name,
                filter_subject=department_filter(OTHER),
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )
        info = await js.consumer_info(DEPT_STREAM, name)
        stored = await js.get_msg(DEPT_STREAM, seq=1, subject=f"wl.dept.{OTHER}.>", next=True)
        await settle(projector.client)
        assert projector.recorder.violations() == []

    assert [e.subject for e in events] == [f"wl.ev.jianwai.case{i}.Reported" for i in range(3)]
    assert [e.subject for e in replayed] == [e.subject for e in events[1:]]
    assert info.num_pending == len(feed_of(OTHER))
    assert stored.subject == feed_of(OTHER)[0]


async def test_projector_cannot_write_events_delete_streams_or_read_department_consumers(
    secured: Secured,
) -> None:
    async with probe(secured.url, *secured.service("projector")) as projector:
        for subject in [
            "wl.ev.jianwai.c1.Forged",
            f"$JS.API.STREAM.DELETE.{DEPT_STREAM}",
            f"$JS.API.STREAM.PURGE.{DEPT_STREAM}",
            f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}",
            f"$JS.API.CONSUMER.MSG.NEXT.{DEPT_STREAM}.{department_consumer(OWN)}",
            NUDGE_SUBJECT,
        ]:
            await assert_refused(secured, projector, subject, b"{}")


async def test_gateway_reads_feeds_with_ordered_consumers(secured: Secured) -> None:
    async with probe(secured.url, *secured.service("gateway")) as gateway:
        js = gateway.client.jetstream(timeout=2)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=2)
        events = await js.subscribe(
            EVENTS_SUBJECTS, stream=EVENTS_STREAM, ordered_consumer=True, config=config
        )
        feed = await js.subscribe(f"wl.dept.{OWN}.>", stream=DEPT_STREAM, ordered_consumer=True)
        got_events = [(await events.next_msg(timeout=2)).subject for _ in range(2)]
        got_feed = [(await feed.next_msg(timeout=2)).subject for _ in feed_of(OWN)]
        await gateway.client.publish(NUDGE_SUBJECT, b"")
        await gateway.client.flush(timeout=2)
        assert gateway.recorder.violations() == []

    assert got_events == ["wl.ev.jianwai.case1.Reported", "wl.ev.jianwai.case2.Reported"]
    assert got_feed == feed_of(OWN)


async def test_gateway_cannot_write_streams_fetch_durables_or_delete(secured: Secured) -> None:
    async with probe(secured.url, *secured.service("gateway")) as gateway:
        for subject in [
            "wl.ev.jianwai.c1.Forged",
            f"wl.dept.{OWN}.c1.Forged",
            f"$JS.API.CONSUMER.MSG.NEXT.{DEPT_STREAM}.{department_consumer(OWN)}",
            f"$JS.API.CONSUMER.DELETE.{DEPT_STREAM}.{department_consumer(OWN)}",
            f"$JS.API.STREAM.DELETE.{EVENTS_STREAM}",
            "$JS.API.STREAM.CREATE.EVIL",
        ]:
            await assert_refused(secured, gateway, subject, json.dumps({"batch": 1}).encode())


async def test_the_real_relay_runs_under_the_relay_user(
    secured_server: NatsServer,
    nats_config: GeneratedConfig,
    tmp_path: Path,
    clock: ManualClock,
    actors: dict[str, Actor],
) -> None:
    """infra.relay.Relay itself, on an empty server: creates the streams, relays a whole case."""
    settings = Settings(
        var_dir=tmp_path / "var",
        nats_url=secured_server.url,
        nats_user="relay",
        nats_password=nats_config.credentials.services["relay"],
        relay_poll_interval=0.2,
        relay_ack_timeout=3.0,
    )
    service = open_service(settings, clock)
    try:
        service.publish_duty_list()
        run_full_loop(service, clock, actors)
        last = service.recorder.max_notification_id()
        admin = await nats.connect(
            secured_server.url, user="admin", password=nats_config.credentials.services["admin"]
        )
        try:
            async with running_relay(service, settings):
                await wait_for(lambda: _relayed(admin.jetstream(), last), 15, "the relayed log")
        finally:
            await admin.close()
    finally:
        service.close()


async def _relayed(js: JetStreamContext, last: int | None) -> bool:
    with contextlib.suppress(NotFoundError):
        info = await js.stream_info(EVENTS_STREAM)
        return info.state.messages == last
    return False


async def test_the_real_gateway_runs_under_the_gateway_user(
    secured: Secured, tmp_path: Path, clock: ManualClock
) -> None:
    """The gateway app itself as user `gateway`: readiness reads the stream's tail, and a department
    feed (an ordered consumer on WL_DEPT) delivers the department's events and nothing else."""
    user, password = secured.service("gateway")
    settings = Settings(
        var_dir=tmp_path / "var",
        nats_url=secured.url,
        nats_user=user,
        nats_password=password,
        dev_mode=True,
    )
    app = create_app(settings, clock=clock)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            readiness = (await client.get("/readyz")).json()
        feed = Feed(app.state.resources.js, department_source(OWN), since=None, queue_size=100)
        await feed.open()
        try:
            for code in (OTHER, OWN):
                body = json.dumps({"dept": code}).encode()
                await secured.admin.publish(f"wl.dept.{code}.c9.Whistled", body)
            first = json.loads(await feed.next_frame(heartbeat=5))
            second = json.loads(await feed.next_frame(heartbeat=0.5))
        finally:
            await feed.close()
    assert readiness["nats"] == {"ok": True, "detail": ""}
    assert (first["subject"], first["event"]) == (f"wl.dept.{OWN}.c9.Whistled", {"dept": OWN})
    assert second == {"type": "heartbeat", "seq": first["seq"]}  # nothing of the other's
