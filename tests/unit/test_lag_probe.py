"""The full-system benchmark's lag arithmetic: an event's lag is the time between the first sample
that shows it stored and the first that shows a projection past it."""

from __future__ import annotations

from gateway.system_benchmark import Probe


def test_each_event_lags_from_first_stored_to_first_applied() -> None:
    probe = Probe(
        [
            (0.0, 10, {"a": 10, "b": 8}),  # before the run: 9 and 10 were stored earlier
            (0.1, 12, {"a": 11, "b": 10}),
            (0.2, 13, {"a": 13, "b": 10}),
            (0.5, 13, {"a": 13, "b": 13}),
        ]
    )
    lags = {name: sorted(round(ms) for ms in found) for name, found in probe.lags().items()}
    # 11 and 12 stored at 0.1, 13 at 0.2; a applies 11 at 0.1, 12 and 13 at 0.2; b all at 0.5.
    assert lags == {"a": [0, 0, 100], "b": [300, 400, 400]}
    assert probe.behind() == {"a": 0, "b": 0}


def test_a_projection_still_behind_at_the_end_is_reported() -> None:
    probe = Probe([(0.0, 5, {"a": 5}), (0.1, 9, {"a": 6})])
    assert probe.behind() == {"a": 3}
    assert [round(ms) for ms in probe.lags()["a"]] == [0]
