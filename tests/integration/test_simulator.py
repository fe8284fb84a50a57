"""The seeded simulator: deterministic, legal for the domain, the same through both drivers; and a
small benchmark corpus builds (store + WL_EVENTS) and is then reused."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from pathlib import Path
from uuid import UUID

from domain.service import CaseService
from infra.benchmarks.corpus import MARKER, corpus
from infra.nats.connection import connect
from infra.nats.streams import EVENTS_STREAM
from infra.settings import Settings
from infra.simulator import bulk_traffic, command_traffic, simulation_clock
from infra.store import open_service
from tests.integration.builders import notifications

SEED = 42
Rows = dict[UUID, list[tuple[int, str, bytes]]]


def _simulate(var_dir: Path, events: int, bulk: bool) -> CaseService:
    service = open_service(Settings(var_dir=var_dir), simulation_clock())
    service.publish_duty_list()
    traffic = bulk_traffic if bulk else command_traffic
    simulation = traffic(service, SEED, expected_events=events)
    assert simulation.run(events) == events
    return service


def _by_case(service: CaseService) -> Rows:
    rows: Rows = defaultdict(list)
    for n in notifications(service):
        if n.topic.startswith("whistleloop.case."):
            rows[UUID(str(n.originator_id))].append((n.originator_version, n.topic, bytes(n.state)))
    return dict(rows)


def test_bulk_runs_are_deterministic_and_every_case_replays(tmp_path: Path) -> None:
    first = _simulate(tmp_path / "a", 1500, bulk=True)
    second = _simulate(tmp_path / "b", 1500, bulk=True)
    try:
        rows = [(n.originator_id, n.topic, bytes(n.state)) for n in notifications(first)]
        assert rows == [(n.originator_id, n.topic, bytes(n.state)) for n in notifications(second)]
        assert len(rows) == 1501  # the duty list, then 1500 case events
        topics = Counter(topic.rsplit(".", 1)[1] for _id, topic, _state in rows)
        for kind in ("Whistled", "ReportedIn", "Closed", "Rated", "DeadlineMissed"):
            assert topics[kind] > 10, (kind, topics)
        for kind in ("CaseRejected", "HandedOff", "SentBackForRework", "SupervisionIssued"):
            assert topics[kind] > 0, (kind, topics)
    finally:
        first.close()
        second.close()
    # A fresh service (empty aggregate cache) replays every case through the domain's apply().
    fresh = open_service(Settings(var_dir=tmp_path / "a"))
    try:
        for case_id, events in _by_case(fresh).items():
            assert fresh.case(case_id)["version"] == len(events)
    finally:
        fresh.close()


def test_bulk_and_command_drivers_store_the_same_cases(tmp_path: Path) -> None:
    bulk = _simulate(tmp_path / "bulk", 600, bulk=True)
    command = _simulate(tmp_path / "command", 600, bulk=False)
    try:
        assert _by_case(bulk) == _by_case(command)
    finally:
        bulk.close()
        command.close()


def test_a_small_corpus_builds_once_with_its_stream(tmp_path: Path) -> None:
    built = corpus(SEED, 3000, root=tmp_path)
    assert (Path(built.path) / MARKER).exists()
    assert built.events == built.stream_last_seq == 3000
    assert built.first_event_at < built.last_event_at
    server = built.nats_server().start()
    try:
        assert asyncio.run(_last_seq(server.url)) == 3000
    finally:
        server.stop()
    service = open_service(built.store_settings)
    try:
        assert service.recorder.max_notification_id() == 3000
    finally:
        service.close()
    assert corpus(SEED, 3000, root=tmp_path) == built  # reused, not built again


async def _last_seq(url: str) -> int:
    nc = await connect(url, name="test-corpus")
    try:
        return int((await nc.jetstream().stream_info(EVENTS_STREAM)).state.last_seq)
    finally:
        await nc.close()
