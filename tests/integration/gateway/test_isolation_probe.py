"""Isolation probed from the attacker's side: a department token walks every route and feed.

The role matrix (test_role_matrix.py) asks each documented cell the question the document asks. This
file asks what an attacker would: with department A's token (cgzf), every route the app serves —
enumerated from the app itself, not from the document — is called with every method, each path
parameter filled with B's (zj's) real case ids and department code, with guesses (random and
sequential-looking ids, case changes, other spellings of B's ids, URL-encoded traversal, NUL,
NATS wildcards), and each filtering query parameter set to B's values; the feeds are opened with
`since=0` while B's events are being made. No answer may carry any of B's markers (case ids,
titles, descriptions, addresses, contact details, the notes only B's events hold), no answer may be
a 5xx, and nothing A sends may change the event store.

A marker only counts where it was not echoed: a refusal may name the id the request itself sent.
Open311's reads are public by design (docs/SECURITY.md, "Open311"): they show every case's id,
description and address to anyone, so there only the markers that are never public count (notes
and contact details). Each probe has a control: B's own token, walked the same way, finds B's data,
so a marker search that could not find anything would fail the test instead of passing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode
from uuid import UUID

import pytest
import pytest_asyncio
from fastapi import FastAPI
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from gateway import create_app
from gateway.auth import Role
from infra.nats.server import NatsServer
from infra.settings import Settings
from infra.signing import load_or_create_signer
from projections.audit import publish_tree_head
from tests.conftest import START
from tests.integration.gateway.conftest import (
    Gateway,
    Served,
    gateway_settings,
    running_gateway,
)
from tests.integration.gateway.matrix import AWAY, COMMANDS, HOME, ITEM, World, case_at, load_matrix
from tests.integration.gateway.rest import REPORT, command, report
from tests.integration.gateway.test_role_matrix import served_routes
from tests.integration.projections.support import eventually

Json = dict[str, Any]

#: The attacker and the victim: HOME's and AWAY's lead departments.
A, B = HOME.lead, AWAY.lead
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: How long each feed is listened to after B's live events have reached B's own feed.
HEAR = 1.0
#: Bounds a failing wait only: B's own feed shows its live events within milliseconds.
WAIT = 20.0
#: Close codes that mean the gateway failed, not that it refused.
FAILED_CLOSES = frozenset({1011})
PLACEHOLDER = re.compile(r"\{(\w+)(?::\w+)?\}")
#: Characters left as they are when a value goes into a path: escapes, and RFC 3986 sub-delims.
PATH_SAFE = "%*:@!$&'()+,;="
#: A moment after the world is built (the clock starts at tests.conftest.START), for `?as_of=`.
AS_OF = (START + timedelta(hours=1)).isoformat()
#: Leaks listed in a failure message (a broken check leaks on hundreds of calls alike).
SHOWN = 40


# --- B's world: cases whose every word is a marker ----------------------------------------------


#: A report's words that only those on the case read (Open311 never shows them).
CONTACT = ("name", "phone")


@dataclass(frozen=True)
class Marked(World):
    """A world whose reports say only marker words (unique ASCII, so no encoding can hide them)."""

    tag: str = ""

    def words(self) -> dict[str, str]:
        kinds = ("title", "description", "address", *CONTACT)
        return {kind: f"{self.tag}{kind}" for kind in kinds}

    def report_body(self) -> Json:
        words = self.words()
        return {
            **super().report_body(),
            "title": words["title"],
            "description": words["description"],
            "address": words["address"],
            "contact": {"name": words["name"], "phone": words["phone"]},
        }


def marked(number: int) -> Marked:
    return Marked(**asdict(AWAY), tag=f"zjsecret{number}x{secrets.token_hex(3)}")


@dataclass(frozen=True)
class Replay:
    """A POST someone on B's side made with an Idempotency-Key, for A to send again."""

    path: str
    body: Json
    key: str


@dataclass
class Secrets:
    """What of B's world A must never see, as markers (lower case, no dashes) → what each one is."""

    ids: dict[str, str] = field(default_factory=dict)  # case ids
    public: dict[str, str] = field(default_factory=dict)  # what Open311 shows anyone
    titles: list[str] = field(default_factory=list)
    private: dict[str, str] = field(default_factory=dict)  # notes, contact details
    case_ids: list[UUID] = field(default_factory=list)
    own_case_ids: list[UUID] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)
    live: UUID | None = None  # a whistled case of B's that a test moves on while feeds listen

    def add_case(self, case_id: UUID, world: Marked) -> None:
        self.case_ids.append(case_id)
        self.ids[canon(str(case_id))] = f"case id {case_id}"
        words = world.words()
        self.titles.append(words["title"])
        for kind, word in words.items():
            kept = self.private if kind in CONTACT else self.public
            kept[word] = f"{kind} of {case_id}"

    def note(self, label: str) -> str:
        word = f"zjsecretnote{len(self.private)}x{secrets.token_hex(3)}"
        self.private[word] = label
        return word

    def markers(self, open311: bool = False) -> dict[str, str]:
        return dict(self.private) if open311 else {**self.ids, **self.public, **self.private}

    def labels(self, markers: Iterable[str]) -> str:
        every = self.markers()
        return ", ".join(sorted(every[m] for m in markers))

    def found(self, text: str, open311: bool = False) -> set[str]:
        """The markers in `text` (compared as `canon` forms: upper case or dashes hide nothing)."""
        seen = canon(text)
        return {marker for marker in self.markers(open311) if marker in seen}


def canon(text: str) -> str:
    """Lower case without dashes: a UUID in any spelling (upper, dashed or not) reads the same."""
    return text.lower().replace("-", "")


def zj() -> Actor:
    return Actor.of("department", B)


async def build_world(gw: Gateway) -> Secrets:
    """A's cases (HOME, lead cgzf) and B's (AWAY, lead zj) at several stages, each B case with its
    own marker words; B's departments' notes are markers too. One of B's cases is made over REST
    with Idempotency-Keys, so A can replay them. Projected, with a signed tree head (for proofs)."""
    service, found = gw.service, Secrets()
    found.own_case_ids = [case_at(service, HOME, stage) for stage in ("whistled", "in_handling")]
    for number, stage in enumerate(("whistled", "in_handling", "closed", "handed_off")):
        world = marked(number)
        found.add_case(case_at(service, world, stage), world)
    reported_in, in_handling = found.case_ids[0], found.case_ids[1]
    service.report_in(reported_in, zj(), "on_site", note=found.note("zj's report-in note"))
    service.report_handling(in_handling, zj(), "resolved", note=found.note("zj's handling note"))
    await rest_case(gw, found)
    world = marked(9)
    found.live = case_at(service, world, "whistled")
    found.add_case(found.live, world)
    await gw.settle()
    signer = load_or_create_signer(gw.settings.audit_key_file())
    await publish_tree_head(gw.resources.views, signer, gw.resources.js)
    return found


async def rest_case(gw: Gateway, found: Secrets) -> None:
    """B's resident reports, B's street whistles zj, zj reports in: each POST keyed, kept to replay."""
    world, client = marked(8), gw.client
    resident = {**gw.auth("resident", subject=world.resident), "Idempotency-Key": "zj-report-1"}
    fields = {**world.report_body(), "grid": None}
    case_id = UUID(await report(client, resident, **fields))
    found.add_case(case_id, world)
    found.replays.append(Replay("/api/v1/cases", {**REPORT, **fields}, "zj-report-1"))
    street = gw.auth("street", street=world.street)
    await command(client, street, str(case_id), "accept", note="属实")
    await command(client, street, str(case_id), "whistle", lead=B, duty_item=ITEM)
    body = {"mode": "on_site", "note": found.note("zj's keyed report-in note")}
    key = {**gw.auth("department", dept=B), "Idempotency-Key": "zj-report-in-1"}
    await command(client, key, str(case_id), "report-in", **body)
    found.replays.append(Replay(f"/api/v1/cases/{case_id}/report-in", body, "zj-report-in-1"))


# --- what to call: every route, every method, every value ---------------------------------------


@dataclass(frozen=True)
class Target:
    """One path the app serves, the methods it declares there, and whether it is a WebSocket."""

    path: str
    methods: frozenset[str]
    websocket: bool

    @property
    def open311(self) -> bool:
        return self.path.startswith("/open311/")

    def fill(self, value: str) -> str:
        return PLACEHOLDER.sub(lambda _: quote(value, safe=PATH_SAFE), self.path)


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    """Routes in order, into included routers (FastAPI keeps those as one entry each)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _flat(inner.routes) if inner is not None else (route,)


def app_targets(app: FastAPI) -> list[Target]:
    """Every path of the app, with its methods merged (a path may be served by several routes)."""
    methods: dict[tuple[str, bool], set[str]] = {}
    for route in _flat(app.routes):
        if isinstance(route, WebSocketRoute):
            methods.setdefault((route.path, True), set())
        elif isinstance(route, Route):
            methods.setdefault((route.path, False), set()).update(route.methods or ())
    return [Target(path, frozenset(m - {"HEAD"}), ws) for (path, ws), m in methods.items()]


def test_the_probe_walks_every_route_the_app_serves() -> None:
    """The walk's list is complete: every operation of the OpenAPI document and every feed."""
    targets = app_targets(create_app(Settings(dev_mode=True)))
    walked = {("WS", t.path) for t in targets if t.websocket} | {
        (m, t.path) for t in targets for m in t.methods
    }
    assert set(served_routes()) <= walked
    assert any(not t.path.startswith(("/api/", "/ws/", "/open311/")) for t in targets)


def guesses(found: Secrets) -> list[str]:
    """Values an attacker tries without knowing them: other spellings of B's ids, made-up ids,
    traversal and NUL (already URL-encoded), NATS wildcards and B's code in other cases."""
    spellings = [
        spelling
        for case_id in found.case_ids[:2]
        for spelling in (
            str(case_id).upper(),
            case_id.hex,
            f"urn:uuid:{case_id}",
            f"%7B{case_id}%7D",
            str(UUID(int=(case_id.int + 1) % 2**128)),  # the next id, had they been sequential
        )
    ]
    made_up = [str(uuid.uuid4()), str(uuid.uuid4()), str(UUID(int=1)), str(UUID(int=0)), "1", "2"]
    tricks = ["ZJ", "Zj", "zJ", "%20zj", "zj%20", "%7A%6A", "zj%00", "%00", "null", "-1"]
    tricks += ["..%2Fzj", "..%2F..%2Fzj", "%2e%2e%2Fzj", "%252e%252e%252Fzj", "zj%2F.."]
    tricks += [f"{A}%2F..%2F{B}", f"{A}%00{B}", "*", ">", "%2A", "%3E", "zj.>", "zj.*"]
    return [*spellings, *made_up, *tricks, "wl.dept.zj.>", "wl.ev.>"]


def theirs(found: Secrets) -> list[str]:
    return [*map(str, found.case_ids), B]


def own(found: Secrets) -> list[str]:
    return [*map(str, found.own_case_ids), A]


def filters(found: Secrets) -> dict[str, str]:
    """A value of B's for each query parameter that picks whose data a route returns."""
    ids = ",".join(map(str, found.case_ids))
    return {
        "department": B,
        "involved": B,
        "dept": B,
        "street": AWAY.street,
        "community": AWAY.community,
        "text": found.titles[0],
        "service_request_id": ids,
        "case_id": str(found.case_ids[0]),
        "as_of": AS_OF,
        "since": "0",
    }


def query_variants(declared: Iterable[str], wanted: Mapping[str, str]) -> list[dict[str, str]]:
    """No query; each declared filter alone, set to B's value; every filter at once (declared or
    not: an undeclared one must be ignored or refused, never obeyed)."""
    alone = [{name: wanted[name]} for name in declared if name in wanted]
    return [{}, *alone, dict(wanted)]


def declared_queries(app: FastAPI) -> dict[tuple[str, str], list[str]]:
    """(METHOD, path) → the query parameters the OpenAPI document declares for it."""
    return {
        (method.upper(), path): [
            p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
        ]
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
    }


# --- REST ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request of a walk, as sent (the URL already encoded)."""

    method: str
    url: str
    body: Json | None = None
    key: str | None = None  # an Idempotency-Key

    @property
    def sent(self) -> str:
        """What the request said, decoded as the gateway reads it (to recognise an echo)."""
        return canon(unquote(unquote(f"{self.url} {self.body or ''}")))


def body_for(target: Target, method: str, token: str) -> Json | None:
    """A body that gets past validation where there is one to pass: a command's own body (as a
    department would send it on B's world), Open311's form fields with the caller's key."""
    if method in ("GET", "DELETE"):
        return None
    if target.open311:
        return {"api_key": token, "service_code": ITEM, "attribute[street]": AWAY.street}
    rows = [row for row in load_matrix().values() if row.matches(method, target.path)]
    if rows and rows[0].endpoint in COMMANDS:
        return COMMANDS[rows[0].endpoint].body(Role.DEPARTMENT, AWAY)
    return {"department": B, "case_id": str(UUID(int=7))}


def with_query(url: str, query: Mapping[str, str]) -> str:
    return f"{url}?{urlencode(query)}" if query else url


def attack_calls(app: FastAPI, targets: list[Target], found: Secrets, token: str) -> list[Call]:
    """Every route × every method × every value: B's and guessed values with each declared method
    (and B's with each query variant), A's own values with GET (its own reads must be clean too).
    A method the route does not declare is answered by the router before any handler, whatever
    the value, so it gets B's values and a few path tricks only. Then A replays B's keyed POSTs."""
    queries, wanted = declared_queries(app), filters(found)
    calls: list[Call] = []
    for target in targets:
        has_param = PLACEHOLDER.search(target.path) is not None
        for method in METHODS:
            body = body_for(target, method, token)
            if method not in target.methods:
                values = [*theirs(found), "..%2Fzj", "*", ">", "zj%00"] if has_param else [""]
                calls += [Call(method, target.fill(v), body) for v in values]
                continue
            variants = query_variants(queries.get((method, target.path), []), wanted)
            named = [*theirs(found), *(own(found) if method == "GET" else [])]
            for value in named if has_param else [""]:
                calls += [Call(method, with_query(target.fill(value), q), body) for q in variants]
            if has_param:
                calls += [Call(method, target.fill(v), body) for v in guesses(found)]
    calls += [Call("POST", r.path, r.body, r.key) for r in found.replays]
    return calls


def read_calls(app: FastAPI, targets: list[Target], found: Secrets) -> list[Call]:
    """The same walk's GETs on B's values: what B's own token is checked with."""
    queries, wanted = declared_queries(app), filters(found)
    calls = []
    for target in (t for t in targets if "GET" in t.methods):
        variants = query_variants(queries.get(("GET", target.path), []), wanted)
        values = theirs(found) if PLACEHOLDER.search(target.path) else [""]
        calls += [Call("GET", with_query(target.fill(v), q)) for v in values for q in variants]
    return calls


@dataclass
class Walk:
    """What a walk met: leaks (markers in answers), failures (5xx) and every marker it saw."""

    requests: int = 0
    leaks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        return [*self.failures, *self.leaks]


def leaked(call: Call, status: int, text: str, found: Secrets, open311: bool) -> set[str]:
    """B's markers in an answer; a refusal may name what the request itself sent."""
    markers = found.found(text, open311)
    if status >= 400:
        markers = {m for m in markers if m not in call.sent}
    return markers


async def walk_rest(
    gw: Gateway, calls: list[Call], headers: dict[str, str], found: Secrets
) -> Walk:
    """Sends each call with `headers`; an answer's headers are searched as well as its body."""
    walk = Walk()
    for call in calls:
        extra = {"Idempotency-Key": call.key} if call.key else {}
        response = await gw.client.request(
            call.method, call.url, json=call.body, headers={**headers, **extra}
        )
        walk.requests += 1
        walk.statuses[response.status_code] = walk.statuses.get(response.status_code, 0) + 1
        answer = f"{response.headers} {response.text}"
        public = call.url.startswith("/open311/")
        markers = leaked(call, response.status_code, answer, found, public)
        walk.seen |= found.found(answer)
        label = f"{call.method} {call.url} → {response.status_code}"
        if response.status_code >= 500:
            walk.failures.append(f"{label}: {response.text[:200]}")
        if markers:
            walk.leaks.append(f"{label} shows {found.labels(markers)}")
    return walk


def store_marks(service: CaseService, found: Secrets) -> dict[str, int]:
    """The store's newest notification and the version of each case of either side."""
    versions = {
        f"version of {case_id}": int(service.case(case_id)["version"])
        for case_id in (*found.case_ids, *found.own_case_ids)
    }
    return {"newest notification": service.recorder.max_notification_id() or 0, **versions}


def changes(before: Mapping[str, int], after: Mapping[str, int]) -> list[str]:
    return [
        f"{name} {before[name]} → {after[name]}" for name in before if before[name] != after[name]
    ]


def listing(problems: list[str]) -> str:
    more = f"\n… and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return "\n".join(problems[:SHOWN]) + more


@pytest_asyncio.fixture
async def unlimited(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock
) -> AsyncIterator[Gateway]:
    """The gateway without its write limit: each of A's hundreds of POSTs must reach the handler
    and be refused there, not be turned away as 429 before anything is checked."""
    settings = gateway_settings(tmp_path, nats_server, gateway_write_rate=0)
    async with running_gateway(settings, clock) as gw:
        yield gw


def summary(walk: Walk, what: str) -> str:
    return f"{what}: {walk.requests} requests, statuses {dict(sorted(walk.statuses.items()))}"


@pytest.mark.asyncio
async def test_a_department_token_gets_nothing_of_another_departments_cases_on_any_route(
    unlimited: Gateway,
) -> None:
    """A's walk: no marker of B's, no 5xx, no change to the store. B's walk: every marker."""
    gw = unlimited
    found = await build_world(gw)
    targets = [t for t in app_targets(gw.app) if not t.websocket]
    token = gw.token("department", dept=A)
    before = store_marks(gw.service, found)

    attack = await walk_rest(
        gw, attack_calls(gw.app, targets, found, token), gw.auth("department", dept=A), found
    )

    changed = [
        f"A's requests changed the store: {c}"
        for c in changes(before, store_marks(gw.service, found))
    ]
    problems = [*changed, *attack.problems()]
    assert not problems, summary(attack, "A's walk") + "\n" + listing(problems)
    assert attack.requests > 2000, summary(attack, "A's walk")

    control = await walk_rest(
        gw, read_calls(gw.app, targets, found), gw.auth("department", dept=B), found
    )
    missing = set(found.markers()) - control.seen
    assert not missing, summary(control, "B's walk") + f" did not find {found.labels(missing)}"


# --- WebSockets ---------------------------------------------------------------------------------


@dataclass
class Heard:
    """One feed as a client met it: its frames, how it closed, or the refused handshake's status."""

    path: str
    frames: list[str] = field(default_factory=list)
    close: int | None = None
    handshake: int | None = None
    ready: bool = False  # connected, or refused


async def listen(served: Served, heard: Heard, token: str, stop: asyncio.Event) -> None:
    """Reads the feed into `heard` until `stop` or until it is closed; the token as subprotocols,
    unless the path already carries it (`?token=`)."""
    protocols = None if "token=" in heard.path else [Subprotocol("bearer"), Subprotocol(token)]
    try:
        async with connect(f"{served.ws_url}{heard.path}", subprotocols=protocols) as ws:
            heard.ready = True
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    heard.frames.append(str(await asyncio.wait_for(ws.recv(), 0.1)))
    except ConnectionClosed as closed:
        heard.close = closed.rcvd.code if closed.rcvd is not None else -1
    except InvalidStatus as refused:
        heard.handshake = refused.response.status_code
    finally:
        heard.ready = True


def feed_paths(targets: list[Target], values: list[str], token: str) -> list[str]:
    """Each feed with each value, from the stream's start; the first value once more with the
    token in the query instead of the subprotocols."""
    paths: list[str] = []
    for target in (t for t in targets if t.websocket):
        has_param = PLACEHOLDER.search(target.path) is not None
        filled = [target.fill(v) for v in values] if has_param else [target.path]
        paths += [f"{path}?since=0" for path in filled]
        paths.append(f"{filled[0]}?{urlencode({'since': '0', 'token': token})}")
    return paths


def drive_live(service: CaseService, found: Secrets) -> str:
    """B reports in and reports handling on its live case while the feeds listen; the note."""
    assert found.live is not None
    note = found.note("zj's live note")
    service.report_in(found.live, zj(), "on_site")
    service.report_handling(found.live, zj(), "resolved", note=note)
    return note


def heard_problems(heard: Heard, found: Secrets) -> list[str]:
    """A 5xx handshake, a close that says the gateway failed, or any of B's markers in a frame."""
    problems = []
    if heard.handshake is not None and heard.handshake >= 500:
        problems.append(f"WS {heard.path}: handshake {heard.handshake}")
    if heard.close in FAILED_CLOSES:
        problems.append(f"WS {heard.path}: closed {heard.close}")
    markers = found.found(" ".join(heard.frames))
    if markers:
        problems.append(f"WS {heard.path}: {len(heard.frames)} frames show {found.labels(markers)}")
    return problems


@pytest.mark.asyncio
async def test_a_department_token_hears_nothing_of_another_departments_cases_on_any_feed(
    served: Served,
) -> None:
    """A's feeds (B's, guessed and its own, all from `since=0`) stay open while B's live events
    are made; B's own feeds, opened beside them, are the control."""
    gw = served.gateway
    found = await build_world(gw)
    targets = app_targets(gw.app)
    tokens = {code: gw.token("department", dept=code) for code in (A, B)}
    values = [*theirs(found), *guesses(found), *own(found)]
    heard = {
        A: [Heard(path) for path in feed_paths(targets, values, tokens[A])],
        B: [Heard(path) for path in feed_paths(targets, theirs(found), tokens[B])],
    }
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(listen(served, one, tokens[code], stop))
        for code, ones in heard.items()
        for one in ones
    ]
    everyone = [one for ones in heard.values() for one in ones]
    try:
        await eventually(lambda: all(one.ready for one in everyone), "every feed opened", WAIT)
        note = await asyncio.to_thread(drive_live, gw.service, found)
        canon_note = canon(note)
        await eventually(
            lambda: any(canon_note in canon(f) for one in heard[B] for f in one.frames),
            "B's live event on B's own feeds",
            WAIT,
        )
        await asyncio.sleep(HEAR)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    problems = [problem for one in heard[A] for problem in heard_problems(one, found)]
    assert not problems, f"{len(heard[A])} feeds of A's\n" + listing(problems)
    seen = found.found(" ".join(frame for one in heard[B] for frame in one.frames))
    missing = set(found.markers()) - seen
    assert not missing, f"B's own feeds did not show {found.labels(missing)}"
