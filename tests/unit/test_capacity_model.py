"""DynamoDB's write-capacity rules (jobs.capacity_model) on hand-computed items and a hand-moved clock.

Every expected size below is worked out in the comment next to it from the published rules, not
from the code under test.
"""

from __future__ import annotations

import base64

import pytest

from jobs.devtools.capacity_model import (
    CapacityBucket,
    IndexKey,
    TableBudget,
    TableInfo,
    WriteCost,
    delete_cost,
    put_cost,
    update_cost,
)
from tests.support.fakes import FakeClock
from transforms.wire import item_size, number_size, value_size, write_units


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


STORE = TableInfo(
    "Store", "PK", "SK",
    (IndexKey("GSI1", "GSI1PK", "GSI1SK"), IndexKey("ByEmail", "email")),
    write_capacity=10.0,
)


def ones(count: int, partition: str = "p") -> list[WriteCost]:
    return [WriteCost(1, {}, partition) for _ in range(count)]


# --- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, size",
    [
        ("0", 2),  # one digit: ceil(1/2) + 1
        ("7", 2),
        ("12.50", 3),  # digits 125: ceil(3/2) + 1
        ("-0.00120", 2),  # digits 12 (leading and trailing zeros trimmed): 1 + 1
        ("100", 2),  # digits 1
        ("1E+10", 2),  # the exponent is not digits
        ("123456789", 6),  # 9 digits: 5 + 1
        ("12345678901234567890123456789012345678", 20),  # 38 digits: 19 + 1
    ],
)
def test_number_is_one_byte_per_two_significant_digits_plus_one(text, size):
    assert number_size(text) == size


@pytest.mark.parametrize(
    "value, size",
    [
        ({"S": "abc"}, 3),
        ({"S": "Zoë"}, 4),  # ë is two bytes in UTF-8
        ({"S": "€"}, 3),
        ({"S": ""}, 0),
        ({"B": b64(b"\x00")}, 1),  # 'AA==': raw bytes count, not the base64 text
        ({"B": b64(b"\x00\x01\x02\x03\x04")}, 5),  # 'AAECAwQ='
        ({"B": b64(b"\xff" * 6)}, 6),  # no padding
        ({"BOOL": False}, 1),
        ({"NULL": True}, 1),
        ({"SS": ["a", "bé"]}, 4),  # 1 + 3
        ({"NS": ["1", "100", "0.5"]}, 6),  # 2 + 2 + 2
        ({"BS": [b64(b"ab"), b64(b"cde")]}, 5),
        ({"L": []}, 3),
        ({"L": [{"S": "ab"}, {"N": "7"}]}, 9),  # 3 + (1 + 2) + (1 + 2)
        ({"M": {"x": {"BOOL": True}}}, 6),  # 3 + 1 + name 1 + 1
        ({"M": {"a": {"L": [{"M": {"bb": {"S": "c"}}}]}}}, 16),  # 3 + 1 + 1 + [3 + 1 + (3 + 1 + 2 + 1)]
    ],
)
def test_value_sizes(value, size):
    assert value_size(value) == size


def test_item_size_counts_names_and_values():
    item = {
        "PK": {"S": "CUSTOMER#1"},  # 2 + 10 = 12
        "name": {"S": "Zoë"},  # 4 + 4 = 8
        "total": {"N": "12.50"},  # 5 + 3 = 8
        "blob": {"B": b64(b"\x00\x01\x02\x03\x04")},  # 4 + 5 = 9
        "ok": {"BOOL": True},  # 2 + 1 = 3
        "gone": {"NULL": True},  # 4 + 1 = 5
        "tags": {"SS": ["a", "bé"]},  # 4 + 4 = 8
        "nums": {"NS": ["1", "100", "0.5"]},  # 4 + 6 = 10
        "lines": {"L": [{"S": "ab"}, {"N": "7"}, {"M": {"x": {"BOOL": False}}}]},  # 5 + 3 + 3 + 3 + 7 = 21
        "ünï": {"S": "x"},  # name: 5 bytes, + 1 = 6
    }
    assert item_size(item) == 90


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match="unknown DynamoDB attribute type 'X'"):
        value_size({"X": "1"})


def test_one_write_unit_per_started_kilobyte():
    exactly_1kb = {"PK": {"S": "x" * 1022}}  # 2 + 1022 = 1024
    one_byte_more = {"PK": {"S": "x" * 1023}}
    assert [write_units(item_size(exactly_1kb)), write_units(item_size(one_byte_more))] == [1, 2]
    assert write_units(0) == 1
    assert write_units(400 * 1024) == 400


# --- costs -------------------------------------------------------------------------------------


def test_put_costs_the_same_again_for_every_index_holding_the_item():
    item = {
        "PK": {"S": "C#1"}, "SK": {"S": "PROFILE"},
        "GSI1PK": {"S": "EMAIL#a@b"},  # no GSI1SK: not in GSI1
        "email": {"S": "a@b"},  # in ByEmail
        "pad": {"S": "x" * 1500},  # makes the item 2 KB: 2 units
    }
    cost = put_cost(STORE, item)
    assert cost.table_units == 2
    assert dict(cost.index_units) == {"ByEmail": 2}
    assert cost.total == 4
    assert cost.partition == ("S", "C#1")


def test_put_in_both_indexes_and_in_none():
    both = {"PK": {"S": "a"}, "SK": {"S": "b"}, "GSI1PK": {"S": "c"}, "GSI1SK": {"S": "d"}, "email": {"S": "e"}}
    neither = {"PK": {"S": "a"}, "SK": {"S": "b"}}
    assert put_cost(STORE, both).total == 3
    assert put_cost(STORE, neither).total == 1


def test_delete_is_charged_by_its_key():
    cost = delete_cost(STORE, {"PK": {"S": "a"}, "SK": {"S": "b"}})
    assert (cost.table_units, dict(cost.index_units), cost.partition) == (1, {}, ("S", "a"))


def test_update_costs_key_and_values_and_lands_in_indexes_it_names():
    request = {
        "Key": {"PK": {"S": "A"}, "SK": {"S": "B"}},  # 2 + 1 + 2 + 1 = 6
        "UpdateExpression": "SET #e = :e, pad = :p",
        "ExpressionAttributeNames": {"#e": "email"},  # 5
        "ExpressionAttributeValues": {":e": {"S": "x@y"}, ":p": {"S": "p" * 1100}},  # 3 + 1100
    }
    cost = update_cost(STORE, request)  # 1114 bytes: 2 units
    assert (cost.table_units, dict(cost.index_units)) == (2, {"ByEmail": 2})


def test_update_with_attribute_updates():
    request = {
        "Key": {"PK": {"S": "A"}, "SK": {"S": "B"}},
        "AttributeUpdates": {"GSI1PK": {"Action": "PUT", "Value": {"S": "g"}},
                             "GSI1SK": {"Action": "PUT", "Value": {"S": "h"}}},
    }
    cost = update_cost(STORE, request)
    assert (cost.table_units, dict(cost.index_units)) == (1, {"GSI1": 1})


def test_table_info_from_describe_table():
    provisioned = TableInfo.from_description({
        "TableName": "T1", "TableStatus": "ACTIVE",
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 7},
        "GlobalSecondaryIndexes": [{"IndexName": "G", "KeySchema": [{"AttributeName": "E", "KeyType": "HASH"}]}],
    })
    on_demand = TableInfo.from_description({
        "TableName": "T2", "TableStatus": "UPDATING",
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}],
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
    })
    assert provisioned == TableInfo("T1", "PK", "SK", (IndexKey("G", "E"),), 7.0, True)
    assert on_demand == TableInfo("T2", "PK", None, (), None, False)


# --- buckets and the admission decision --------------------------------------------------------


def test_burst_0_holds_exactly_one_second_of_capacity():
    clock = FakeClock(1000.0)
    budget = TableBudget(10, burst_seconds=0, partition_limit=None, clock=clock)
    assert budget.admit(ones(11)) == [True] * 10 + [False]

    clock.advance(3600)  # idle for an hour buys no burst

    assert budget.admit(ones(11)) == [True] * 10 + [False]


def test_burst_300_keeps_five_minutes_of_unused_capacity():
    clock = FakeClock(1000.0)
    budget = TableBudget(10, burst_seconds=300, partition_limit=None, clock=clock)
    hundreds = [WriteCost(100, {}, f"k{i}") for i in range(31)]
    assert budget.admit(hundreds) == [True] * 30 + [False]  # 3,000 units of credit, spent

    clock.advance(5)  # refills at 10 WCU/s

    assert budget.admit([WriteCost(50, {}, "a"), WriteCost(1, {}, "b")]) == [True, False]

    clock.advance(10_000)

    assert budget.available == pytest.approx(3000)


def test_refill_is_continuous():
    clock = FakeClock(1000.0)
    budget = TableBudget(10, burst_seconds=0, partition_limit=None, clock=clock)
    budget.admit(ones(10))
    clock.advance(0.25)
    assert budget.admit(ones(3)) == [True, True, False]  # 2.5 units back


def test_partial_accept_takes_what_fits_in_order_and_later_smaller_writes_still_fit():
    clock = FakeClock(1000.0)
    budget = TableBudget(5, burst_seconds=0, partition_limit=None, clock=clock)
    costs = [WriteCost(units, {}, f"k{i}") for i, units in enumerate([1, 2, 1, 3, 1, 1])]
    assert budget.admit(costs) == [True, True, True, False, True, False]
    assert budget.available == pytest.approx(0)


def test_nothing_is_charged_for_a_refused_write():
    clock = FakeClock(1000.0)
    budget = TableBudget(5, burst_seconds=0, partition_limit=None, clock=clock)
    costs = [WriteCost(2, {}, "a"), WriteCost(4, {}, "b"), WriteCost(3, {}, "c")]
    assert budget.admit(costs) == [True, False, True]


def test_index_units_count_against_the_table():
    clock = FakeClock(1000.0)
    budget = TableBudget(5, burst_seconds=0, partition_limit=None, clock=clock)
    with_index = WriteCost(2, {"GSI1": 2}, "a")  # 4 of the table's 5
    assert budget.admit([with_index, with_index, WriteCost(1, {}, "b")]) == [True, False, True]


def test_per_key_limit_applies_to_each_partition_key_also_on_demand():
    clock = FakeClock(1000.0)
    budget = TableBudget(None, burst_seconds=300, partition_limit=1000, clock=clock)  # on-demand
    big = [WriteCost(400, {}, "hot") for _ in range(3)]
    assert budget.admit(big) == [True, True, False]  # 800 of 1,000 taken; 400 more do not fit
    assert budget.admit([WriteCost(400, {}, "other")]) == [True]  # its own bucket
    assert budget.available is None

    clock.advance(0.5)  # +500 for "hot": 700

    assert budget.admit([WriteCost(400, {}, "hot"), WriteCost(400, {}, "hot")]) == [True, False]


def test_key_bucket_is_charged_with_the_table_part_only():
    clock = FakeClock(1000.0)
    budget = TableBudget(None, burst_seconds=0, partition_limit=4, clock=clock)
    # 3 table units + 3 index units: the key's 4 cover the 3 table units, twice would not.
    assert budget.admit([WriteCost(3, {"G": 3}, "k"), WriteCost(3, {"G": 3}, "k")]) == [True, False]


def test_both_buckets_must_cover_the_write():
    clock = FakeClock(1000.0)
    budget = TableBudget(100, burst_seconds=0, partition_limit=2, clock=clock)
    assert budget.admit(ones(3, "k")) == [True, True, False]  # the key's limit, not the table's
    assert budget.available == pytest.approx(98)


def test_a_write_bigger_than_the_bucket_goes_through_when_it_is_full():
    clock = FakeClock(1000.0)
    budget = TableBudget(1, burst_seconds=0, partition_limit=None, clock=clock)
    assert budget.admit([WriteCost(5, {}, "a"), WriteCost(1, {}, "b")]) == [True, False]
    clock.advance(0.5)
    assert budget.admit([WriteCost(5, {}, "a")]) == [False]  # half full is not full
    clock.advance(0.5)
    assert budget.admit([WriteCost(5, {}, "a")]) == [True]


def test_new_capacity_applies_from_the_change_on():
    clock = FakeClock(1000.0)
    budget = TableBudget(2, burst_seconds=0, partition_limit=None, clock=clock)
    assert budget.admit(ones(3)) == [True, True, False]

    budget.configure(10, burst_seconds=0, partition_limit=None)  # UpdateTable to 10 WCU
    clock.advance(1)

    assert budget.admit(ones(11)) == [True] * 10 + [False]


def test_lower_capacity_cuts_the_saved_burst():
    clock = FakeClock(1000.0)
    budget = TableBudget(10, burst_seconds=300, partition_limit=None, clock=clock)
    budget.configure(1, burst_seconds=300, partition_limit=None)
    assert budget.available == pytest.approx(300)


def test_on_demand_to_provisioned_and_back():
    clock = FakeClock(1000.0)
    budget = TableBudget(None, burst_seconds=0, partition_limit=None, clock=clock)
    assert budget.admit(ones(50)) == [True] * 50
    budget.configure(3, burst_seconds=0, partition_limit=None)
    assert budget.admit(ones(4)) == [True, True, True, False]
    budget.configure(None, burst_seconds=0, partition_limit=None)
    assert budget.admit(ones(4)) == [True] * 4


def test_refund_gives_back_what_was_not_written():
    clock = FakeClock(1000.0)
    budget = TableBudget(5, burst_seconds=0, partition_limit=1000, clock=clock)
    taken = ones(5, "k")
    assert budget.admit(taken) == [True] * 5
    budget.refund(taken[:2])
    assert budget.admit(ones(3, "k")) == [True, True, False]


def test_idle_partition_buckets_are_forgotten():
    clock = FakeClock(1000.0)
    budget = TableBudget(None, burst_seconds=0, partition_limit=1000, clock=clock)
    budget.admit([WriteCost(1, {}, f"key{i}") for i in range(100)])
    assert budget.tracked_partitions == 100

    clock.advance(TableBudget.PRUNE_EVERY)
    budget.admit([WriteCost(1, {}, "fresh")])

    assert budget.tracked_partitions == 1


def test_bucket_refuses_nonsense():
    with pytest.raises(ValueError):
        CapacityBucket(0, 1, FakeClock(1000.0))
