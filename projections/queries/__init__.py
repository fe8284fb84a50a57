"""The read side the gateway serves: case lists and details, department measures, linkage, audit.

Every function takes an `Engine` (or a `Connection`) on the read-model database plus typed arguments,
checks its input first (raising `InvalidInput` / `NotFound` with stable codes and zh/en messages) and
returns plain JSON-ready values. Queries stay cheap at district scale (~50,000 cases, ~1M events):
period measures sum `perf_daily` over a range of its leading `day` key, the case list pages by keyset
on the board's `reported_at` index, and snapshots (overdue, supervision) read `deadlines`, which only
holds open obligations.
"""

from __future__ import annotations

from projections.queries.cases import (
    MAX_LIMIT,
    CaseFilters,
    Page,
    case_detail,
    case_history,
    decode_cursor,
    encode_cursor,
    list_cases,
    validate_filters,
)
from projections.queries.common import MAX_PERIOD_DAYS, Period, china_day, day_start_utc
from projections.queries.live import (
    BOARD_ROWS,
    MAX_TREND_DAYS,
    TREND_KEYS,
    linkage_matrix,
    overview,
    supervision_board,
    trend,
)
from projections.queries.performance import (
    DIMENSIONS,
    RANKING_KEYS,
    Snapshot,
    department_performance,
    measures,
    measures_by,
    performance_ranking,
)
from projections.queries.proofs import consistency_proof, inclusion_proof, tree_head
from projections.queries.verify import audit_public_key, verify_case

__all__ = [
    "BOARD_ROWS",
    "DIMENSIONS",
    "MAX_LIMIT",
    "MAX_PERIOD_DAYS",
    "MAX_TREND_DAYS",
    "RANKING_KEYS",
    "TREND_KEYS",
    "CaseFilters",
    "Page",
    "Period",
    "Snapshot",
    "audit_public_key",
    "case_detail",
    "case_history",
    "china_day",
    "consistency_proof",
    "day_start_utc",
    "decode_cursor",
    "department_performance",
    "encode_cursor",
    "inclusion_proof",
    "linkage_matrix",
    "list_cases",
    "measures",
    "measures_by",
    "overview",
    "performance_ranking",
    "supervision_board",
    "tree_head",
    "trend",
    "validate_filters",
    "verify_case",
]
