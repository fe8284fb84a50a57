"""Building an audited history for the audit tests: cases in a store, relayed, folded by the runner.

`build` drives a few cases (two full loops, a hand-off, a closed case), publishes them as the relay
does and runs the `audit` projection through the real `ProjectorRunner` until it has caught up; it then
signs one more head on demand, so the WL_AUDIT stream and `audit_heads` hold several signed heads.
`check`, `found`, `pick` and `leaf_index` are what the tamper tests ask of such a history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import Engine, select

from domain.actors import Actor
from domain.clock import ManualClock
from domain.service import CaseService
from infra.event_codec import EventEnvelope
from infra.signing import TreeHeadSigner
from projections.audit import Audit, audit_heads, publish_tree_head, signed_head
from projections.audit_verify import VerifyReport, verify
from projections.runner import ProjectorRunner, RunnerOptions
from tests.integration.builders import drive, run_full_loop
from tests.integration.projections.support import RelayLike, eventually, reached, running

OPTIONS = RunnerOptions(batch=9, fetch_timeout=0.2)


@dataclass
class Audited:
    service: CaseService
    views: Engine
    nc: Client
    signer: TreeHeadSigner
    relay: RelayLike
    envelopes: list[EventEnvelope]

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    def heads(self) -> list[dict[str, Any]]:
        with self.views.connect() as conn:
            rows = conn.execute(select(audit_heads).order_by(audit_heads.c.tree_size)).all()
        return [signed_head(row._mapping) for row in rows]


def drive_cases(service: CaseService, actors: dict[str, Actor]) -> None:
    clock: ManualClock = service.clock  # type: ignore[assignment]
    run_full_loop(service, clock, actors)
    drive(service, clock, actors, "handed_off")
    run_full_loop(service, clock, actors)
    drive(service, clock, actors, "closed")


async def catch_up(audited: Audited, projection: Audit) -> None:
    """Relays what is new and runs the projection until it has applied the last event."""
    audited.envelopes += await audited.relay.publish_new(audited.js)
    runner = ProjectorRunner(audited.nc, audited.views, [projection], OPTIONS)
    async with running(runner):
        last = audited.envelopes[-1].notification_id
        await eventually(reached(audited.views, projection.name, last), "the audit to catch up")


async def build(
    service: CaseService,
    views: Engine,
    nc: Client,
    signer: TreeHeadSigner,
    actors: dict[str, Actor],
    head_every: int = 10,
) -> Audited:
    drive_cases(service, actors)
    audited = Audited(service, views, nc, signer, RelayLike(service), [])
    await catch_up(audited, Audit(signer, head_every=head_every))
    await publish_tree_head(views, signer, audited.js)
    return audited


async def check(a: Audited) -> VerifyReport:
    return await verify(a.service, a.views, a.js, a.signer.public_key_raw)


def found(report: VerifyReport) -> set[tuple[int, str]]:
    return {(issue.notification_id, issue.kind) for issue in report.events}


def pick(a: Audited, event_type: str, nth: int = 0) -> EventEnvelope:
    return [e for e in a.envelopes if e.event_type == event_type][nth]


def leaf_index(a: Audited, envelope: EventEnvelope) -> int:
    return a.envelopes.index(envelope)
