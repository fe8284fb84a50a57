"""The projections `whistleloop project` knows by name, built from settings (the audit needs its key)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from infra.settings import Settings
from infra.signing import load_or_create_signer
from projections.audit import Audit
from projections.base import Projection
from projections.case_board import CaseBoard
from projections.deadlines import Deadlines
from projections.dept_feeds import DeptFeeds
from projections.dept_performance import DeptPerformance
from projections.linkage import Linkage


def registered(settings: Settings | None = None) -> dict[str, Callable[[], Projection]]:
    """Name → factory; the audit's signing key is loaded (or generated) only when it is built."""
    settings = settings or Settings()

    def audit() -> Projection:
        return Audit(
            load_or_create_signer(settings.audit_key_file()),
            head_every=settings.audit_head_every,
            head_interval=settings.audit_head_interval,
        )

    return {
        DeptFeeds.name: DeptFeeds,
        CaseBoard.name: CaseBoard,
        DeptPerformance.name: DeptPerformance,
        Linkage.name: Linkage,
        Deadlines.name: Deadlines,
        "audit": audit,
    }


def select(names: Sequence[str], settings: Settings | None = None) -> list[Projection]:
    """The named projections, or every registered one when `names` is empty."""
    known = registered(settings)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise KeyError(f"unknown projection(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name]() for name in (names or list(known))]
