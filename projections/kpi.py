"""The measures of DOMAIN.md as pure functions over counts: no database, no clock, no I/O.

Read models keep counts (and response-time histogram buckets) per department and day; the queries
sum them over a period and hand the sums here. A rate with nothing to divide by is `None` ("no
data"), never 0 % or 100 %: a department that received no whistle has no response timeliness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Upper bounds (hours) of the response-time histogram buckets kept per department and day.
RESPONSE_BUCKETS_HOURS: tuple[float, ...] = (0.5, 1, 2, 4, 8, 12, 24, 48, 72, 168, math.inf)

SATISFACTION_FLAG = 0.70  # 满意率 below this flags the duty item for revision
SCORE_FLAG = 60.0  # a two-way assessment score below this flags the department


def rate(numerator: int, denominator: int) -> float | None:
    """numerator ÷ denominator, or None when there is nothing to divide by."""
    if numerator < 0 or denominator < 0 or numerator > denominator:
        raise ValueError(f"not a rate: {numerator}/{denominator}")
    return numerator / denominator if denominator else None


def response_timeliness(reported_in_on_time: int, due_or_reported_in: int) -> float | None:
    """响应及时率: whistles reported in within the limit ÷ whistles due (deadline passed) or reported in."""
    return rate(reported_in_on_time, due_or_reported_in)


def handling_timeliness(handled_on_time: int, due_or_handled: int) -> float | None:
    """办理及时率: handling reported within the limit ÷ handling due or done."""
    return rate(handled_on_time, due_or_handled)


def disposal_rate(handled: int, due_or_handled: int) -> float | None:
    """处置率 (GB/T composite): handling deadlines with a handling report ÷ handling due or done."""
    return rate(handled, due_or_handled)


def overdue_rate(open_overdue: int, open_obligations: int) -> float | None:
    """超期率: open obligations past their deadline ÷ open obligations."""
    return rate(open_overdue, open_obligations)


def on_time_closure(closed_on_time: int, closed: int) -> float | None:
    """按期结案率: closed within the handling limit ÷ closed."""
    return rate(closed_on_time, closed)


def rework_rate(sent_back: int, handled: int) -> float | None:
    """返工率: cases sent back for rework ÷ cases whose handling was reported."""
    return rate(sent_back, handled)


def response_rate(responded: int, received: int) -> float | None:
    """响应率 (Beijing 12345): responded ÷ received."""
    return rate(responded, received)


def resolution_rate(rated_solved: int, rated: int) -> float | None:
    """解决率: rated as solved ÷ rated."""
    return rate(rated_solved, rated)


def satisfaction_rate(satisfied: int, basically_satisfied: int, rated: int) -> float | None:
    """满意率: (满意 + 基本满意) ÷ rated."""
    return rate(satisfied + basically_satisfied, rated)


def satisfaction_flag(satisfaction: float | None) -> bool:
    """A duty item whose satisfaction is under 70 % is flagged for list revision."""
    return satisfaction is not None and satisfaction < SATISFACTION_FLAG


def mean(total: float, count: int) -> float | None:
    return total / count if count else None


def bucket_index(hours: float) -> int:
    """The histogram bucket a response time falls in (its upper bound is inclusive)."""
    for index, bound in enumerate(RESPONSE_BUCKETS_HOURS):
        if hours <= bound:
            return index
    raise ValueError(f"negative or NaN response time: {hours}")


def percentile_from_buckets(counts: Sequence[int], fraction: float) -> float | None:
    """The p-th response time (hours) estimated from bucket counts, interpolating inside the bucket.

    Roll-ups keep buckets, not every duration, so any period's p50/p90 come from summed counts; the
    estimate is exact at bucket bounds and linear between them. The last bucket has no upper bound:
    a percentile landing there reports its lower bound.
    """
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    if len(counts) != len(RESPONSE_BUCKETS_HOURS):
        raise ValueError("one count per bucket")
    total = sum(counts)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = RESPONSE_BUCKETS_HOURS[index - 1] if index else 0.0
            upper = RESPONSE_BUCKETS_HOURS[index]
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    raise AssertionError("unreachable: rank ≤ total")


@dataclass(frozen=True)
class AssessmentWeights:
    """Ningbo's two-way assessment: the street's assessment counts 70 % (of which residents' social
    evaluation 30 %), the department's own line 30 %. Configuration, not law: districts differ."""

    street: float = 0.70
    social_share_of_street: float = 0.30
    line: float = 0.30

    def __post_init__(self) -> None:
        if (
            not math.isclose(self.street + self.line, 1.0)
            or not 0 <= self.social_share_of_street <= 1
        ):
            raise ValueError("street and line weights must add up to 1; social share is 0–1")


def two_way_score(
    street_score: float | None,
    social_score: float | None,
    line_score: float | None,
    red_supervisions: int = 0,
    weights: AssessmentWeights = AssessmentWeights(),
) -> float | None:
    """双向考核 on a 0–100 scale; 一票否决: a red supervision in the period zeroes it.

    `street_score` is the street's mean rating of the department, `social_score` residents'
    satisfaction as 0–100, `line_score` the department's own line assessment. A missing part takes
    its weight away rather than counting as 0; with no part at all there is no score.
    """
    if red_supervisions > 0:
        return 0.0
    parts = [
        (street_score, weights.street * (1 - weights.social_share_of_street)),
        (social_score, weights.street * weights.social_share_of_street),
        (line_score, weights.line),
    ]
    present = [(score, weight) for score, weight in parts if score is not None]
    total_weight = sum(weight for _, weight in present)
    if not present or total_weight == 0:
        return None
    for score, _ in present:
        if not 0 <= score <= 100:
            raise ValueError(f"scores are 0–100, got {score}")
    return sum(score * weight for score, weight in present) / total_weight


def score_flag(score: float | None) -> bool:
    """A department scoring under 60 is flagged."""
    return score is not None and score < SCORE_FLAG


def composite_index(
    disposal: float,
    on_time_disposal: float,
    rework: float,
    overdue_pending: float,
    extension: float,
) -> float:
    """The GB/T 30428-style composite (e.g. Chengdu Jinniu), 0–100:
    30×处置率 + 20×按期处置率 + 20×(1−返工率) + 20×(1−超期待处置率) + 10×(1−延期率)."""
    for value in (disposal, on_time_disposal, rework, overdue_pending, extension):
        if not 0 <= value <= 1:
            raise ValueError(f"rates are 0–1, got {value}")
    return (
        30 * disposal
        + 20 * on_time_disposal
        + 20 * (1 - rework)
        + 20 * (1 - overdue_pending)
        + 10 * (1 - extension)
    )
