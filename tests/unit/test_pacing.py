from __future__ import annotations

import pytest

from clubjapon_ops.http.pacing import Pacer, RateHint


class FakeTime:
    """A clock that only moves when the pacer sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds

    def clock(self) -> float:
        return self.now


def pacer(t: FakeTime, **kwargs: float) -> Pacer:
    return Pacer(sleep=t.sleep, clock=t.clock, **kwargs)


def test_without_a_hint_requests_go_at_once() -> None:
    t = FakeTime()
    p = pacer(t)
    for _ in range(5):
        p.wait()
    assert t.slept == []


def test_a_rolling_limit_spaces_requests_at_95_percent_of_it() -> None:
    t = FakeTime()
    p = pacer(t)
    p.wait()
    p.observe(RateHint(limit=100, remaining=99, window_s=10.0))
    for _ in range(200):
        p.wait()
        p.observe(RateHint(limit=100, remaining=50, window_s=10.0))
    # 201 requests over the elapsed time: never more than 95 in any 10 s window.
    assert t.now == pytest.approx(200 * 0.1 / 0.95)
    assert set(t.slept) == {round(0.1 / 0.95, 6)}


def test_time_spent_elsewhere_counts_toward_the_spacing() -> None:
    t = FakeTime()
    p = pacer(t)
    p.wait()
    p.observe(RateHint(limit=10, remaining=9, window_s=1.0))
    t.now += 0.08  # the page took 80 ms to store
    p.wait()
    assert t.slept == [pytest.approx(1 / 10 / 0.95 - 0.08, abs=1e-5)]


def test_a_nearly_exhausted_rolling_window_slows_down() -> None:
    t = FakeTime()
    p = pacer(t)
    p.wait()
    p.observe(RateHint(limit=100, remaining=1, window_s=10.0))
    p.wait()
    assert t.slept == [pytest.approx(0.4)]


def test_an_exhausted_fixed_window_waits_for_its_reset() -> None:
    t = FakeTime()
    p = pacer(t)
    p.wait()
    p.observe(RateHint(limit=10, remaining=3, window_s=2.0, rolling=False))
    p.wait()
    p.observe(RateHint(limit=10, remaining=0, window_s=2.0, rolling=False))
    p.wait()
    assert t.slept == [2.0]


def test_a_minimum_interval_holds_without_headers() -> None:
    t = FakeTime()
    p = pacer(t, min_interval=0.2)
    for _ in range(6):
        p.wait()
    assert t.now == pytest.approx(1.0)
