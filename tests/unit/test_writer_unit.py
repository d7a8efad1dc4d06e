"""write_partition against a fake DynamoDB transport and a fake clock: batching, backoff, rate, failures.

The fake sits at a boundary we own (the transport factory: one signed JSON call in, one answer
out); the same code runs against dynalite and the capacity proxy in tests/integration.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from pyspark.sql import Row

from jobs.sinks.pacing import StaticShare
from jobs.sinks.transport import Answer, TransportError
from jobs.sinks.writer import (
    FAILED,
    MAX_BATCH,
    STATS,
    TaskStats,
    WriteSettings,
    backoff_delay,
    batches,
    pending_items,
    write_partition,
)
from tests.support.fakes import FakeClock
from transforms.errors import CarveError

TABLE = "Store"


@dataclass
class Call:
    at: float
    items: list[dict[str, Any]]
    return_consumed_capacity: str


Action = Callable[[list[dict[str, Any]]], "dict[str, Any] | Answer"]


def ok(items: list[dict[str, Any]], units_per_item: float = 1.0) -> dict[str, Any]:
    return {
        "UnprocessedItems": {},
        "ConsumedCapacity": [{"TableName": TABLE, "CapacityUnits": units_per_item * len(items)}],
    }


def unprocess_last(n: int) -> Action:
    def action(items: list[dict[str, Any]]) -> dict[str, Any]:
        kept, dropped = items[:-n], items[-n:]
        response = ok(kept)
        response["UnprocessedItems"] = {TABLE: [{"PutRequest": {"Item": item}} for item in dropped]}
        return response

    return action


def error(code: str, status: int = 400) -> Answer:
    return Answer(status, code, f"{code} from the fake", {"__type": f"com.amazonaws.dynamodb.v20120810#{code}"})


def answering(answer: Answer) -> Action:
    return lambda items: answer


def raising(exc: Exception) -> Action:
    def action(items: list[dict[str, Any]]) -> dict[str, Any]:
        raise exc

    return action


class FakeDynamo:
    """Records every BatchWriteItem call with the fake time it arrived; answers from a script, then `default`.

    It reads the request body as DynamoDB would, so what it records is exactly what went on the wire.
    """

    def __init__(self, clock: FakeClock, script: list[Action] | None = None, default: Action = ok):
        self.clock = clock
        self.script = list(script or [])
        self.default = default
        self.calls: list[Call] = []

    def post(self, operation: str, body: bytes) -> Answer:
        assert operation == "BatchWriteItem"
        request = json.loads(body)
        assert list(request["RequestItems"]) == [TABLE]
        # A delete is recorded as {"delete": its key}.
        items = [entry["PutRequest"]["Item"] if "PutRequest" in entry else {"delete": entry["DeleteRequest"]["Key"]}
                 for entry in request["RequestItems"][TABLE]]
        self.calls.append(Call(self.clock.now, items, request["ReturnConsumedCapacity"]))
        action = self.script.pop(0) if self.script else self.default
        result = action(items)
        return result if isinstance(result, Answer) else Answer(200, "", "", result)


def item_row(n: int, wcu: int = 1, sk: str | None = "PROFILE", entity: str = "customer") -> Row:
    item = {"PK": {"S": f"CUSTOMER#{n}"}, "n": {"N": str(n)}}
    if sk is not None:
        item["SK"] = {"S": sk}
    return Row(entity=entity, pk=f"CUSTOMER#{n}", sk=sk, item=json.dumps(item), wcu=wcu)


def settings(**overrides: Any) -> WriteSettings:
    values = dict(table=TABLE, endpoint_url=None, region="us-east-1", units_per_second=None)
    return WriteSettings(**{**values, **overrides})


def run(rows, fake: FakeDynamo, clock: FakeClock, task_rate: float | None = None, seed: int = 7, **overrides):
    """All outcomes of one task: FailedItem tuples, then the TaskStats tuple last."""
    out = list(
        write_partition(
            rows,
            settings(**overrides),
            StaticShare(task_rate) if task_rate else None,
            transport_factory=lambda _settings: fake,
            clock=clock,
            sleep=clock.sleep,
            rng=random.Random(seed),
        )
    )
    assert out[-1][0] == STATS and all(o[0] == FAILED for o in out[:-1])
    return out[:-1], TaskStats(*out[-1])


def keys_of(items: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(i["PK"]["S"], i.get("SK", {}).get("S")) for i in items]


# --- batching ---------------------------------------------------------------------------------


def test_batches_hold_at_most_25_items_and_all_items_are_sent_once():
    clock = FakeClock()
    fake = FakeDynamo(clock)

    failed, stats = run([item_row(n) for n in range(60)], fake, clock)

    assert [len(c.items) for c in fake.calls] == [25, 25, 10]
    assert sorted(k for c in fake.calls for k in keys_of(c.items)) == sorted(
        (f"CUSTOMER#{n}", "PROFILE") for n in range(60)
    )
    assert failed == []
    assert stats[:6] == (STATS, 60, 60.0, 0, 0, 3)  # written, consumed, throttled, retries, batches
    assert sum(json.loads(stats.timeline).values()) == 60.0
    assert {c.return_consumed_capacity for c in fake.calls} <= {"TOTAL", "INDEXES"}


def test_a_repeated_key_starts_a_new_batch():
    rows = [item_row(1), item_row(2), item_row(1), item_row(3), item_row(3)]

    sizes = [len(b) for b in batches(pending_items(rows))]

    assert sizes == [2, 2, 1]
    for batch in batches(pending_items(rows)):
        keys = [(p.pk, p.sk) for p in batch]
        assert len(keys) == len(set(keys))


def test_same_partition_key_with_different_sort_keys_share_a_batch():
    rows = [item_row(1, sk=f"ORDER#{i}") for i in range(MAX_BATCH)]

    assert [len(b) for b in batches(pending_items(rows))] == [MAX_BATCH]


def test_items_are_sent_as_their_wire_json_unchanged():
    clock = FakeClock()
    fake = FakeDynamo(clock)
    item = {
        "PK": {"S": "CUSTOMER#1"},
        "SK": {"S": "PROFILE"},
        "n": {"N": "1.50"},
        "b": {"B": "AAE="},
        "bs": {"BS": ["AAE=", "/w=="]},
        "m": {"M": {"a": {"L": [{"S": "x"}, {"NULL": True}, {"B": "AAI="}]}}},
        "ss": {"SS": ["b", "a"]},
    }
    row = Row(entity="customer", pk="CUSTOMER#1", sk="PROFILE", item=json.dumps(item), wcu=1)

    run([row], fake, clock)

    # The JSON protocol spells binary as base64 text, which is what the item holds: sent as is,
    # numbers as formatted, sets in their order.
    assert fake.calls[0].items == [item]


# --- unprocessed items and backoff ------------------------------------------------------------


def test_unprocessed_items_are_resent_after_a_pause_not_immediately():
    clock = FakeClock()
    fake = FakeDynamo(clock, script=[unprocess_last(5)])

    failed, stats = run([item_row(n) for n in range(20)], fake, clock)

    first, second = fake.calls
    assert second.items == first.items[-5:]
    assert second.at > first.at
    assert failed == []
    assert stats.written == 20
    assert (stats.throttled, stats.retries, stats.batches) == (1, 1, 2)


def test_unprocessed_items_are_matched_even_when_dynamodb_respells_them():
    clock = FakeClock()

    def respell(items):
        # DynamoDB may hand numbers back normalized: "1.50" as "1.5".
        response = ok(items[:-1])
        back = dict(items[-1], n={"N": "1.5"})
        response["UnprocessedItems"] = {TABLE: [{"PutRequest": {"Item": back}}]}
        return response

    fake = FakeDynamo(clock, script=[respell])
    item = json.dumps({"PK": {"S": "CUSTOMER#9"}, "SK": {"S": "PROFILE"}, "n": {"N": "1.50"}})
    rows = [item_row(1), Row(entity="customer", pk="CUSTOMER#9", sk="PROFILE", item=item, wcu=1)]

    failed, stats = run(rows, fake, clock)

    assert keys_of(fake.calls[1].items) == [("CUSTOMER#9", "PROFILE")]
    assert stats.written == 2 and failed == []


def test_deletes_go_as_delete_requests_and_unprocessed_ones_are_resent():
    clock = FakeClock()

    def unprocess_the_delete(items):
        response = ok(items[:-1])
        response["UnprocessedItems"] = {TABLE: [{"DeleteRequest": {"Key": items[-1]["delete"]}}]}
        return response

    fake = FakeDynamo(clock, script=[unprocess_the_delete])
    key = {"PK": {"S": "CUSTOMER#9"}, "SK": {"S": "PROFILE"}}
    rows = [item_row(1), Row(entity="customer", pk="CUSTOMER#9", sk="PROFILE", item=json.dumps(key), wcu=1,
                             delete=True)]

    failed, stats = run(rows, fake, clock)

    assert fake.calls[0].items[0]["PK"] == {"S": "CUSTOMER#1"}
    assert fake.calls[0].items[1] == {"delete": key}
    assert fake.calls[1].items == [{"delete": key}]
    assert stats.written == 2 and failed == []


def test_backoff_grows_exponentially_with_jitter_inside_bounds():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=answering(error("ProvisionedThroughputExceededException")))

    failed, stats = run([item_row(1)], fake, clock, max_attempts=8, base_delay=0.1, max_delay=1.0)

    assert len(clock.slept) == 7  # between 8 attempts; no token bucket, so every sleep is a backoff
    for retry, slept in enumerate(clock.slept, start=1):
        ceiling = min(1.0, 0.1 * 2 ** (retry - 1))
        assert ceiling / 2 <= slept <= ceiling
    assert len(set(clock.slept)) == len(clock.slept)
    assert (stats.throttled, stats.retries, stats.batches, stats.written) == (8, 7, 8, 0)
    assert len(failed) == 1


def test_backoff_jitter_differs_between_tasks_and_never_reaches_zero():
    class Extreme(random.Random):
        def __init__(self, pick: float):
            super().__init__()
            self.pick = pick

        def uniform(self, a: float, b: float) -> float:
            return a + (b - a) * self.pick

    assert backoff_delay(1, 0.05, 5.0, Extreme(0.0)) == pytest.approx(0.025)
    assert backoff_delay(1, 0.05, 5.0, Extreme(1.0)) == pytest.approx(0.05)
    assert backoff_delay(4, 0.05, 5.0, Extreme(0.0)) == pytest.approx(0.2)
    assert backoff_delay(20, 0.05, 5.0, Extreme(1.0)) == pytest.approx(5.0)  # capped
    one = [backoff_delay(r, 0.05, 5.0, random.Random(1)) for r in range(1, 6)]
    other = [backoff_delay(r, 0.05, 5.0, random.Random(2)) for r in range(1, 6)]
    assert one != other


@pytest.mark.parametrize(
    "failure, throttled",
    [
        (answering(error("ProvisionedThroughputExceededException")), 1),
        (answering(error("ThrottlingException")), 1),
        (answering(error("RequestLimitExceeded")), 1),
        (answering(error("InternalServerError", status=500)), 0),
        (answering(error("ServiceUnavailable", status=503)), 0),
        (answering(Answer(502, "", "", {})), 0),  # a load balancer's answer, no DynamoDB body
        (raising(TransportError("ProtocolError: connection dropped")), 0),
    ],
    ids=["throughput", "throttling", "request-limit", "500", "503", "502", "dropped"],
)
def test_retryable_errors_are_resent_after_backoff(failure, throttled):
    clock = FakeClock()
    fake = FakeDynamo(clock, script=[failure])

    failed, stats = run([item_row(n) for n in range(3)], fake, clock)

    assert failed == []
    assert fake.calls[1].items == fake.calls[0].items
    assert fake.calls[1].at > fake.calls[0].at
    assert (stats.written, stats.retries, stats.throttled) == (3, 1, throttled)


# --- giving up --------------------------------------------------------------------------------


def test_exhausted_retries_yield_every_item_as_failed_with_a_reason():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=unprocess_last(MAX_BATCH))
    rows = [item_row(n) for n in range(3)]

    failed, stats = run(rows, fake, clock, max_attempts=4)

    assert len(fake.calls) == 4
    assert sorted(failed) == sorted(
        (FAILED, r.entity, r.pk, r.sk, r.item, "UnprocessedItems; gave up after 4 attempts") for r in rows
    )
    assert (stats.written, stats.throttled, stats.retries, stats.batches) == (0, 4, 3, 4)


def test_only_the_items_left_over_fail():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=unprocess_last(1))

    failed, stats = run([item_row(n) for n in range(30)], fake, clock, max_attempts=3)

    # First batch of 25: 24 written at once, then the last one is dropped twice more.
    # Second batch of 5: the same.
    assert [f[2] for f in failed] == ["CUSTOMER#24", "CUSTOMER#29"]
    assert stats.written == 28


def test_throttling_errors_that_never_stop_name_the_error_in_the_reason():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=answering(error("ThrottlingException")))

    failed, _ = run([item_row(1)], fake, clock, max_attempts=2)

    assert [f.reason for f in failed] == ["ThrottlingException; gave up after 2 attempts"]


def test_an_invalid_item_fails_alone_and_the_rest_of_its_batch_is_written():
    clock = FakeClock()

    def reject_bad(items):
        if any(i["PK"]["S"] == "CUSTOMER#bad" for i in items):
            return error("ValidationException")
        return ok(items)

    fake = FakeDynamo(clock, default=reject_bad)
    bad = Row(entity="customer", pk="CUSTOMER#bad", sk="PROFILE", item=json.dumps({"PK": {"S": "CUSTOMER#bad"}}), wcu=1)

    failed, stats = run([item_row(1), bad, item_row(2)], fake, clock)

    assert [(f.pk, f.reason) for f in failed] == [("CUSTOMER#bad", "ValidationException: ValidationException from the fake")]
    assert stats.written == 2


def test_errors_that_no_resend_can_fix_stop_the_task():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=answering(error("ResourceNotFoundException")))

    with pytest.raises(CarveError, match="ResourceNotFoundException"):
        run([item_row(1)], fake, clock)
    assert len(fake.calls) == 1


# --- rate ---------------------------------------------------------------------------------------


def test_task_rate_bounds_the_units_sent_at_every_moment():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=lambda items: ok(items, units_per_item=2.0))
    rate = 50.0

    _, stats = run([item_row(n, wcu=2) for n in range(100)], fake, clock, task_rate=rate)

    sent = 0
    for call in fake.calls:
        sent += 2 * len(call.items)
        # The bucket starts empty and every batch is paid for before it goes: never ahead of the rate.
        assert sent <= rate * call.at + 1e-9
    assert clock.now == pytest.approx(200 / rate)
    assert stats.written == 100


def test_capacity_consumed_beyond_the_estimate_slows_the_task_down():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=lambda items: ok(items, units_per_item=2.0))
    rate = 10.0

    _, stats = run([item_row(n, wcu=1) for n in range(50)], fake, clock, task_rate=rate)

    assert stats.wcu_consumed == 100.0
    # 100 units consumed, one item per call (0.05 s of 10 WCU/s is less than an item); only the
    # last item's extra unit is never waited for.
    assert len(fake.calls) == 50
    assert clock.now == pytest.approx((100 - 1) / rate)


def test_capacity_consumed_below_the_estimate_is_given_back():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=lambda items: ok(items, units_per_item=1.0))
    rate = 10.0

    _, stats = run([item_row(n, wcu=4) for n in range(50)], fake, clock, task_rate=rate)

    # Charged 4 per item up front, refunded down to the 1 DynamoDB reports: the first item waits
    # for its estimate, every later one only for the 1 unit its predecessor's refund leaves.
    assert stats.wcu_consumed == 50.0
    assert clock.now == pytest.approx((4 + 49 * 1) / rate)


def test_gsi_units_are_counted_from_consumed_capacity_by_index():
    clock = FakeClock()

    def with_index(items):
        units = 2.0 * len(items)
        return {"ConsumedCapacity": [{"TableName": TABLE, "CapacityUnits": units, "Table": {"CapacityUnits": units / 2},
                                      "GlobalSecondaryIndexes": {"GSI1": {"CapacityUnits": units / 2}}}]}

    _, stats = run([item_row(n, wcu=2) for n in range(30)], FakeDynamo(clock, default=with_index), clock)

    assert (stats.wcu_consumed, stats.wcu_indexes) == (60.0, 30.0)
    assert {c.return_consumed_capacity for c in FakeDynamo(clock).calls} <= {"INDEXES"}


def test_throttles_slow_the_task_down_and_it_recovers():
    clock = FakeClock()
    throttle = answering(error("ProvisionedThroughputExceededException"))
    fake = FakeDynamo(clock, script=[throttle, throttle, throttle])
    rate = 500.0  # 0.05 s of it is 25 units: full batches of 25 one-unit items

    _, stats = run([item_row(n, wcu=1) for n in range(200 * MAX_BATCH)], fake, clock, task_rate=rate)

    # Each call is paid for before it goes: the gap before a call is its units over the pace then.
    # Right after the throttles the pace is low (small batches, long gaps); once it has climbed
    # back, full batches go at 25 / rate again.
    successes = fake.calls[3:]
    pace_after = len(successes[1].items) / (successes[1].at - successes[0].at)
    assert pace_after < 0.8 * rate  # cut by 30 % (throttles within half a second are one event)
    assert len(successes[-2].items) == MAX_BATCH
    assert successes[-2].at - successes[-3].at == pytest.approx(MAX_BATCH / rate)
    assert stats.written == 200 * MAX_BATCH and stats.throttled == 3


def test_without_a_budget_nothing_waits():
    clock = FakeClock()
    fake = FakeDynamo(clock)

    run([item_row(n, wcu=5) for n in range(100)], fake, clock, task_rate=None)

    assert clock.slept == []


def test_an_empty_partition_reports_zeros():
    clock = FakeClock()

    failed, stats = run([], FakeDynamo(clock), clock)

    assert failed == [] and stats == TaskStats(STATS, 0, 0.0, 0, 0, 0, "{}", 0.0)


# --- signing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize("host, url", [("127.0.0.1:8000", "http://127.0.0.1:8000/"),
                                       ("dynamodb.eu-west-1.amazonaws.com", "https://dynamodb.eu-west-1.amazonaws.com/")])
def test_signatures_are_the_ones_botocore_computes(monkeypatch, token, host, url):
    """botocore's SigV4Auth is the reference: the same request at the same moment, the same headers."""
    import datetime

    from botocore import auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    from jobs.sinks.transport import sign_v4

    credentials = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    moment = datetime.datetime(2026, 11, 28, 21, 5, 9)
    monkeypatch.setattr(auth, "get_current_datetime", lambda: moment)
    body = batch_body_of([item_row(1), item_row(2)])
    target = "DynamoDB_20120810.BatchWriteItem"

    ours = sign_v4(credentials, "eu-west-1", host, "/", target, body, moment.timetuple(), {})
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
    auth.SigV4Auth(credentials, "dynamodb", "eu-west-1").add_auth(request)

    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"] == "20261128T210509Z"
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


def test_the_signing_key_is_cached_per_day_and_secret():
    from botocore.credentials import ReadOnlyCredentials

    from jobs.sinks.transport import sign_v4

    keys: dict = {}
    one = ReadOnlyCredentials("AKID", "secret-one", None)
    two = ReadOnlyCredentials("AKID", "secret-two", None)
    day = (2026, 11, 28, 12, 0, 0, 5, 332, 0)
    first = sign_v4(one, "us-east-1", "h", "/", "t", b"{}", day, keys)
    assert list(keys) == [("20261128", "secret-one")]
    assert sign_v4(one, "us-east-1", "h", "/", "t", b"{}", day, keys) == first
    assert sign_v4(two, "us-east-1", "h", "/", "t", b"{}", day, keys) != first  # rotated secret: new key
    assert list(keys) == [("20261128", "secret-two")]


def batch_body_of(rows) -> bytes:
    from jobs.sinks.writer import batch_body

    return batch_body(TABLE, list(pending_items(rows)))


def test_batches_hold_at_most_the_units_asked_for_but_always_one_item():
    rows = [item_row(n, wcu=w) for n, w in enumerate([3, 3, 3, 9, 1, 1, 1, 1])]

    sizes = [[p.wcu for p in b] for b in batches(pending_items(rows), max_units=lambda: 6)]

    assert sizes == [[3, 3], [3], [9], [1, 1, 1, 1]]


def test_a_slow_task_sends_small_batches_so_no_second_gets_a_burst():
    clock = FakeClock()
    fake = FakeDynamo(clock, default=lambda items: ok(items, units_per_item=6.0))
    rate = 200.0  # 0.05 s of it is 10 units: one 6 KB item per call

    _, stats = run([item_row(n, wcu=6) for n in range(40)], fake, clock, task_rate=rate)

    assert {len(c.items) for c in fake.calls} == {1}
    assert stats.written == 40
