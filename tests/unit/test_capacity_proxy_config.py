"""The capacity proxy's settings, fault draws, ConsumedCapacity correction and record, without a network."""

from __future__ import annotations

import pytest

from jobs.devtools.capacity_model import WriteCost
from jobs.devtools.capacity_proxy import (
    DATA_OPERATIONS,
    ProxyConfig,
    ProxyConfigError,
    ProxyCore,
    StatsRecord,
    Upstream,
    corrected_capacity,
    second_summary,
)


def core(**settings) -> ProxyCore:
    return ProxyCore(Upstream("http://127.0.0.1:9"), ProxyConfig(seed=7, **settings))  # never contacted


# --- settings ----------------------------------------------------------------------------------


def test_defaults_fault_every_data_operation_and_no_table_management():
    config = ProxyConfig()
    assert config.fault_operations == DATA_OPERATIONS
    assert {"PutItem", "BatchWriteItem", "GetItem", "Query", "Scan", "BatchGetItem"} <= config.fault_operations
    assert not {"CreateTable", "DescribeTable", "UpdateTable", "DeleteTable", "ListTables"} & config.fault_operations
    assert (config.burst_seconds, config.partition_limit, config.write_capacity) == (300.0, 1000.0, None)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"throttle_rate": 1.5}, "throttle_rate must be between 0 and 1, not 1.5"),
        ({"slow_rate": -0.1}, "slow_rate must be between 0 and 1, not -0.1"),
        ({"error_500_rate": 0.6, "drop_rate": 0.5}, "add up to 1.1"),
        ({"write_capacity": 0}, "write_capacity must be positive"),
        ({"burst_seconds": -1}, "burst_seconds must be 0 or more"),
        ({"partition_limit": 0}, "partition_limit must be positive"),
        ({"fault_operations": {"PutItem", "PutItems"}}, "unknown operation(s) in fault_operations: PutItems"),
    ],
)
def test_settings_out_of_range_are_refused_with_the_reason(settings, message):
    with pytest.raises(ProxyConfigError) as info:
        ProxyConfig(**settings)
    assert message in str(info.value)


def test_json_round_trip_and_partial_changes():
    config = ProxyConfig(write_capacity=50, fault_operations=frozenset({"PutItem"}), seed=3)
    assert ProxyConfig.from_json(config.to_json()) == config
    changed = ProxyConfig.from_json({"throttle_rate": 0.25}, base=config)
    assert (changed.throttle_rate, changed.write_capacity, changed.fault_operations) == (0.25, 50, {"PutItem"})
    with pytest.raises(ProxyConfigError, match="unknown setting.*throttle"):
        ProxyConfig.from_json({"throttle": 1})


def test_upstream_must_be_http():
    with pytest.raises(ProxyConfigError, match="http://host:port"):
        Upstream("https://dynamodb.us-east-1.amazonaws.com")


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["throttle", "error_500", "error_503"])
def test_rate_1_always_draws_that_fault(kind):
    proxy = core(**{f"{kind}_rate": 1.0})
    assert {proxy.draw_fault("GetItem", 0) for _ in range(50)} == {(kind, False)}


def test_drop_before_or_after_by_share():
    assert {core(drop_rate=1.0, drop_after_share=0.0).draw_fault("PutItem", 0)[0] for _ in range(30)} == {"drop_before"}
    assert {core(drop_rate=1.0, drop_after_share=1.0).draw_fault("PutItem", 0)[0] for _ in range(30)} == {"drop_after"}
    proxy = core(drop_rate=1.0)
    drawn = [proxy.draw_fault("PutItem", 0)[0] for _ in range(400)]
    assert set(drawn) == {"drop_before", "drop_after"}
    assert 100 < drawn.count("drop_after") < 300  # about half; the seed makes it the same every run


def test_unprocessed_applies_only_to_batch_writes_of_two_or_more():
    proxy = core(unprocessed_rate=1.0)
    assert proxy.draw_fault("BatchWriteItem", 2) == ("unprocessed", False)
    assert proxy.draw_fault("BatchWriteItem", 1) == (None, False)
    assert proxy.draw_fault("PutItem", 0) == (None, False)


def test_faults_skip_operations_not_listed():
    proxy = core(throttle_rate=1.0, slow_rate=1.0, fault_operations=frozenset({"BatchWriteItem"}))
    assert proxy.draw_fault("PutItem", 0) == (None, False)
    assert proxy.draw_fault("DescribeTable", 0) == (None, False)
    assert proxy.draw_fault("BatchWriteItem", 3) == ("throttle", True)


def test_rates_split_requests_between_faults():
    proxy = core(throttle_rate=0.5, error_503_rate=0.5)
    drawn = [proxy.draw_fault("Scan", 0)[0] for _ in range(400)]
    assert set(drawn) == {"throttle", "error_503"}  # together 1: every request gets one of them


def test_the_same_seed_draws_the_same_faults():
    a, b = core(throttle_rate=0.3, error_500_rate=0.3), core(throttle_rate=0.3, error_500_rate=0.3)
    drawn = [a.draw_fault("PutItem", 0) for _ in range(100)]
    assert drawn == [b.draw_fault("PutItem", 0) for _ in range(100)]
    assert {fault for fault, _ in drawn} == {None, "throttle", "error_500"}


def test_split_is_a_non_empty_strict_subset():
    proxy = core()
    for count in (2, 3, 25):
        for _ in range(200):
            chosen = proxy.split(count)
            assert 0 < len(chosen) < count and chosen <= set(range(count))


# --- ConsumedCapacity --------------------------------------------------------------------------


def test_capacity_adds_index_units_dynalite_leaves_out():
    costs = [WriteCost(1, {"GSI1": 1}, "a"), WriteCost(2, {}, "b"), WriteCost(1, {"GSI1": 1, "GSI2": 1}, "c")]
    dynalite_total = {"CapacityUnits": 4.0, "TableName": "T"}
    assert corrected_capacity(dynalite_total, "T", costs, "TOTAL") == {"TableName": "T", "CapacityUnits": 7.0}
    assert corrected_capacity({**dynalite_total, "Table": {"CapacityUnits": 4.0}}, "T", costs, "INDEXES") == {
        "TableName": "T",
        "CapacityUnits": 7.0,
        "Table": {"CapacityUnits": 4.0},
        "GlobalSecondaryIndexes": {"GSI1": {"CapacityUnits": 2.0}, "GSI2": {"CapacityUnits": 1.0}},
    }


def test_capacity_keeps_the_larger_table_figure():
    costs = [WriteCost(1, {}, "a")]
    # dynalite knows the replaced item was bigger (DynamoDB charges the larger of old and new)...
    assert corrected_capacity({"CapacityUnits": 3.0}, "T", costs, "TOTAL")["CapacityUnits"] == 3.0
    # ...and counts 'ë' as one byte where DynamoDB counts two.
    assert corrected_capacity({"CapacityUnits": 1.0}, "T", [WriteCost(2, {}, "a")], "TOTAL")["CapacityUnits"] == 2.0


# --- the record --------------------------------------------------------------------------------


def test_record_per_table_and_second():
    wall = iter([100.2, 100.9, 101.1, 101.5, 101.7]).__next__
    record = StatsRecord(wall=wall)
    record.add("A", requests=1, accepted_items=25, accepted_wcu=30)
    record.add("A", "throttle", requests=1, throttled_requests=1)
    record.add("A", requests=1, accepted_items=5, accepted_wcu=5, partial_responses=1)
    record.add("B", "error_500", requests=1)
    record.add("A", "error_500", requests=1)

    snapshot = record.snapshot()

    assert snapshot["A"]["seconds"] == [
        {"second": 100, "requests": 2, "accepted_items": 25, "accepted_wcu": 30, "throttled_requests": 1,
         "partial_responses": 0, "faults": {"throttle": 1}},
        {"second": 101, "requests": 2, "accepted_items": 5, "accepted_wcu": 5, "throttled_requests": 0,
         "partial_responses": 1, "faults": {"error_500": 1}},
    ]
    assert snapshot["A"]["totals"] == {"requests": 4, "accepted_items": 30, "accepted_wcu": 35,
                                       "throttled_requests": 1, "partial_responses": 1,
                                       "faults": {"throttle": 1, "error_500": 1}}
    assert [r["second"] for r in record.snapshot(since=101)["A"]["seconds"]] == [101]
    record.reset()
    assert record.snapshot() == {}


def test_second_summary_line():
    snapshot = {"tables": {
        "Orders": {"capacity": {"write_capacity": 100.0},
                   "seconds": [{"second": 5, "requests": 4, "accepted_items": 90, "accepted_wcu": 98,
                                "throttled_requests": 1, "partial_responses": 2, "faults": {"error_503": 1}}]},
        "Quiet": {"capacity": {"write_capacity": None}, "seconds": []},
    }}
    line = second_summary(snapshot, 5)
    assert line.endswith("Orders: 98/100 WCU, 90 items, 4 requests, 1 throttled, 2 partial, faults: error_503 1")
    assert second_summary(snapshot, 6) is None
