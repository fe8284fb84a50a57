"""A department user can do nothing but pull and ack its own consumer: every other door is shut.

Each attempt must be reported as a permissions violation *and* leave the server as it was (streams,
message counts, consumers and their progress), checked with the admin user after every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig

from infra.nats.accounts import department_consumer, department_inbox, department_user
from infra.nats.department_client import DepartmentFeed
from infra.nats.streams import AUDIT_STREAM, DEPT_STREAM, EVENTS_STREAM
from tests.integration.nats_accounts.support import (
    OTHER,
    OWN,
    PROJECTOR_CONSUMER,
    Probe,
    Secured,
    connect_probe,
    feed_of,
    server_state,
    settle,
)

pytestmark = pytest.mark.asyncio

NEXT = "$JS.API.CONSUMER.MSG.NEXT"


@pytest_asyncio.fixture
async def dept(secured: Secured) -> AsyncIterator[Probe]:
    """The department OWN, connected exactly as its client helper connects."""
    probe = await connect_probe(
        secured.url,
        department_user(OWN),
        secured.credentials.departments[OWN],
        department_inbox(OWN),
    )
    yield probe
    await probe.close()


async def assert_publish_denied(secured: Secured, dept: Probe, subject: str, data: bytes) -> None:
    before = await server_state(secured.admin)
    reasons = await dept.denied(
        lambda: dept.client.publish(subject, data, reply=dept.client.new_inbox())
    )
    assert f'publish to "{subject.lower()}"' in " ".join(reasons), (subject, reasons)
    assert await server_state(secured.admin) == before, (
        f"publishing to {subject} changed the server"
    )


async def test_it_cannot_subscribe_to_events_other_departments_or_other_inboxes(
    secured: Secured, dept: Probe
) -> None:
    subjects = [
        "wl.ev.>",
        ">",
        "wl.>",
        f"wl.dept.{OTHER}.>",
        f"wl.dept.{OWN}.>",
        "wl.audit.>",
        "_INBOX.>",
        f"_INBOX_{OTHER}.>",
        "$JS.>",
        f"$JS.ACK.{DEPT_STREAM}.{department_consumer(OTHER)}.>",
    ]
    subscriptions: list[Subscription] = []
    for subject in subjects:

        async def subscribe(subject: str = subject) -> None:
            subscriptions.append(await dept.client.subscribe(subject))

        reasons = await dept.denied(subscribe)
        assert f'subscription to "{subject.lower()}"' in " ".join(reasons), (subject, reasons)

    # The other department reads its feed meanwhile: nothing of it reaches these subscriptions.
    other = await DepartmentFeed.open(secured.url, OTHER, secured.credentials.departments[OTHER])
    try:
        got = await other.fetch(batch=10, timeout=2)
        await other.ack(got)
    finally:
        await other.close()
    assert [m.subject for m in got] == feed_of(OTHER)
    await settle(dept.client)
    assert [sub.pending_msgs for sub in subscriptions] == [0] * len(subjects)


@pytest.mark.parametrize(
    "subject",
    [
        f"{NEXT}.{DEPT_STREAM}.{department_consumer(OTHER)}",
        f"{NEXT}.{EVENTS_STREAM}.{PROJECTOR_CONSUMER}",
        f"{NEXT}.{AUDIT_STREAM}.any",
        f"$JS.ACK.{DEPT_STREAM}.{department_consumer(OTHER)}.1.2.1.0.0",
        f"$JS.ACK.{EVENTS_STREAM}.{PROJECTOR_CONSUMER}.1.1.1.0.0",
    ],
)
async def test_it_cannot_fetch_or_ack_from_any_consumer_but_its_own(
    secured: Secured, dept: Probe, subject: str
) -> None:
    await assert_publish_denied(secured, dept, subject, json.dumps({"batch": 5}).encode())


async def test_it_cannot_create_inspect_list_or_delete_consumers(
    secured: Secured, dept: Probe
) -> None:
    mine, theirs = department_consumer(OWN), department_consumer(OTHER)
    config = json.dumps({"stream_name": DEPT_STREAM, "config": {"durable_name": "evil"}}).encode()
    for subject, data in [
        (f"$JS.API.CONSUMER.CREATE.{DEPT_STREAM}", config),
        (f"$JS.API.CONSUMER.CREATE.{DEPT_STREAM}.evil.wl.dept.{OTHER}.>", config),
        (f"$JS.API.CONSUMER.DURABLE.CREATE.{DEPT_STREAM}.evil", config),
        (f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}", b"{}"),
        (f"$JS.API.CONSUMER.INFO.{DEPT_STREAM}.{mine}", b""),
        (f"$JS.API.CONSUMER.INFO.{DEPT_STREAM}.{theirs}", b""),
        (f"$JS.API.CONSUMER.LIST.{DEPT_STREAM}", b"{}"),
        (f"$JS.API.CONSUMER.NAMES.{DEPT_STREAM}", b"{}"),
        (f"$JS.API.CONSUMER.DELETE.{DEPT_STREAM}.{theirs}", b""),
        (f"$JS.API.CONSUMER.DELETE.{DEPT_STREAM}.{mine}", b""),
        (f"$JS.API.CONSUMER.PAUSE.{DEPT_STREAM}.{theirs}", b"{}"),
    ]:
        await assert_publish_denied(secured, dept, subject, data)


async def test_it_cannot_read_messages_by_sequence_or_direct_get(
    secured: Secured, dept: Probe
) -> None:
    for subject, data in [
        (f"$JS.API.STREAM.MSG.GET.{DEPT_STREAM}", b'{"seq": 2}'),
        (f"$JS.API.STREAM.MSG.GET.{EVENTS_STREAM}", b'{"seq": 1}'),
        (f"$JS.API.DIRECT.GET.{DEPT_STREAM}", b'{"seq": 2}'),
        (f"$JS.API.DIRECT.GET.{DEPT_STREAM}.wl.dept.{OTHER}.c1.Event1", b""),
        (f"$JS.API.DIRECT.GET.{EVENTS_STREAM}", b'{"seq": 1}'),
        (f"$JS.API.STREAM.INFO.{DEPT_STREAM}", b""),
        ("$JS.API.STREAM.LIST", b"{}"),
        ("$JS.API.INFO", b""),
    ]:
        await assert_publish_denied(secured, dept, subject, data)


async def test_it_cannot_publish_into_any_stream_or_manage_streams(
    secured: Secured, dept: Probe
) -> None:
    for subject, data in [
        ("wl.ev.jianwai.forged.Reported", b"{}"),
        (f"wl.dept.{OWN}.forged.Event", b"{}"),
        (f"wl.dept.{OTHER}.forged.Event", b"{}"),
        ("wl.audit.sth", b"forged"),
        (f"$JS.API.STREAM.DELETE.{EVENTS_STREAM}", b""),
        (f"$JS.API.STREAM.PURGE.{DEPT_STREAM}", b""),
        (f"$JS.API.STREAM.MSG.DELETE.{DEPT_STREAM}", b'{"seq": 1}'),
        ("$JS.API.STREAM.CREATE.EVIL", b'{"name": "EVIL", "subjects": ["evil.>"]}'),
        ("wl.relay.nudge", b""),
    ]:
        await assert_publish_denied(secured, dept, subject, data)


async def test_jetstream_calls_beyond_its_consumer_time_out_and_report_the_denial(
    secured: Secured, dept: Probe
) -> None:
    """What a department's code sees through nats-py: no exception naming the cause, only a timeout
    (asserted) and the reason on error_cb; the state is unchanged."""
    before = await server_state(secured.admin)
    js = dept.jetstream()
    attempts = {
        "add_consumer": js.add_consumer(
            DEPT_STREAM, ConsumerConfig(durable_name="evil", ack_policy=AckPolicy.EXPLICIT)
        ),
        "consumer_info": js.consumer_info(DEPT_STREAM, department_consumer(OWN)),
        "delete_consumer": js.delete_consumer(DEPT_STREAM, department_consumer(OTHER)),
        "delete_stream": js.delete_stream(EVENTS_STREAM),
        "get_msg": js.get_msg(DEPT_STREAM, seq=2),
        "get_last_msg_direct": js.get_last_msg(
            DEPT_STREAM, f"wl.dept.{OTHER}.c1.Event1", direct=True
        ),
        "publish": js.publish(f"wl.dept.{OWN}.c1.Forged", b"{}"),
        "pull_subscribe": js.pull_subscribe(f"wl.dept.{OWN}.>", durable=department_consumer(OWN)),
    }
    seen = len(dept.recorder.errors)
    results = await asyncio.gather(*attempts.values(), return_exceptions=True)
    with contextlib.suppress(nats.errors.TimeoutError):
        await settle(dept.client)
    outcomes = {name: type(result).__name__ for name, result in zip(attempts, results, strict=True)}
    assert outcomes == dict.fromkeys(attempts, "TimeoutError")
    assert len(dept.recorder.violations(seen)) >= len(attempts)
    assert await server_state(secured.admin) == before
