"""`dept_feeds`: every event of every case a department is or was on, re-published to that department.

A department is on a case once an event names it: `Whistled` (lead or assisting), `HandedOff` (the
receiver) or `ResponsibilityDetermined` (the department held responsible). From then on each event of
the case goes to `wl.dept.<dept>.<case>.<Event>` in WL_DEPT, and when it joins, the case's earlier
events (read back from WL_EVENTS) go first, so its feed holds the whole case in order. Involvement rows
(`dept_case`) commit with the tracking row; publications are acked before that commit and carry
`Nats-Msg-Id: dept:<dept>:<notification id>`, so a batch re-run after a crash adds nothing to WL_DEPT
(within the stream's duplicate window).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import BigInteger, Column, Connection, String, Table, insert, select

from infra.event_codec import (
    HEADER_CASE,
    HEADER_DEPT,
    HEADER_MSG_ID,
    HEADER_NOTIFICATION,
    HEADER_TOPIC,
    BadMessage,
    EventEnvelope,
)
from infra.nats.streams import DEPT_STREAM, EVENTS_STREAM
from projections.base import ApplyContext
from projections.views_db import metadata

log = logging.getLogger(__name__)

NAME = "dept_feeds"

#: Which departments each case has involved, and since when.
dept_case = Table(
    "dept_case",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("dept", String(64), primary_key=True),
    Column("role", String(16), nullable=False),  # lead | assisting | handed_to | determined
    Column("since_notification_id", BigInteger, nullable=False),
    Column("since_stream_seq", BigInteger, nullable=False),
)

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def involved_by(envelope: EventEnvelope) -> list[tuple[str, str]]:
    """The departments an event puts on its case, with the reason, in payload order."""
    payload = envelope.payload
    match envelope.event_type:
        case "Whistled":
            lead = [(str(payload["lead_department"]), "lead")]
            return lead + [(str(d), "assisting") for d in payload["assisting_departments"]]
        case "HandedOff":
            return [(str(payload["to_department"]), "handed_to")]
        case "ResponsibilityDetermined":
            return [(str(payload["department"]), "determined")]
    return []


def dept_subject(dept: str, envelope: EventEnvelope) -> str:
    return f"wl.dept.{dept}.{envelope.aggregate_id}.{envelope.event_type}"


def dept_msg_id(dept: str, notification_id: int) -> str:
    return f"dept:{dept}:{notification_id}"


def check_department(code: str) -> str:
    """A department code becomes a subject token: anything else would publish to the wrong place."""
    if not _TOKEN.fullmatch(code):
        raise ValueError(f"department code {code!r} is not a valid subject token")
    return code


class DeptFeeds:
    """The re-publisher; its only table is the involvement list."""

    name = NAME
    tables = (dept_case,)
    subjects = ("wl.ev.>",)

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool:
        if envelope.aggregate != "case":
            return False  # duty-list revisions belong to no department's feed
        case_id = envelope.aggregate_id
        known = set(
            conn.execute(select(dept_case.c.dept).where(dept_case.c.case_id == case_id)).scalars()
        )
        joining: dict[str, str] = {}
        for dept, role in involved_by(envelope):
            if dept not in known and dept not in joining:
                joining[check_department(dept)] = role
        if joining:
            earlier = self._earlier_events(envelope, context)
            for dept, role in joining.items():
                conn.execute(
                    insert(dept_case).values(
                        case_id=case_id,
                        dept=dept,
                        role=role,
                        since_notification_id=envelope.notification_id,
                        since_stream_seq=context.stream_seq,
                    )
                )
                for old in earlier:
                    _publish(context, dept, old)
                log.info(
                    "department joined a case",
                    extra={
                        "dept": dept,
                        "case_id": case_id,
                        "role": role,
                        "notification_id": envelope.notification_id,
                        "backfilled": len(earlier),
                    },
                )
        for dept in sorted(known) + list(joining):
            _publish(context, dept, envelope)
        return True

    def _earlier_events(
        self, envelope: EventEnvelope, context: ApplyContext
    ) -> list[EventEnvelope]:
        """The case's events before this one, from WL_EVENTS, each once, in stream order."""
        subject = f"wl.ev.*.{envelope.aggregate_id}.>"
        seen: set[int] = set()
        earlier: list[EventEnvelope] = []
        for message in context.stream_messages(EVENTS_STREAM, subject, context.stream_seq):
            try:
                old = EventEnvelope.from_message(message.subject, message.headers, message.data)
            except BadMessage:  # garbage an operator already skipped: not an event of the case
                log.warning(
                    "not back-filling an undecodable message",
                    extra={"stream_seq": message.seq, "subject": message.subject},
                )
                continue
            if old.notification_id not in seen and old.notification_id < envelope.notification_id:
                seen.add(old.notification_id)
                earlier.append(old)
        return earlier


def _publish(context: ApplyContext, dept: str, envelope: EventEnvelope) -> None:
    context.publish(
        dept_subject(dept, envelope),
        envelope.body(),
        {
            HEADER_MSG_ID: dept_msg_id(dept, envelope.notification_id),
            HEADER_NOTIFICATION: str(envelope.notification_id),
            HEADER_TOPIC: envelope.topic,
            HEADER_CASE: envelope.aggregate_id,
            HEADER_DEPT: dept,
        },
    )


def department_consumer(code: str) -> str:
    return f"dept_{code}"


async def ensure_department_consumers(
    js: JetStreamContext, department_codes: Iterable[str]
) -> None:
    """One durable pull consumer per department on WL_DEPT (`dept_<code>`, filter `wl.dept.<code>.>`).

    Department users bind to these across accounts; they can neither create nor inspect them.
    """
    for code in department_codes:
        durable = department_consumer(check_department(code))
        try:
            await js.consumer_info(DEPT_STREAM, durable)
        except NotFoundError:
            await js.add_consumer(
                DEPT_STREAM,
                ConsumerConfig(
                    name=durable,
                    durable_name=durable,
                    filter_subject=f"wl.dept.{code}.>",
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.EXPLICIT,
                    max_ack_pending=1000,
                    ack_wait=30,
                ),
            )
