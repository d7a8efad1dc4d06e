"""Pacing against a clock that only moves when the test moves it: the token bucket, AIMD, the budget
and its split over tasks. No sleeping on a fake clock, no timed assertions."""

from __future__ import annotations

import threading

import pytest

from jobs.sinks import pacing
from jobs.sinks.pacing import Budget, BudgetSpec, Coordinator, Link, Pace, TokenBucket, resolve_budget
from tests.support.fakes import FakeClock
from transforms.errors import CarveError


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


def test_a_refund_is_spent_even_beyond_the_capacity_but_never_topped_up():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=1, clock=clock, tokens=0.0)

    bucket.take(-30)  # DynamoDB consumed 30 fewer units than charged
    clock.advance(5)

    assert bucket.tokens == 30  # kept, and no refill on top while above capacity
    assert bucket.take(30) == 0.0
    assert bucket.take(10) == pytest.approx(1.0)


# --- the budget ---------------------------------------------------------------------------------

PROVISIONED = {"ProvisionedThroughput": {"WriteCapacityUnits": 1000, "ReadCapacityUnits": 5}}
ON_DEMAND = {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
             "ProvisionedThroughput": {"WriteCapacityUnits": 0, "ReadCapacityUnits": 0}}


@pytest.mark.parametrize("text, units, share", [("1500", 1500.0, None), ("80%", None, 0.8), (" 12.5 % ", None, 0.125),
                                                 (250, 250.0, None)])
def test_budget_specs_are_units_or_a_share(text, units, share):
    spec = BudgetSpec.parse(text)
    assert (spec.units, spec.share) == (units, share)


@pytest.mark.parametrize("text", ["fast", "-5", "0", "0%", "120%", "5 WCU"])
def test_bad_budget_specs_say_what_to_write(text):
    with pytest.raises(CarveError, match="write rate"):
        BudgetSpec.parse(text)


def test_a_share_of_a_provisioned_table():
    assert resolve_budget(BudgetSpec(share=0.5), PROVISIONED).units_per_second == 500
    assert resolve_budget(None, PROVISIONED).units_per_second == 800  # the default: 80 %
    assert resolve_budget(BudgetSpec(units=2500), PROVISIONED).units_per_second == 2500


def test_on_demand_tables_use_their_maximum_then_warm_throughput_then_4000():
    with_max = {**ON_DEMAND, "OnDemandThroughput": {"MaxWriteRequestUnits": 10000}, "WarmThroughput": {"WriteUnitsPerSecond": 6000}}
    warm = {**ON_DEMAND, "WarmThroughput": {"WriteUnitsPerSecond": 6000}}

    assert resolve_budget(BudgetSpec(share=0.5), with_max).units_per_second == 5000
    assert resolve_budget(None, with_max).units_per_second == 10000
    assert resolve_budget(None, warm).units_per_second == 6000
    assert resolve_budget(None, ON_DEMAND).units_per_second == 4000
    assert "4,000" in resolve_budget(None, ON_DEMAND).how
    assert resolve_budget(BudgetSpec(units=300), with_max).units_per_second == 300


# --- one task's pace: AIMD ----------------------------------------------------------------------


def test_a_throttle_cuts_the_pace_by_30_percent_once_per_half_second():
    clock = FakeClock()
    pace = Pace(100.0, clock)

    pace.throttled()
    pace.throttled()  # the same event
    assert pace.rate == pytest.approx(70.0)
    clock.advance(0.5)
    pace.throttled()
    assert pace.rate == pytest.approx(100 * (0.7 + 0.05 * 0.5) * 0.7)


def test_the_pace_climbs_back_by_5_percent_a_second_and_stops_at_the_share():
    clock = FakeClock()
    pace = Pace(100.0, clock)
    pace.throttled()

    clock.advance(2)
    pace.acquire(0, clock.sleep)
    assert pace.rate == pytest.approx(80.0)
    clock.advance(60)
    pace.acquire(0, clock.sleep)
    assert pace.rate == pytest.approx(100.0)


def test_the_pace_never_drops_below_its_floor():
    clock = FakeClock()
    pace = Pace(100.0, clock)
    for _ in range(100):
        pace.throttled()
        clock.advance(0.5)
    assert pace.rate >= 100.0 * 0.05


def test_a_new_share_applies_from_the_next_acquire():
    clock = FakeClock()
    pace = Pace(10.0, clock)
    assert pace.acquire(10, clock.sleep) == pytest.approx(1.0)
    pace.set_share(20.0)
    assert pace.acquire(20, clock.sleep) == pytest.approx(1.0)


# --- the split over tasks -----------------------------------------------------------------------


def fixed(units: float):
    return lambda: Budget(units, f"{units} as asked")


def test_the_budget_is_split_over_the_slots_until_tasks_finish():
    coordinator = Coordinator(fixed(1200.0), tasks=4, slots=4, clock=FakeClock())

    # Before every task has started, each still gets a quarter: no start-up burst.
    assert coordinator.heartbeat(0, 0, done=False) == 300.0
    for task in (1, 2, 3):
        assert coordinator.heartbeat(task, 0, done=False) == 300.0
    assert coordinator.heartbeat(3, 0, done=True) == 400.0
    assert coordinator.heartbeat(2, 0, done=True) == 600.0
    assert coordinator.heartbeat(0, 0, done=False) == 600.0
    assert coordinator.heartbeat(1, 0, done=True) == 1200.0


def test_more_tasks_than_slots_keep_the_slot_share_until_the_tail():
    coordinator = Coordinator(fixed(1000.0), tasks=10, slots=2, clock=FakeClock())

    for task in range(8):
        coordinator.heartbeat(task, 0, done=True)
    assert coordinator.heartbeat(8, 0, done=False) == 500.0
    assert coordinator.heartbeat(9, 0, done=True) == 1000.0


def test_a_retried_task_counts_once_and_its_old_attempt_cannot_finish_it():
    coordinator = Coordinator(fixed(900.0), tasks=3, slots=3, clock=FakeClock())

    coordinator.heartbeat(0, 1, done=False)  # attempt 1 runs after attempt 0 was lost
    assert coordinator.heartbeat(0, 0, done=True) == 300.0  # a stale report of attempt 0
    assert coordinator.heartbeat(0, 1, done=True) == 450.0


def test_tasks_reach_the_coordinator_over_http_and_keep_their_share_without_it():
    with Coordinator(fixed(600.0), tasks=2, slots=2) as coordinator:
        link = coordinator.link()
        assert link.share == 300.0
        assert link.ask(0, 0) == 300.0
        assert link.ask(1, 0, done=True) == 600.0
        intruder = Link(coordinator.url, "not-the-token", 1.0)
        assert intruder.ask(0, 0) == 1.0  # refused: keeps what it had
        assert coordinator.heartbeat(0, 0, done=False) == 600.0  # and changed nothing
    assert link.ask(0, 0) == 600.0  # coordinator gone: the last share holds


def test_a_share_of_capacity_is_re_read_and_recorded(monkeypatch):
    monkeypatch.setattr(pacing, "BUDGET_REREAD_SECONDS", 0.01)
    capacities = iter([1000.0] * 2 + [2000.0] * 1000)
    with Coordinator(lambda: Budget(next(capacities) * 0.5, "50%"), tasks=1, slots=1) as coordinator:
        for _ in range(500):
            if coordinator.share() == 1000.0:
                break
            threading.Event().wait(0.01)
    assert coordinator.share() == 1000.0
    assert [units for _, units in coordinator.budget_timeline] == [500.0, 1000.0]


def test_the_live_rate_is_what_the_tasks_reported_over_the_last_three_seconds(monkeypatch):
    coordinator = Coordinator(fixed(1000.0), tasks=2, slots=2, clock=FakeClock())
    now = [1_000_000.5]
    monkeypatch.setattr(pacing.time, "time", lambda: now[0])
    coordinator.heartbeat(0, 0, False, wcu=900.0)
    now[0] += 1
    coordinator.heartbeat(1, 0, False, wcu=600.0)
    now[0] += 1
    coordinator.heartbeat(0, 0, False, wcu=300.0)
    now[0] += 1  # the three whole seconds before this one

    assert coordinator.live_rate() == pytest.approx((900 + 600 + 300) / 3)
