"""The live feeds over real WebSockets: a real uvicorn, relay, projectors and nats-server.

Events are made the way clients make them, by REST commands; frames are read with the `websockets`
client, as a dashboard or `whistleloop feed` reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from nats.js.errors import NotFoundError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from domain.actors import Actor
from domain.clock import ManualClock
from gateway import create_app
from infra.feed_client import FeedRefused, tail_department
from infra.nats.server import NatsServer
from infra.nats.streams import DEPT_STREAM, EVENTS_STREAM
from tests.integration.builders import report_case
from tests.integration.gateway.conftest import Gateway, Served, gateway_settings, pipeline
from tests.integration.projections.support import eventually

pytestmark = pytest.mark.asyncio

Frame = dict[str, Any]
#: Generous: frames arrive in milliseconds; this only bounds a failing test.
WAIT = 20.0


async def streams_ready(gw: Gateway) -> None:
    """The relay and projectors create the streams; a feed opened before that is refused (1013)."""
    for stream in (EVENTS_STREAM, DEPT_STREAM):
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            try:
                await gw.resources.js.stream_info(stream)
                break
            except NotFoundError:
                assert asyncio.get_running_loop().time() < deadline, f"no stream {stream}"
                await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def served(served: Served) -> Served:
    """The conftest's `served`, once its streams exist."""
    await streams_ready(served.gateway)
    return served


# --- REST: events made as clients make them --------------------------------------------------


async def command(served: Served, path: str, headers: dict[str, str], body: Frame) -> Frame:
    response = await served.gateway.client.post(f"/api/v1/cases{path}", headers=headers, json=body)
    assert response.status_code in (200, 201), response.text
    result: Frame = response.json()
    return result


async def whistled_case(served: Served) -> str:
    """Reported, accepted and whistled by 建外街道: lead cgzf, assisting ghzr (three events)."""
    street = served.gateway.auth("street", street="jianwai")
    report = {
        "source": "street_patrol",
        "street": "jianwai",
        "community": "jianwai_c01",
        "title": "楼顶违建",
        "description": "3 号楼楼顶正在搭建彩钢房",
    }
    case_id = str((await command(served, "", street, report))["case_id"])
    await command(served, f"/{case_id}/accept", street, {"note": "属实"})
    whistle = {"lead": "cgzf", "assisting": ["ghzr"], "duty_item": "CG-001"}
    await command(served, f"/{case_id}/whistle", street, whistle)
    return case_id


async def report_in(served: Served, case_id: str, dept: str) -> None:
    await command(
        served,
        f"/{case_id}/report-in",
        served.gateway.auth("department", dept=dept),
        {"mode": "on_site"},
    )


# --- WebSocket helpers -----------------------------------------------------------------------


def feed_url(served: Served, path: str, **params: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{served.ws_url}{path}" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def feed(
    served: Served, path: str, token: str | None, **params: object
) -> AsyncIterator[ClientConnection]:
    """A feed client, the token sent as the browser sends it: subprotocols `bearer, <token>`."""
    subprotocols = [Subprotocol("bearer"), Subprotocol(token)] if token else None
    async with connect(feed_url(served, path, **params), subprotocols=subprotocols) as websocket:
        yield websocket


async def next_frame(websocket: ClientConnection) -> Frame:
    frame: Frame = json.loads(await asyncio.wait_for(websocket.recv(), WAIT))
    return frame


async def events_until(websocket: ClientConnection, last_type: str, case_id: str) -> list[Frame]:
    """Event frames up to and including the case's first `last_type` event."""
    events: list[Frame] = []
    while True:
        frame = await next_frame(websocket)
        if frame["type"] == "event":
            events.append(frame)
            if frame["event"]["aggregate_id"] == case_id and frame["subject"].endswith(last_type):
                return events


async def events_until_quiet(websocket: ClientConnection) -> tuple[list[Frame], Frame]:
    """Event frames up to the first heartbeat: the gateway sends one only when nothing is queued."""
    events: list[Frame] = []
    while (frame := await next_frame(websocket))["type"] == "event":
        events.append(frame)
    return events, frame


async def close_code(served: Served, path: str, token: str | None, **params: object) -> int:
    async with feed(served, path, token, **params) as websocket:
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(websocket)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def types(frames: list[Frame], case_id: str) -> list[str]:
    return [f["subject"].rsplit(".", 1)[1] for f in frames if f["event"]["aggregate_id"] == case_id]


# --- who gets what ---------------------------------------------------------------------------


async def test_a_command_reaches_the_command_centre_and_only_the_involved_departments(
    served: Served,
) -> None:
    gw = served.gateway
    async with (
        feed(served, "/ws/command-centre", gw.token("command_centre"), since=0) as centre,
        feed(served, "/ws/departments/cgzf", gw.token("department", dept="cgzf"), since=0) as cgzf,
        feed(served, "/ws/departments/ghzr", gw.token("department", dept="ghzr"), since=0) as ghzr,
        feed(served, "/ws/departments/zj", gw.token("department", dept="zj"), since=0) as zj,
    ):
        assert centre.subprotocol == "bearer"
        case_id = await whistled_case(served)
        await report_in(served, case_id, "cgzf")  # the marker every involved feed must show

        expected = ["CaseReported", "CaseAccepted", "Whistled", "ReportedIn"]
        centre_events = await events_until(centre, "ReportedIn", case_id)
        assert types(centre_events, case_id) == expected
        for dept, websocket in (("cgzf", cgzf), ("ghzr", ghzr)):
            frames = await events_until(websocket, "ReportedIn", case_id)
            assert types(frames, case_id) == expected, dept  # joined with the case's history
            assert all(f["subject"].startswith(f"wl.dept.{dept}.{case_id}.") for f in frames)
            seqs = [f["seq"] for f in frames]
            assert seqs == sorted(set(seqs))
            assert all(f["notification_id"] == f["event"]["notification_id"] for f in frames)

        # zj was never whistled: from its first frame until three heartbeats after the marker
        # reached the others, it has seen heartbeats only.
        zj_frames = [await next_frame(zj) for _ in range(3)]
        assert zj_frames == [{"type": "heartbeat", "seq": 0}] * 3


async def test_reconnecting_with_since_gives_exactly_the_missed_frames(served: Served) -> None:
    gw = served.gateway
    token = gw.token("department", dept="cgzf")
    case_id = await whistled_case(served)
    async with feed(served, "/ws/departments/cgzf", token, since=0) as first:
        before = await events_until(first, "Whistled", case_id)
    last = before[-1]["seq"]

    await report_in(served, case_id, "ghzr")
    await report_in(served, case_id, "cgzf")
    street = gw.auth("street", street="jianwai")
    await command(
        served, f"/{case_id}/consult", street, {"departments": ["cgzf", "ghzr"], "plan": "联合拆除"}
    )
    await gw.settle()

    async with feed(served, "/ws/departments/cgzf", token, since=last) as resumed:
        missed, heartbeat = await events_until_quiet(resumed)
    assert types(missed, case_id) == ["ReportedIn", "ReportedIn", "ConsultationHeld"]
    assert heartbeat == {"type": "heartbeat", "seq": missed[-1]["seq"]}

    async with feed(served, "/ws/departments/cgzf", token, since=0) as whole:
        everything, _ = await events_until_quiet(whole)
    assert before + missed == everything


# --- refusals ------------------------------------------------------------------------------


async def test_feeds_refuse_with_a_close_code_that_says_why(served: Served) -> None:
    gw = served.gateway
    case_id = await whistled_case(served)
    cgzf = gw.token("department", dept="cgzf")
    assert await close_code(served, "/ws/command-centre", None) == 4001
    assert await close_code(served, "/ws/command-centre", "not-a-jwt") == 4001
    assert await close_code(served, "/ws/command-centre", cgzf) == 4003  # role
    assert await close_code(served, "/ws/departments/zj", cgzf) == 4003  # scope
    assert await close_code(served, "/ws/departments/nope", cgzf) == 4004
    assert await close_code(served, f"/ws/cases/{uuid.uuid4()}", cgzf) == 4004
    assert await close_code(served, "/ws/cases/not-a-uuid", cgzf) == 4004
    zj = gw.token("department", dept="zj")
    assert await close_code(served, f"/ws/cases/{case_id}", zj) == 4003
    assert await close_code(served, "/ws/command-centre", gw.token("viewer"), since="-1") == 4400

    # the query-parameter form of the token, for the department on the case
    url = feed_url(served, f"/ws/cases/{case_id}", token=cgzf, since=0)
    async with connect(url) as websocket:
        frames = [await next_frame(websocket) for _ in range(3)]
    assert [f["subject"].rsplit(".", 1)[1] for f in frames] == [
        "CaseReported",
        "CaseAccepted",
        "Whistled",
    ]


# --- back-pressure ---------------------------------------------------------------------------

#: A client may fall this many frames behind before it is dropped.
TIGHT_QUEUE = 4
SMALL_BUFFER = 4096


@pytest_asyncio.fixture
async def tight_served(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock
) -> AsyncIterator[Served]:
    """`served` with a tiny per-client queue and small socket buffers, so that a client that stops
    reading fills the gateway's queue after a few hundred frames instead of megabytes of them."""
    settings = gateway_settings(tmp_path, nats_server, ws_heartbeat=1.0, ws_queue=TIGHT_QUEUE)
    app = create_app(settings, clock=clock)
    listener = socket.socket()
    listener.setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER
    )  # accepted sockets inherit it
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await eventually(lambda: server.started, "uvicorn started", 30)
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=base) as client, pipeline(settings):
            gateway = Gateway(app, client, settings, clock)
            await streams_ready(gateway)
            yield Served(gateway, base)
    finally:
        server.should_exit = True
        await asyncio.wait([task], timeout=15)
        listener.close()


async def stalled_client(served: Served, token: str) -> ClientConnection:
    """A client that reads nothing: a tiny receive buffer, and the library stops reading at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)  # before the handshake
    sock.connect(("127.0.0.1", int(served.base_url.rsplit(":", 1)[1])))
    sock.setblocking(False)
    url = feed_url(served, "/ws/command-centre", since=0, token=token)
    # Uncompressed: deflate shrinks these look-alike frames to a few bytes each.
    return await connect(url, sock=sock, max_queue=1, compression=None)


async def drain(websocket: ClientConnection) -> None:
    while True:
        await asyncio.wait_for(websocket.recv(), WAIT)


def dropped(served: Served) -> float:
    value = served.gateway.resources.metrics.registry.get_sample_value(
        "whistleloop_ws_dropped_total", {"feed": "command-centre"}
    )
    return value or 0.0


async def test_a_client_that_stops_reading_is_dropped_and_the_others_get_everything(
    tight_served: Served, actors: dict[str, Actor]
) -> None:
    served, gw = tight_served, tight_served.gateway
    token = gw.token("viewer")
    stalled = await stalled_client(served, token)
    async with feed(served, "/ws/command-centre", token, since=0) as reader:
        seen: list[int] = []

        async def read_everything() -> None:
            while True:
                frame = await next_frame(reader)
                if frame["type"] == "event":
                    seen.append(frame["seq"])

        reading = asyncio.create_task(read_everything())
        for _ in range(40):  # at most 4,000 events; a few hundred fill the small buffers
            await asyncio.to_thread(lambda: [report_case(gw.service, actors) for _ in range(100)])
            await gw.settle()
            if dropped(served):
                break
        assert dropped(served) == 1

        info = await gw.resources.js.stream_info(EVENTS_STREAM)
        await eventually(lambda: len(seen) >= info.state.last_seq, "the reader caught up", WAIT)
        reading.cancel()
        assert seen == list(range(1, info.state.last_seq + 1))

    with pytest.raises(ConnectionClosed) as closed:
        await drain(stalled)  # what was buffered before the drop, then the close
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4008, "too slow")
    clients = gw.resources.metrics.registry.get_sample_value(
        "whistleloop_ws_clients", {"feed": "command-centre"}
    )
    assert clients == 0


# --- `whistleloop feed`'s client -------------------------------------------------------------


class Proxy:
    """A TCP relay in front of the gateway that can cut every connection and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepting = True
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


async def test_the_feed_client_resumes_after_a_dropped_connection(served: Served) -> None:
    gw = served.gateway
    token = gw.token("department", dept="cgzf")
    proxy = Proxy(int(served.base_url.rsplit(":", 1)[1]))
    url = await proxy.start()
    frames: list[Frame] = []
    stop = asyncio.Event()

    def events() -> list[Frame]:
        return [f for f in frames if f["type"] == "event"]

    tail = asyncio.create_task(tail_department(url, token, "cgzf", 0, frames.append, stop))
    try:
        case_id = await whistled_case(served)
        await eventually(lambda: len(events()) == 3, "the whistled case on the feed", WAIT)

        proxy.accepting = False
        proxy.cut()  # the feed is down while the case moves on
        await report_in(served, case_id, "cgzf")
        await report_in(served, case_id, "ghzr")
        await gw.settle()
        proxy.accepting = True

        await eventually(lambda: len(events()) == 5, "the missed events after reconnecting", WAIT)
        stop.set()
        last = await asyncio.wait_for(tail, WAIT)
    finally:
        stop.set()
        await proxy.stop()
    assert proxy.connections >= 2
    assert types(events(), case_id) == [
        "CaseReported",
        "CaseAccepted",
        "Whistled",
        "ReportedIn",
        "ReportedIn",
    ]
    seqs = [f["seq"] for f in events()]
    assert seqs == sorted(set(seqs))
    assert last == seqs[-1]


async def test_the_feed_client_gives_up_on_a_refusal(served: Served) -> None:
    token = served.gateway.token("department", dept="zj")
    with pytest.raises(FeedRefused) as refused:
        await asyncio.wait_for(
            tail_department(served.base_url, token, "cgzf", None, print, asyncio.Event()), WAIT
        )
    assert refused.value.code == 4003
