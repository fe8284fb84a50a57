"""Subject guessing: with department A's credentials, try every subject where B's events could be.

test_department_denials.py checks the doors one by one. This file is the attacker's sweep: department
A (cgzf) subscribes to, and sends requests to, a generated list of subjects — B's (zj's) department
subjects, inbox prefix, consumer and ack subjects, the JetStream API's direct gets and message gets,
the system account's subjects, broad wildcards, and the same subjects in other letter cases — while
B's events are being published (each carries a secret in its body and in a header) and B reads them
through its own client, so B's deliveries cross the account A is in. Every attempt must be either
reported as a permissions violation or yield nothing; no message A receives, on any subscription or
reply inbox, may carry B's events; A moves no consumer but its own. The control: B, with its own
credentials, receives every one of those events on its own consumer, and the same check that found
nothing on A's side recognises each of them as B's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infra.nats.accounts import (
    department_consumer,
    department_inbox,
    department_user,
)
from infra.nats.department_client import DepartmentFeed
from infra.nats.streams import AUDIT_STREAM, DEPT_STREAM, EVENTS_STREAM
from tests.integration.nats_accounts.support import (
    OTHER,
    OWN,
    PROJECTOR_CONSUMER,
    Probe,
    Secured,
    feed_of,
    probe,
    server_state,
)
from tests.integration.projections.support import eventually

pytestmark = pytest.mark.asyncio

#: In the body and a header of every live event of B's, and in nothing of A's.
SECRET = "zjsecret"
SECRET_HEADER = "Wl-Secret"
#: Seconds between two of B's live events (each on WL_DEPT and on WL_EVENTS).
PACE = 0.02
#: How long answers to A's attempts may take to arrive (they would take milliseconds).
GRACE = 1.0
#: Bounds a failing wait only.
WAIT = 20.0
#: Fetches B's reader makes at most once the publishing stopped (a few are enough).
DRAIN_ROUNDS = 20

API = "$JS.API"
NEXT = f"{API}.CONSUMER.MSG.NEXT"
THEIR_CONSUMER = department_consumer(OTHER)
THEIR_INBOX = department_inbox(OTHER)
OWN_INBOX = department_inbox(OWN)
THEIR_SUBJECT = f"wl.dept.{OTHER}.c1.Event1"  # a seeded message of B's


def unique(subjects: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(subjects))


def cases(subject: str) -> list[str]:
    """Other letter cases of a subject (NATS subjects are case-sensitive: each is a new guess)."""
    return unique(s for s in (subject.upper(), subject.lower(), subject.title()) if s != subject)


def their_subjects() -> list[str]:
    """Where B's events, fetches and acks travel: its feed, inbox, consumer, ack subjects."""
    return [
        f"wl.dept.{OTHER}.>",
        f"wl.dept.{OTHER}.*",
        f"wl.dept.{OTHER}.*.*",
        f"wl.dept.{OTHER}.c1.>",
        THEIR_SUBJECT,
        f"wl.dept.{OTHER}.live.>",
        "wl.dept.*.c1.>",
        f"wl.*.{OTHER}.>",
        f"*.*.{OTHER}.>",
        f"{THEIR_INBOX}.>",
        f"{THEIR_INBOX}.*",
        f"{THEIR_INBOX}X.>",
        f"{NEXT}.{DEPT_STREAM}.{THEIR_CONSUMER}",
        f"{NEXT}.{DEPT_STREAM}.*",
        f"$JS.ACK.{DEPT_STREAM}.{THEIR_CONSUMER}.>",
        f"$JS.ACK.{DEPT_STREAM}.>",
        f"$JS.ACK.{EVENTS_STREAM}.{PROJECTOR_CONSUMER}.>",
        f"{API}.DIRECT.GET.{DEPT_STREAM}.wl.dept.{OTHER}.>",
        f"{API}.DIRECT.GET.{DEPT_STREAM}.>",
        f"{API}.CONSUMER.INFO.{DEPT_STREAM}.{THEIR_CONSUMER}",
        f"$JS.FC.{DEPT_STREAM}.>",
    ]


def wildcards() -> list[str]:
    """Broad subscriptions: everything, every stream's subjects, every reserved prefix."""
    return [
        ">",
        "*",
        "*.>",
        "*.*.>",
        "wl.>",
        "wl.*",
        "wl.*.>",
        "wl.*.*.>",
        "wl.ev.>",
        "wl.dept.>",
        "wl.audit.>",
        "wl.relay.nudge",
        "_INBOX.>",
        "_INBOX.*",
        "_R_.>",  # where the server maps the replies of service imports
        "$JS.>",
        "$JS.API.>",
        f"{API}.DIRECT.GET.>",
        "$JS.ACK.>",
        "$JS.EVENT.>",
        "$JS.FC.>",
        "$SYS.>",
        "$SYS.ACCOUNT.>",
        "$SYS.REQ.>",
        "$SYS.SERVER.>",
        "$KV.>",
        "$O.>",
        "$MQTT.>",
    ]


def subscribe_guesses() -> list[str]:
    """Every subscription A tries: B's subjects and the wildcards, then each in other cases."""
    guessed = [*their_subjects(), *wildcards()]
    return unique([*guessed, *(variant for s in their_subjects() for variant in cases(s))])


def request_guesses() -> list[tuple[str, bytes]]:
    """The requests A sends (subject, body): pulls from and acks on B's consumer (and the
    projector's), direct and sequence reads of B's messages, consumers made to deliver B's
    subjects to A's inbox, stream listings, the system account; the pulls and acks once more in
    other letter cases."""
    pull = json.dumps({"batch": 50, "expires": 500_000_000}).encode()
    steal = json.dumps(
        {
            "stream_name": DEPT_STREAM,
            "config": {
                "deliver_subject": f"{OWN_INBOX}.stolen",
                "filter_subject": f"wl.dept.{OTHER}.>",
            },
        }
    ).encode()
    guessed = [
        (f"{NEXT}.{DEPT_STREAM}.{THEIR_CONSUMER}", pull),
        (f"{NEXT}.{EVENTS_STREAM}.{PROJECTOR_CONSUMER}", pull),
        (f"{NEXT}.{AUDIT_STREAM}.{THEIR_CONSUMER}", pull),
        (f"$JS.ACK.{DEPT_STREAM}.{THEIR_CONSUMER}.1.2.2.0.0", b""),
        (f"$JS.ACK.{DEPT_STREAM}.{THEIR_CONSUMER}.1.2.2.0.0", b"+NXT"),
        (f"{API}.DIRECT.GET.{DEPT_STREAM}", b'{"seq": 2}'),
        (f"{API}.DIRECT.GET.{DEPT_STREAM}", json.dumps({"last_by_subj": THEIR_SUBJECT}).encode()),
        (f"{API}.DIRECT.GET.{DEPT_STREAM}.{THEIR_SUBJECT}", b""),
        (f"{API}.DIRECT.GET.{EVENTS_STREAM}", b'{"seq": 1}'),
        (f"{API}.STREAM.MSG.GET.{DEPT_STREAM}", b'{"seq": 2}'),
        (
            f"{API}.STREAM.MSG.GET.{DEPT_STREAM}",
            json.dumps({"seq": 1, "next_by_subj": f"wl.dept.{OTHER}.>"}).encode(),
        ),
        (f"{API}.CONSUMER.CREATE.{DEPT_STREAM}", steal),
        (f"{API}.CONSUMER.CREATE.{DEPT_STREAM}.stolen.wl.dept.{OTHER}.>", steal),
        (f"{API}.CONSUMER.INFO.{DEPT_STREAM}.{THEIR_CONSUMER}", b""),
        (f"{API}.CONSUMER.LIST.{DEPT_STREAM}", b"{}"),
        (f"{API}.STREAM.INFO.{DEPT_STREAM}", b'{"subjects_filter": ">"}'),
        (f"{API}.STREAM.LIST", b"{}"),
        (f"{API}.INFO", b""),
        (f"wl.dept.{OTHER}.c1.Event1", b"{}"),
        (f"{THEIR_INBOX}.anything", b"{}"),
        ("$SYS.REQ.SERVER.PING", b""),
        ("$SYS.REQ.SERVER.PING.CONNZ", b'{"subscriptions_detail": true}'),
        ("$SYS.REQ.ACCOUNT.DEPTS.CONNZ", b'{"subscriptions_detail": true}'),
        ("$SYS.REQ.ACCOUNT.APP.CONNZ", b'{"subscriptions_detail": true}'),
        ("$SYS.REQ.USER.INFO", b""),
    ]
    variants = [(v, body) for s, body in guessed[:4] for v in cases(s)]
    return [*guessed, *variants]


def carries_theirs(msg: Msg) -> bool:
    """Whether a message is (or quotes) one of B's events: its subject, a seeded body, a secret."""
    text = " ".join([msg.subject, msg.data.decode("utf-8", "replace"), str(msg.headers or {})])
    return f"wl.dept.{OTHER}." in text or f"{OTHER}:" in text or SECRET in text


@dataclass
class Heard:
    """What one of A's attempts brought back."""

    what: str
    subject: str
    denied: bool = False
    messages: list[Msg] = field(default_factory=list)

    async def keep(self, msg: Msg) -> None:
        self.messages.append(msg)

    def problem(self) -> str | None:
        """Fine: refused, or nothing came. Else the attempt is named with what it brought."""
        theirs = [m for m in self.messages if carries_theirs(m)]
        if theirs:
            return (
                f"{self.what} {self.subject}: {len(theirs)} of B's events, e.g. {theirs[0].subject}"
            )
        if self.messages and not self.denied:
            return f"{self.what} {self.subject}: allowed, and {len(self.messages)} messages came"
        return None


@contextlib.asynccontextmanager
async def publishing_theirs(js: JetStreamContext) -> AsyncIterator[list[str]]:
    """B's live events on WL_DEPT and WL_EVENTS (as the projector and relay publish them) until
    the block ends; yields the secrets published so far."""
    published: list[str] = []
    stop = asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            secret = f"{SECRET}{len(published)}"
            body = json.dumps({"case": "live", "note": secret}).encode()
            headers = {SECRET_HEADER: secret}
            number = len(published)
            await js.publish(f"wl.dept.{OTHER}.live.Event{number}", body, headers=headers)
            await js.publish(f"wl.ev.hujialou.live.Event{number}", body, headers=headers)
            published.append(secret)
            await asyncio.sleep(PACE)

    task = asyncio.create_task(run())
    try:
        yield published
    finally:
        stop.set()
        await task


async def try_subscribe(dept: Probe, subject: str, queue: str = "") -> Heard:
    """Subscribes (in a queue group, if given) and keeps whatever arrives on the subscription."""
    heard = Heard("subscribe" + (f" (queue {queue})" if queue else ""), subject)

    async def subscribe() -> None:
        await dept.client.subscribe(subject, queue=queue, cb=heard.keep)

    reasons = await dept.denied(subscribe)
    heard.denied = f'subscription to "{subject.lower()}"' in " ".join(reasons)
    return heard


async def try_request(dept: Probe, subject: str, body: bytes, number: int) -> Heard:
    """Publishes with a reply subject in A's own inbox, where A listens for any answer."""
    heard = Heard("request", subject)
    reply = f"{OWN_INBOX}.guess.{number}"
    await dept.client.subscribe(reply, cb=heard.keep)
    reasons = await dept.denied(lambda: dept.client.publish(subject, body, reply=reply))
    heard.denied = f'publish to "{subject.lower()}"' in " ".join(reasons)
    return heard


async def guarded(js: JetStreamContext) -> dict[str, object]:
    """What A must not change while B's events keep arriving and B reads them: which streams and
    consumers exist, each stream's first sequence (a purge or delete moves it), and how far the
    projector's consumer has been delivered and acked. The departments' consumers move by their
    own reading; B's is checked by what B receives (`check_their_reading`)."""
    state = await server_state(js, ignore=department_consumer(OWN))
    kept: dict[str, object] = {}
    for name, value in state.items():
        if name.startswith("stream ") and isinstance(value, tuple):
            kept[name] = value[1]
        elif isinstance(value, dict):
            kept[name] = {
                k: v[:3] if isinstance(v, tuple) and k != THEIR_CONSUMER else None
                for k, v in value.items()
            }
    return kept


@contextlib.asynccontextmanager
async def reading_theirs(secured: Secured) -> AsyncIterator[list[Msg]]:
    """B reads and acks its own consumer all along, as its client does: its deliveries travel
    through the account A is in. On exit, B reads until nothing is left; yields what B got."""
    feed = await DepartmentFeed.open(secured.url, OTHER, secured.credentials.departments[OTHER])
    got: list[Msg] = []
    stop = asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            batch = await feed.fetch(batch=100, timeout=0.5)
            await feed.ack(batch)
            got.extend(batch)

    task = asyncio.create_task(run())
    try:
        yield got
    finally:
        stop.set()
        await task
        for _ in range(DRAIN_ROUNDS):  # bounded: a failing test must not hang
            batch = await feed.fetch(batch=100, timeout=0.5)
            if not batch:
                break
            await feed.ack(batch)
            got.extend(batch)
        await feed.close()


async def attack(dept: Probe) -> list[Heard]:
    """Every subscription and request A guesses, each settled before the next."""
    attempts = [await try_subscribe(dept, s) for s in subscribe_guesses()]
    attempts += [await try_subscribe(dept, s, queue="q") for s in their_subjects()]
    attempts += [await try_request(dept, s, b, n) for n, (s, b) in enumerate(request_guesses())]
    return attempts


async def own_feed(dept: Probe) -> list[Msg]:
    """What A's own consumer hands A (its one allowed request), read without acking."""
    inbox = await dept.client.subscribe(f"{OWN_INBOX}.own")
    pull = json.dumps({"batch": 100, "no_wait": True}).encode()
    own_next = f"{NEXT}.{DEPT_STREAM}.{department_consumer(OWN)}"
    await dept.client.publish(own_next, pull, reply=inbox.subject)
    got: list[Msg] = []
    with contextlib.suppress(TimeoutError):
        while True:
            msg = await inbox.next_msg(timeout=1)
            if not msg.data:  # the empty status message that ends a no_wait pull
                break
            got.append(msg)
    return got


async def check_their_reading(js: JetStreamContext, got: list[Msg], published: list[str]) -> None:
    """The control: B received every one of its events, the seeded and the live, the check
    recognises each as B's, and none was taken by anyone else (nothing pending or redelivered)."""
    assert got, "B received nothing of its own"
    assert all(carries_theirs(m) for m in got), "the check does not recognise B's events"
    subjects = [m.subject for m in got]
    assert subjects[: len(feed_of(OTHER))] == feed_of(OTHER)
    secrets = {(m.headers or {}).get(SECRET_HEADER) for m in got}
    assert set(published) <= secrets, "B's own consumer lacks some of B's live events"
    info = await js.consumer_info(DEPT_STREAM, THEIR_CONSUMER)
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0), info
    assert len(got) == len(set(subjects)) == len(feed_of(OTHER)) + len(published)


async def test_department_a_finds_nothing_of_department_b_on_any_guessed_subject(
    secured: Secured,
) -> None:
    """A's sweep while B's events flow and B reads them; then B's reading is the control."""
    before = await guarded(secured.admin)
    password = secured.credentials.departments[OWN]
    async with (  # left in reverse: A leaves, B's events stop, then B reads the rest
        reading_theirs(secured) as theirs,
        publishing_theirs(secured.admin) as published,
        probe(secured.url, department_user(OWN), password, OWN_INBOX) as dept,
    ):
        attempts = await attack(dept)
        await eventually(  # B's events keep coming, and B reads them, while A listens
            lambda: len(published) >= 10 and len(theirs) >= len(feed_of(OTHER)) + 5,
            "B's live events read by B",
            WAIT,
        )
        await asyncio.sleep(GRACE)
        own = await own_feed(dept)
    after = await guarded(secured.admin)

    problems = [problem for heard in attempts if (problem := heard.problem())]
    problems += [f"A's own consumer gave B's event {m.subject}" for m in own if carries_theirs(m)]
    if after != before:
        problems.append(f"the server's state moved: {before} → {after}")
    counted = (
        f"{len(attempts)} attempts: {len(subscribe_guesses())} subjects subscribed, "
        f"{len(their_subjects())} of them in a queue group too, {len(request_guesses())} requests"
    )
    assert not problems, counted + "\n" + "\n".join(problems)
    undenied = [f"{heard.what} {heard.subject}" for heard in attempts if not heard.denied]
    assert not undenied, f"{counted}; not reported as permissions violations: {undenied}"
    assert [m.subject for m in own] == feed_of(OWN), "A's own consumer is the baseline"
    await check_their_reading(secured.admin, theirs, published)
