"""A test projection: events per case, checked for order, so a double or skipped apply shows.

Each projection instance owns one table named after it. `apply` insists that a case's versions
arrive one after another: applying an event twice (or out of order) raises, which halts the
projection instead of quietly miscounting. `fail_on` makes it raise on chosen notification ids, the
"bug" an operator fixes before resuming; `delay` slows it so a kill lands mid-batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, Column, Connection, Engine, MetaData, String, Table, select

from infra.event_codec import EventEnvelope
from projections.base import ApplyContext

#: Test tables stay out of the application's MetaData.
test_metadata = MetaData()


def count_table(name: str) -> Table:
    if f"count_{name}" in test_metadata.tables:
        return test_metadata.tables[f"count_{name}"]
    return Table(
        f"count_{name}",
        test_metadata,
        Column("case_id", String(64), primary_key=True),
        Column("events", BigInteger, nullable=False),
        Column("last_version", BigInteger, nullable=False),
        Column("notification_sum", BigInteger, nullable=False),
        Column("last_notification_id", BigInteger, nullable=False),
    )


class OutOfOrder(RuntimeError):
    """An event arrived that is not the next version of its case."""


@dataclass
class CountingProjection:
    name: str
    subjects: tuple[str, ...] = ("wl.ev.>",)
    fail_on: set[int] = field(default_factory=set)
    delay: float = 0.0

    @property
    def tables(self) -> tuple[Table, ...]:
        return (count_table(self.name),)

    def create_tables(self, engine: Engine) -> None:
        test_metadata.create_all(engine, tables=list(self.tables))

    def apply(self, conn: Connection, envelope: EventEnvelope, context: ApplyContext) -> bool:
        if envelope.notification_id in self.fail_on:
            raise RuntimeError(f"simulated bug on notification {envelope.notification_id}")
        if envelope.aggregate != "case":
            return False
        if self.delay:
            time.sleep(self.delay)
        table = count_table(self.name)
        row = conn.execute(
            select(table.c.events, table.c.last_version).where(
                table.c.case_id == envelope.aggregate_id
            )
        ).first()
        previous = row.last_version if row else 0
        if envelope.version != previous + 1:
            raise OutOfOrder(f"{envelope.aggregate_id}: v{envelope.version} after v{previous}")
        values = {
            "last_version": envelope.version,
            "last_notification_id": envelope.notification_id,
        }
        if row is None:
            conn.execute(
                table.insert().values(
                    case_id=envelope.aggregate_id,
                    events=1,
                    notification_sum=envelope.notification_id,
                    **values,
                )
            )
        else:
            conn.execute(
                table.update()
                .where(table.c.case_id == envelope.aggregate_id)
                .values(
                    events=table.c.events + 1,
                    notification_sum=table.c.notification_sum + envelope.notification_id,
                    **values,
                )
            )
        return True


def count_rows(engine: Engine, name: str) -> dict[str, tuple[int, int, int, int]]:
    """The projection's table as {case: (events, last version, sum of ids, last id)}."""
    table = count_table(name)
    with engine.connect() as conn:
        return {
            row.case_id: (
                row.events,
                row.last_version,
                row.notification_sum,
                row.last_notification_id,
            )
            for row in conn.execute(select(table))
        }


def expected_counts(envelopes: list[EventEnvelope]) -> dict[str, tuple[int, int, int, int]]:
    """What a correct CountingProjection holds after exactly these events."""
    counts: dict[str, tuple[int, int, int, int]] = {}
    for e in envelopes:
        if e.aggregate != "case":
            continue
        events, _version, total, _last = counts.get(e.aggregate_id, (0, 0, 0, 0))
        counts[e.aggregate_id] = (
            events + 1,
            e.version,
            total + e.notification_id,
            e.notification_id,
        )
    return counts
