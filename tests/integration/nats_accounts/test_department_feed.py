"""A department reads its own feed, all of it, in order, through the client helper departments use."""

from __future__ import annotations

import pytest

from infra.nats.accounts import department_consumer
from infra.nats.department_client import DepartmentDenied, DepartmentFeed
from infra.nats.streams import DEPT_STREAM
from tests.integration.nats_accounts.support import OTHER, OWN, Secured, feed_of

pytestmark = pytest.mark.asyncio


async def test_a_department_reads_its_whole_feed_in_order_and_acks_it(secured: Secured) -> None:
    feed = await DepartmentFeed.open(secured.url, OWN, secured.credentials.departments[OWN])
    try:
        first = await feed.fetch(batch=2, timeout=2)
        rest = await feed.fetch(batch=10, timeout=2)
        await feed.ack([*first, *rest])
        after = await feed.fetch(batch=10, timeout=0.5)
    finally:
        await feed.close()

    assert [m.subject for m in [*first, *rest]] == feed_of(OWN)
    assert after == [], "acked messages came back, or another department's did"
    seqs = [m.metadata.sequence.stream for m in [*first, *rest]]
    assert seqs == sorted(seqs)
    info = await secured.admin.consumer_info(DEPT_STREAM, department_consumer(OWN))
    assert info.num_ack_pending == 0
    assert info.ack_floor.stream_seq == seqs[-1], "the acks did not reach the consumer"


async def test_two_departments_each_see_only_their_own_feed(secured: Secured) -> None:
    feeds = {
        code: await DepartmentFeed.open(secured.url, code, secured.credentials.departments[code])
        for code in (OWN, OTHER)
    }
    try:
        got = {code: await feed.fetch(batch=10, timeout=2) for code, feed in feeds.items()}
    finally:
        for feed in feeds.values():
            await feed.close()
    assert {code: [m.subject for m in msgs] for code, msgs in got.items()} == {
        OWN: feed_of(OWN),
        OTHER: feed_of(OTHER),
    }


async def test_a_wrong_password_is_refused_at_once_not_retried(secured: Secured) -> None:
    with pytest.raises(DepartmentDenied, match=r"(?i)authorization violation"):
        await DepartmentFeed.open(secured.url, OWN, "not-the-password", timeout=5)


async def test_one_departments_password_does_not_open_another_departments_feed(
    secured: Secured,
) -> None:
    with pytest.raises(DepartmentDenied, match=r"(?i)authorization violation"):
        await DepartmentFeed.open(secured.url, OTHER, secured.credentials.departments[OWN])
