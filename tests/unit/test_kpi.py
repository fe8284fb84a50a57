"""The measures of DOMAIN.md against hand-computed examples (projections/kpi.py)."""

from __future__ import annotations

import math

import pytest

from projections import kpi


def test_a_rate_with_nothing_to_divide_by_is_no_data_not_zero() -> None:
    assert kpi.rate(3, 4) == 0.75
    assert kpi.rate(0, 0) is None
    assert kpi.response_timeliness(0, 5) == 0.0
    for bad in ((5, 4), (-1, 3), (1, -1)):
        with pytest.raises(ValueError, match="not a rate"):
            kpi.rate(*bad)


def test_the_named_rates_divide_what_domain_md_says() -> None:
    assert kpi.handling_timeliness(9, 12) == 0.75
    assert kpi.overdue_rate(1, 8) == 0.125
    assert kpi.on_time_closure(7, 10) == 0.7
    assert kpi.rework_rate(2, 20) == 0.1
    assert kpi.response_rate(18, 20) == 0.9
    assert kpi.resolution_rate(15, 20) == 0.75
    assert kpi.satisfaction_rate(12, 3, 20) == 0.75  # (满意 12 + 基本满意 3) ÷ 20


def test_satisfaction_under_seventy_percent_flags_the_item() -> None:
    assert not kpi.satisfaction_flag(kpi.satisfaction_rate(5, 2, 10))  # exactly 70 %
    assert kpi.satisfaction_flag(kpi.satisfaction_rate(5, 1, 10))  # 60 %
    assert not kpi.satisfaction_flag(None)  # no ratings: nothing to flag


def test_mean_of_nothing_is_no_data() -> None:
    assert kpi.mean(7.5, 3) == 2.5
    assert kpi.mean(0.0, 0) is None


def test_response_times_fall_in_buckets_by_inclusive_upper_bound() -> None:
    assert kpi.bucket_index(0.0) == 0
    assert kpi.bucket_index(0.5) == 0
    assert kpi.bucket_index(0.51) == 1
    assert kpi.bucket_index(24) == 6
    assert kpi.bucket_index(200) == len(kpi.RESPONSE_BUCKETS_HOURS) - 1
    with pytest.raises(ValueError, match="negative"):
        kpi.bucket_index(math.nan)


def test_percentiles_interpolate_inside_the_bucket() -> None:
    # buckets (h): ≤0.5: 2, ≤1: 2, ≤2: 4, ≤4: 2 — ten responses
    counts = [2, 2, 4, 2] + [0] * (len(kpi.RESPONSE_BUCKETS_HOURS) - 4)
    assert kpi.percentile_from_buckets(counts, 0.5) == pytest.approx(1.25)  # 1 + 1 × (5−4)/4
    assert kpi.percentile_from_buckets(counts, 0.9) == pytest.approx(3.0)  # 2 + 2 × (9−8)/2
    assert kpi.percentile_from_buckets(counts, 1.0) == pytest.approx(4.0)
    assert kpi.percentile_from_buckets(counts, 0.1) == pytest.approx(0.25)  # 0 + 0.5 × 1/2


def test_a_percentile_in_the_open_last_bucket_reports_its_lower_bound() -> None:
    counts = [0] * (len(kpi.RESPONSE_BUCKETS_HOURS) - 1) + [3]
    assert kpi.percentile_from_buckets(counts, 0.5) == 168
    assert kpi.percentile_from_buckets([0] * len(kpi.RESPONSE_BUCKETS_HOURS), 0.5) is None
    with pytest.raises(ValueError, match="one count per bucket"):
        kpi.percentile_from_buckets([1, 2], 0.5)
    with pytest.raises(ValueError, match="fraction"):
        kpi.percentile_from_buckets(counts, 0)


def test_two_way_score_weights_street_social_and_line() -> None:
    # street 70 % of which social 30 %: street part 0.49, social 0.21, line 0.30
    assert kpi.two_way_score(80, 90, 70) == pytest.approx(80 * 0.49 + 90 * 0.21 + 70 * 0.30)
    assert kpi.two_way_score(80, 90, 70) == pytest.approx(79.1)
    # a missing part gives its weight to the others instead of counting as zero
    assert kpi.two_way_score(80, 90, None) == pytest.approx((80 * 0.49 + 90 * 0.21) / 0.70)
    assert kpi.two_way_score(None, None, None) is None


def test_one_red_supervision_vetoes_the_score() -> None:
    assert kpi.two_way_score(95, 99, 98, red_supervisions=1) == 0.0
    assert kpi.score_flag(kpi.two_way_score(95, 99, 98, red_supervisions=1))


def test_weights_are_configuration_but_must_add_up() -> None:
    even = kpi.AssessmentWeights(street=0.5, social_share_of_street=0.0, line=0.5)
    assert kpi.two_way_score(80, 10, 60, weights=even) == pytest.approx(70.0)
    with pytest.raises(ValueError, match="add up"):
        kpi.AssessmentWeights(street=0.6, line=0.3)
    with pytest.raises(ValueError, match="0–100"):
        kpi.two_way_score(120, None, None)


def test_a_score_under_sixty_flags_the_department() -> None:
    assert kpi.score_flag(59.9)
    assert not kpi.score_flag(60.0)
    assert not kpi.score_flag(None)


def test_composite_index_follows_the_gbt_formula() -> None:
    # 30×0.9 + 20×0.8 + 20×(1−0.1) + 20×(1−0.2) + 10×(1−0.05) = 27 + 16 + 18 + 16 + 9.5
    assert kpi.composite_index(0.9, 0.8, 0.1, 0.2, 0.05) == pytest.approx(86.5)
    assert kpi.composite_index(1, 1, 0, 0, 0) == pytest.approx(100)
    with pytest.raises(ValueError, match="0–1"):
        kpi.composite_index(1.2, 1, 0, 0, 0)
