"""The per-caller write limit's arithmetic, on a fake clock."""

from __future__ import annotations

import pytest

from gateway import rate_limit
from gateway.rate_limit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes every 1/rate s
    assert buckets.take("b") == 0.0, "callers have buckets of their own"
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 60  # refills up to the burst, not beyond
    assert [buckets.take("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_refused_attempts_do_not_push_the_wait_further() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock)
    assert buckets.take("a") == 0.0
    waits = [buckets.take("a") for _ in range(5)]
    assert waits == [pytest.approx(1.0)] * 5
    clock.now += 1.0
    assert buckets.take("a") == 0.0


def test_idle_callers_are_forgotten_when_there_are_too_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rate_limit, "MAX_BUCKETS", 10)
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock)
    for i in range(10):
        buckets.take(f"old-{i}")
    clock.now += 5  # longer than burst/rate: the old buckets are full again
    buckets.take("busy")
    buckets.take("new")
    assert set(buckets.buckets) == {"busy", "new"}
