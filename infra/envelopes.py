"""The event store's notifications as `EventEnvelope`s, exactly as the relay publishes them.

The relay, `projections rebuild --from-store` and `audit verify` all need the same envelopes (the
audit hashes their canonical bodies), so the one place that decides an event's street lives here. A
case event's street is in its first event (CaseReported); the district duty list travels under
`DISTRICT_TOKEN`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from uuid import UUID

from domain.service import CaseService
from infra.event_codec import DISTRICT_TOKEN, EventEnvelope
from infra.store import notifications_after

CASE_TOPIC_PREFIX = "whistleloop.case."
#: Cases whose street is remembered; older ones are read back from the store when needed.
STREET_CACHE_SIZE = 100_000


class CaseStreets:
    """Case id → street (subject token), LRU; a miss reads the case's first event from the store."""

    def __init__(self, service: CaseService, size: int = STREET_CACHE_SIZE) -> None:
        self.service = service
        self.size = size
        self._streets: OrderedDict[UUID | str, str] = OrderedDict()
        self.misses = 0

    def remember(self, case_id: UUID | str, street: str) -> None:
        self._streets[case_id] = street
        self._streets.move_to_end(case_id)
        while len(self._streets) > self.size:
            self._streets.popitem(last=False)

    def street_of(self, case_id: UUID | str) -> str:
        street = self._streets.get(case_id)
        if street is None:
            self.misses += 1
            first = next(iter(self.service.repository.event_store.get(UUID(str(case_id)), lte=1)))
            street = str(first.street)  # type: ignore[attr-defined]
        self.remember(case_id, street)
        return street


class StoreEnvelopes:
    """Reads the store in notification order and encodes each notification as its envelope."""

    def __init__(self, service: CaseService, street_cache_size: int = STREET_CACHE_SIZE) -> None:
        self.service = service
        self.streets = CaseStreets(service, street_cache_size)

    def after(self, notification_id: int, limit: int) -> list[EventEnvelope]:
        """Up to `limit` envelopes of the notifications after `notification_id`."""
        envelopes = []
        for notification in notifications_after(self.service, notification_id, limit):
            if not notification.topic.startswith(CASE_TOPIC_PREFIX):  # the district duty list
                street = DISTRICT_TOKEN
            elif notification.originator_version == 1:  # CaseReported: the street is in it
                street = ""
            else:
                street = self.streets.street_of(notification.originator_id)
            envelope = EventEnvelope.from_notification(notification, self.service.mapper, street)
            if not street:
                envelope = replace(envelope, street=str(envelope.payload["street"]))
                self.streets.remember(notification.originator_id, envelope.street)
            envelopes.append(envelope)
        return envelopes

    def all(self, batch: int = 1000) -> Iterator[list[EventEnvelope]]:
        """Every envelope, batch by batch, from the first notification on."""
        last = 0
        while envelopes := self.after(last, batch):
            yield envelopes
            last = envelopes[-1].notification_id
