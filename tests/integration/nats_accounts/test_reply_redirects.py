"""The attack that two accounts exist for: a department's *allowed* request with a hostile reply subject.

The server answers a pull request by publishing to its reply subject. Inside the streams' account that
reply can be `$JS.API.STREAM.DELETE.WL_EVENTS`, and the stream is gone (the control test shows it on a
one-account config). With the generated config the answer lands in DEPTS, where it must do nothing:
streams, message counts, consumers and other departments' progress are compared after each attempt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig

from infra.nats.accounts import (
    department_consumer,
    department_filter,
    department_inbox,
    department_permissions,
    department_user,
)
from infra.nats.department_client import DepartmentFeed
from infra.nats.server import NatsServer
from infra.nats.streams import DEPT_STREAM, EVENTS_STREAM, ensure_streams
from tests.integration.nats_accounts.support import (
    OTHER,
    OWN,
    Probe,
    Secured,
    connect_probe,
    dept_seqs,
    probe,
    server_state,
    settle,
)

pytestmark = pytest.mark.asyncio

OWN_NEXT = f"$JS.API.CONSUMER.MSG.NEXT.{DEPT_STREAM}.{department_consumer(OWN)}"
#: How long a server-side effect of a misrouted reply is given to show (it would take microseconds).
GRACE = 0.2
VICTIM_ACK = "the-other-departments-ack-subject"

#: Where a reply is aimed, and what the server does with the attempt:
#: "answered" — it sends the feed there (DEPTS has interest: the system's answer to `$JS.API.…` in an
#: account without JetStream, an import, or the other department listening on its inbox);
#: "dropped" — nobody in DEPTS can listen there, so JetStream drops the request;
#: "refused" — `$JS.ACK.…` is a reserved reply prefix: the server rejects the publish itself.
TARGETS = {
    f"$JS.API.STREAM.DELETE.{EVENTS_STREAM}": "answered",
    f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}": "answered",
    f"$JS.API.STREAM.DELETE.{DEPT_STREAM}": "answered",
    f"$JS.API.STREAM.PURGE.{DEPT_STREAM}": "answered",
    f"$JS.API.CONSUMER.DELETE.{DEPT_STREAM}.{department_consumer(OTHER)}": "answered",
    f"$JS.API.CONSUMER.MSG.NEXT.{DEPT_STREAM}.{department_consumer(OTHER)}": "answered",
    f"{department_inbox(OTHER)}.stolen": "answered",
    VICTIM_ACK: "refused",
    f"wl.dept.{OTHER}.c1.Injected": "dropped",
    "wl.ev.jianwai.c1.Injected": "dropped",
}


@dataclass(frozen=True)
class Victim:
    ack_subject: str
    inbox: Subscription


@pytest_asyncio.fixture
async def victim(secured: Secured) -> AsyncIterator[Victim]:
    """OTHER holds one fetched, unacked message, and listens on its whole inbox prefix."""
    feed = await DepartmentFeed.open(secured.url, OTHER, secured.credentials.departments[OTHER])
    try:
        [message] = await feed.fetch(batch=1, timeout=2)
        inbox = await feed.client.subscribe(f"{department_inbox(OTHER)}.>")
        await settle(feed.client)
        yield Victim(message.reply, inbox)
    finally:
        await feed.close()


@pytest_asyncio.fixture
async def dept(secured: Secured) -> AsyncIterator[Probe]:
    async with probe(
        secured.url,
        department_user(OWN),
        secured.credentials.departments[OWN],
        department_inbox(OWN),
    ) as connected:
        yield connected


def next_request(**request: object) -> bytes:
    return json.dumps(request).encode()


@pytest.mark.parametrize("target", TARGETS)
async def test_a_pull_request_aimed_elsewhere_changes_nothing(
    secured: Secured, dept: Probe, victim: Victim, target: str
) -> None:
    reply = victim.ack_subject if target == VICTIM_ACK else target
    client = dept.client
    inbox = await client.subscribe(client.new_inbox())  # a pulled message keeps its own subject,
    await client.publish(OWN_NEXT, next_request(batch=1), reply=inbox.subject)  # so no request()
    own = await inbox.next_msg(timeout=2)
    assert own.reply.startswith(f"$JS.ACK.{DEPT_STREAM}.{department_consumer(OWN)}.")

    attempts = {
        "+NXT on its own ack subject": (own.reply, b"+NXT " + next_request(batch=1)),
        "pull with data waiting": (OWN_NEXT, next_request(batch=5, expires=500_000_000)),
        "pull answered by an empty status": (OWN_NEXT, next_request(batch=1, no_wait=True)),
    }
    for what, (subject, data) in attempts.items():
        ignore = department_consumer(OWN)
        before = await server_state(secured.admin, ignore)
        await client.publish(subject, data, reply=reply)
        await settle(client)
        await asyncio.sleep(GRACE)
        assert await server_state(secured.admin, ignore) == before, what

    info = await secured.admin.consumer_info(DEPT_STREAM, department_consumer(OWN))
    violations = dept.recorder.violations()
    if TARGETS[target] == "answered":  # the attempts were real: the whole feed went out
        assert info.delivered.stream_seq == dept_seqs(OWN)[-1]
        assert violations == []
    elif TARGETS[target] == "refused":
        assert info.delivered.stream_seq == dept_seqs(OWN)[0]
        assert len(violations) == len(attempts)
        assert all("publish with reply of" in v for v in violations)
    else:
        assert violations == []


async def test_control_in_one_account_the_same_request_deletes_the_stream(tmp_path: Path) -> None:
    """Proves the attack is real and the harness sees it: department user inside APP, same rights."""
    admin = {"user": "admin", "password": "admin-pw"}
    user = {
        "user": department_user(OWN),
        "password": "dept-pw",
        "permissions": department_permissions(OWN).as_config(),
    }
    fragment = "accounts: " + json.dumps({"APP": {"jetstream": "enabled", "users": [admin, user]}})
    server = NatsServer(tmp_path / "nats", config_extra=fragment).start()
    try:
        async with probe(server.url, "admin", "admin-pw") as admin_probe:
            js = admin_probe.client.jetstream(timeout=2)
            await ensure_streams(js)
            await js.add_consumer(
                DEPT_STREAM,
                ConsumerConfig(
                    durable_name=department_consumer(OWN),
                    filter_subject=department_filter(OWN),
                    ack_policy=AckPolicy.EXPLICIT,
                ),
            )
            dept = await connect_probe(
                server.url, department_user(OWN), "dept-pw", department_inbox(OWN)
            )
            try:
                reply = f"$JS.API.STREAM.DELETE.{EVENTS_STREAM}"
                await dept.client.publish(
                    OWN_NEXT, next_request(batch=1, no_wait=True), reply=reply
                )
                await settle(dept.client)
            finally:
                await dept.close()
            await _wait_until_gone(js, EVENTS_STREAM)
    finally:
        server.kill()


async def _wait_until_gone(js: nats.js.JetStreamContext, stream: str, timeout: float = 3) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while stream in {info.config.name for info in await js.streams_info()}:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{stream} survived: the control attack did not work")
        await asyncio.sleep(0.05)
