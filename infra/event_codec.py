"""One stored event as it travels on NATS: subject, headers and a canonical JSON body.

The body is canonical (sorted keys, no spaces, UTF-8, times as ISO-8601 UTC) so the same event always
has the same bytes: the audit hash chain and Merkle tree hash these bytes, and a re-sent message is
byte-identical to the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

APP_NAME = "whistleloop"

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
HEADER_NOTIFICATION = "Wl-Notification-Id"
HEADER_TOPIC = "Wl-Topic"
HEADER_CASE = "Wl-Case-Id"
HEADER_DEPT = "Wl-Dept"

#: Events of the district-wide duty list travel under this pseudo-street token.
DISTRICT_TOKEN = "district"

_ENVELOPE_KEYS = ("originator_id", "originator_version", "timestamp", "actor", "originator_topic")


class BadMessage(ValueError):
    """A message on an event subject that is not an event this system published."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode("utf-8")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _plain(value: Any) -> Any:
    """JSON values only: what the body will say, without a dumps/loads round trip."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return _json_default(value)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def msg_id(notification_id: int) -> str:
    return f"{APP_NAME}:{notification_id}"


@dataclass(frozen=True)
class EventEnvelope:
    """The wire form of one event; `body` is what gets hashed and published."""

    notification_id: int
    topic: str
    aggregate_id: str
    version: int
    timestamp: str
    actor: dict[str, str]
    payload: dict[str, Any]
    street: str

    @property
    def event_type(self) -> str:
        return self.topic.rsplit(".", 1)[-1]

    @property
    def aggregate(self) -> str:
        """`case` or `duty_list`: the middle part of the topic."""
        return self.topic.split(".")[1]

    @property
    def subject(self) -> str:
        return f"wl.ev.{self.street}.{self.aggregate_id}.{self.event_type}"

    @cached_property
    def body_bytes(self) -> bytes:
        return canonical_json(
            {
                "notification_id": self.notification_id,
                "topic": self.topic,
                "aggregate_id": self.aggregate_id,
                "version": self.version,
                "timestamp": self.timestamp,
                "actor": self.actor,
                "street": self.street,
                "payload": self.payload,
            }
        )

    def body(self) -> bytes:
        """The canonical JSON (computed once: the relay, hashing and checks all ask for it)."""
        return self.body_bytes

    def headers(self) -> dict[str, str]:
        return {
            HEADER_MSG_ID: msg_id(self.notification_id),
            HEADER_NOTIFICATION: str(self.notification_id),
            HEADER_TOPIC: self.topic,
            HEADER_CASE: self.aggregate_id,
        }

    @classmethod
    def from_notification(
        cls, notification: Notification, mapper: Mapper[UUID], street: str
    ) -> EventEnvelope:
        event: Any = mapper.to_domain_event(notification)
        payload = {k: v for k, v in event.__dict__.items() if k not in _ENVELOPE_KEYS}
        return cls(
            notification_id=notification.id,
            topic=notification.topic,
            aggregate_id=str(notification.originator_id),
            version=notification.originator_version,
            timestamp=iso_utc(event.timestamp),
            actor=dict(getattr(event, "actor", {})),
            payload=_plain(payload),
            street=street,
        )

    @classmethod
    def from_message(
        cls, subject: str, headers: dict[str, str] | None, data: bytes
    ) -> EventEnvelope:
        """Checks a consumed message is one of ours; raises BadMessage saying why not."""
        if not headers or HEADER_NOTIFICATION not in headers or HEADER_MSG_ID not in headers:
            raise BadMessage(f"{subject}: missing whistleloop headers")
        try:
            body = json.loads(data)
            envelope = cls(
                notification_id=int(body["notification_id"]),
                topic=str(body["topic"]),
                aggregate_id=str(body["aggregate_id"]),
                version=int(body["version"]),
                timestamp=str(body["timestamp"]),
                actor=dict(body["actor"]),
                payload=dict(body["payload"]),
                street=str(body["street"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise BadMessage(f"{subject}: undecodable body: {error}") from None
        if (
            str(envelope.notification_id) != headers[HEADER_NOTIFICATION]
            or envelope.subject != subject
        ):
            raise BadMessage(f"{subject}: headers and body disagree")
        if envelope.body() != data:
            raise BadMessage(f"{subject}: body is not in canonical form")
        return envelope
