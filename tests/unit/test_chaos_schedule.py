"""The chaos run's kill schedule: seeded, every target once when there are enough kills."""

from __future__ import annotations

from gateway.chaos import TARGETS, schedule
from projections.compare import Dump, comparable, differences


def test_the_schedule_is_seeded_and_covers_every_target() -> None:
    plan = schedule(seed=3, kills=12, seconds=100)
    assert plan == schedule(seed=3, kills=12, seconds=100)
    assert plan != schedule(seed=4, kills=12, seconds=100)
    assert set(TARGETS) <= {kill.target for kill in plan}
    assert [kill.at for kill in plan] == sorted(kill.at for kill in plan)
    assert all(10 <= kill.at <= 90 for kill in plan)


def test_few_kills_are_drawn_at_random() -> None:
    plan = schedule(seed=1, kills=2, seconds=50)
    assert len(plan) == 2
    assert {kill.target for kill in plan} <= set(TARGETS)


def test_differences_name_the_tables_and_count_rows_with_lists_in_them() -> None:
    live: Dump = {"a": [(1, ["x"]), (2, ["y"])], "b": [(1,)]}
    rebuilt: Dump = {"a": [(1, ["x"]), (3, ["z"]), (4, [])], "b": [(1,)]}
    assert differences(live, rebuilt) == ["a: 1 rows only live, 2 only rebuilt (e.g. (2, ['y']))"]
    assert differences(live, live) == []


def test_float_sums_grouped_differently_compare_equal() -> None:
    assert (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3)
    assert comparable((0.1 + 0.2) + 0.3) == comparable(0.1 + (0.2 + 0.3))
    assert comparable(21.884297999999998) == comparable(21.884297999999994)
    assert comparable(21.8843) != comparable(21.8842)
