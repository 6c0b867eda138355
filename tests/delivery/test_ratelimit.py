from __future__ import annotations

from clubjapon_ops.delivery.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_is_held_after_the_first_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    for _ in range(110):
        bucket.acquire()
    # 10 tokens at start, then 100 more at 10 per second.
    assert abs(clock.now - 10.0) < 1e-9


def test_zero_means_unlimited() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        bucket.acquire()
    assert clock.slept == []


def test_batches_take_their_share() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock, sleep=clock.sleep)
    bucket.acquire(100)
    bucket.acquire(50)
    assert abs(clock.now - 0.5) < 1e-9
