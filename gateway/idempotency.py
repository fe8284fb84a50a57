"""`Idempotency-Key` on every POST: a retried request gets the first one's response, once recorded.

Keys are kept in the event store's database (`whistleloop_idempotency`), which every gateway shares, so
a retry that lands on another gateway behind the load balancer is answered the same. A key belongs to
the caller (the principal its token names): two callers never share one. The protocol follows the IETF
draft "The Idempotency-Key HTTP Header Field":

- first use: the key is claimed (`pending`), the request runs, and a response below 500 is recorded;
  a 5xx releases the claim so the retry runs again;
- same key, same request, recorded: the recorded response, with `Idempotent-Replayed: true`;
- same key, same request, still running: 409 `idempotency_key_in_flight`;
- same key, another request: 422 `idempotency_key_reused`.

A claim whose request died with its process is taken over after `STALE_AFTER` seconds. Reports are
idempotent in the domain as well (the key derives the case id), so even that window cannot make two
cases of one report.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import anyio
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import AuthError, Principal, decode_token
from gateway.body_limit import json_document, read_body, replay
from gateway.problems import problem_response

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
STALE_AFTER = 120.0


def idempotency_table(schema: str | None) -> Table:
    return Table(
        "whistleloop_idempotency",
        MetaData(schema=schema or None),
        Column("scope", String(64), primary_key=True),
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("state", String(8), nullable=False),  # pending | done
        Column("status", Integer),
        Column("content_type", String(128)),
        Column("location", String(1024)),  # a created resource's Location, replayed with the body
        Column("body", LargeBinary),
        Column("created_at", Float, nullable=False),
    )


@dataclass(frozen=True)
class Recorded:
    fingerprint: str
    state: str
    status: int | None
    content_type: str | None
    location: str | None
    body: bytes | None
    created_at: float


class IdempotencyStore:
    """The claims and recorded responses; blocking calls (the middleware runs them in a thread)."""

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        self.engine = engine
        self.table = idempotency_table(schema)
        self.table.metadata.create_all(engine)

    def claim(self, scope: str, key: str, fingerprint: str) -> Recorded | None:
        """Claims the key; returns None when claimed, else what is recorded under it."""
        t = self.table
        for _attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(t).values(
                            scope=scope,
                            key=key,
                            fingerprint=fingerprint,
                            state="pending",
                            created_at=time.time(),
                        )
                    )
                return None
            except IntegrityError:
                pass
            found = self._get(scope, key)
            if found is None:
                continue  # released between the two statements: claim again
            if found.state == "pending" and time.time() - found.created_at > STALE_AFTER:
                self.release(scope, key)
                continue
            return found
        raise RuntimeError("idempotency key could not be claimed")  # pragma: no cover

    def record(self, scope: str, key: str, response: Captured) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(and_(t.c.scope == scope, t.c.key == key))
                .values(
                    state="done",
                    status=response.status,
                    content_type=response.content_type,
                    location=response.location,
                    body=b"".join(response.chunks),
                )
            )

    def release(self, scope: str, key: str) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(and_(t.c.scope == scope, t.c.key == key)))

    def _get(self, scope: str, key: str) -> Recorded | None:
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    t.c.fingerprint,
                    t.c.state,
                    t.c.status,
                    t.c.content_type,
                    t.c.location,
                    t.c.body,
                    t.c.created_at,
                ).where(and_(t.c.scope == scope, t.c.key == key))
            ).first()
        return Recorded(*row) if row else None


@dataclass
class Captured:
    """What the app sent: enough to send it again."""

    status: int = 500  # until the app starts a response; an exception leaves it a 5xx
    content_type: str = "application/json"
    location: str | None = None
    chunks: list[bytes] = field(default_factory=list)

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", []):
                if name.lower() == b"content-type":
                    self.content_type = value.decode("latin-1")
                elif name.lower() == b"location":
                    self.location = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))


def caller_scope(scope: Scope, body: bytes) -> str:
    """Whose key it is: the principal a valid token names (so a refreshed token keeps its keys),
    else a hash of whatever credentials the request carries. The token is the bearer header, or
    for Open311 the `api_key` field of the body."""
    headers = dict(scope["headers"])
    credentials = headers.get(b"authorization", b"")
    token = (
        credentials[7:].decode("latin-1").strip() if credentials[:7].lower() == b"bearer " else ""
    )
    token = token or _api_key(body)
    if token:
        try:
            principal = decode_token(scope["app"].state.resources.settings, token)
        except AuthError:
            pass
        else:
            return f"{principal.role}:{principal.scope or principal.subject}"[:64]
    return hashlib.sha256(credentials or token.encode()).hexdigest()


def _api_key(body: bytes) -> str:
    """An Open311 `api_key`, from a JSON or form-encoded body; empty when there is none."""
    try:
        fields = json_document(body)
    except ValueError:
        fields = dict(parse_qsl(body.decode("latin-1")))
    value = fields.get("api_key", "") if isinstance(fields, dict) else ""
    return value if isinstance(value, str) else ""


def request_key(scope: Scope) -> str | None:
    """The request's Idempotency-Key, if it sent one (used by handlers that pass it to the domain)."""
    raw = dict(scope["headers"]).get(HEADER)
    return raw.decode("latin-1").strip() if raw is not None else None


def domain_key(scope: Scope, principal: Principal, api: str = "") -> str | None:
    """The key a report hands the domain (which derives the case id from it), made the caller's own
    so two callers who pick the same key never land on one case; `api` keeps REST and Open311 apart."""
    key = request_key(scope)
    if key is None:
        return None
    return ":".join(part for part in (api, principal.role.value, principal.subject, key) if part)


class Idempotency:
    """ASGI middleware; `store` is looked up per request (it is opened by the app's lifespan)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = request_key(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        if key is None:
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            await problem_response(
                422,
                "invalid_idempotency_key",
                f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} characters",
                instance=scope.get("path"),
            )(scope, receive, send)
            return
        body = await read_body(receive, self.max_body + 1)
        if body is None:
            return
        store: IdempotencyStore = scope["app"].state.resources.idempotency
        who = caller_scope(scope, body)
        print_ = hashlib.sha256(
            b"\0".join([scope["path"].encode(), scope.get("query_string", b""), body])
        ).hexdigest()
        found = await anyio.to_thread.run_sync(store.claim, who, key, print_)
        if found is not None:
            await self._answer_recorded(found, print_, scope, receive, send)
            return
        await self._run_and_record(store, who, key, scope, replay(body), send)

    async def _answer_recorded(
        self, found: Recorded, fingerprint: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        path = scope.get("path")
        if found.fingerprint != fingerprint:
            response = problem_response(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request",
                instance=path,
            )
        elif found.state != "done":
            response = problem_response(
                409,
                "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still running; retry later",
                instance=path,
                headers={"Retry-After": "1"},
            )
        else:
            headers = [
                (b"content-type", (found.content_type or "application/json").encode()),
                (b"idempotent-replayed", b"true"),
            ]
            if found.location:
                headers.append((b"location", found.location.encode("latin-1")))
            await send(
                {"type": "http.response.start", "status": found.status or 200, "headers": headers}
            )
            await send({"type": "http.response.body", "body": found.body or b""})
            return
        await response(scope, receive, send)

    async def _run_and_record(
        self,
        store: IdempotencyStore,
        who: str,
        key: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        response = Captured()

        async def capture(message: Message) -> None:
            response.see(message)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if response.status < 500:
                await anyio.to_thread.run_sync(store.record, who, key, response)
            else:
                await anyio.to_thread.run_sync(store.release, who, key)
