"""The projections `whistleloop project` knows by name (later issues add theirs here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from projections.base import Projection
from projections.case_board import CaseBoard
from projections.dept_feeds import DeptFeeds


def registered() -> dict[str, Callable[[], Projection]]:
    return {DeptFeeds.name: DeptFeeds, CaseBoard.name: CaseBoard}


def select(names: Sequence[str]) -> list[Projection]:
    """The named projections, or every registered one when `names` is empty."""
    known = registered()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise KeyError(f"unknown projection(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name]() for name in (names or list(known))]
