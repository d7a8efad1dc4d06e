"""TokenBucket against a clock that only moves when the test moves it: no sleeping, no timing."""

from __future__ import annotations

import pytest

from jobs.dynamo import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_starts_full_and_hands_out_capacity_without_waiting():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=10, clock=clock)

    assert [bucket.take(1) for _ in range(10)] == [0.0] * 10


def test_wait_is_the_debt_divided_by_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=10, clock=clock)
    bucket.take(10)

    assert bucket.take(5) == pytest.approx(0.5)
    assert bucket.take(5) == pytest.approx(1.0)  # queued behind the first 5


def test_refills_continuously_with_time():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=10, clock=clock)
    bucket.take(10)

    clock.advance(0.25)

    assert bucket.tokens == pytest.approx(2.5)
    assert bucket.take(2.5) == 0.0
    assert bucket.take(1) == pytest.approx(0.1)


def test_refill_stops_at_capacity_so_idle_time_buys_no_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=10, clock=clock)

    clock.advance(3600)

    assert bucket.tokens == pytest.approx(10)
    assert bucket.take(20) == pytest.approx(1.0)


def test_a_request_larger_than_the_capacity_goes_through_after_its_wait():
    clock = FakeClock()
    bucket = TokenBucket(rate=2, capacity=2, clock=clock)

    assert bucket.take(5) == pytest.approx(1.5)


def test_acquire_sleeps_only_when_short():
    clock = FakeClock()
    bucket = TokenBucket(rate=4, capacity=4, clock=clock)

    bucket.acquire(4, clock.sleep)
    bucket.acquire(2, clock.sleep)

    assert clock.slept == [pytest.approx(0.5)]
    assert clock.now == pytest.approx(0.5)


def test_enforces_the_rate_over_many_takes():
    clock = FakeClock()
    rate, capacity = 50.0, 50.0
    bucket = TokenBucket(rate=rate, capacity=capacity, clock=clock)
    handed_out = 0.0

    for units in [1, 3, 2, 7, 1, 4] * 100:  # 1,800 units
        bucket.acquire(units, clock.sleep)
        handed_out += units
        # Whatever the moment, no more than one bucketful plus what the rate allows since the start.
        assert handed_out <= capacity + rate * clock.now + 1e-9

    assert clock.now == pytest.approx((handed_out - capacity) / rate)


def test_rejects_a_rate_that_is_not_positive():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, clock=FakeClock())
