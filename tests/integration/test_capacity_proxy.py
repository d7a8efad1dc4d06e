"""The capacity proxy in front of a real dynalite, driven by boto3 low-level clients without retries.

The proxy runs on a clock the test moves by hand: buckets refill only when a test says so, so
every count below is exact and none depends on how fast the machine is. What the proxy says it
let through is checked against what dynalite really holds.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from jobs.devtools.capacity_proxy import Proxy, ProxyConfig, spawn_proxy, start_proxy
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.integration

NO_RETRIES = Config(region_name="us-east-1", retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=20)
THROTTLED = "ProvisionedThroughputExceededException"


def client(url: str) -> Any:
    return boto3.session.Session().client("dynamodb", endpoint_url=url, config=NO_RETRIES)


def wait_active(dynamodb: Any, name: str) -> dict[str, Any]:
    for _ in range(400):
        table = dynamodb.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE" and all(
            g["IndexStatus"] == "ACTIVE" for g in table.get("GlobalSecondaryIndexes", [])
        ):
            return table
        time.sleep(0.05)  # polling until dynalite's 500 ms CREATING/UPDATING is over; nothing is timed
    raise AssertionError(f"{name} did not become ACTIVE")


def item(pk: str, units: int = 1, sk: str = "A", **extra: Any) -> dict[str, Any]:
    """An item of exactly `units` write units (without indexes): padded past units-1 KB."""
    return {"PK": {"S": pk}, "SK": {"S": sk}, "pad": {"S": "x" * (1024 * (units - 1) + 10)}, **extra}


def put(entry: dict[str, Any]) -> dict[str, Any]:
    return {"PutRequest": {"Item": entry}}


def stored_keys(dynamodb: Any, table: str) -> set[str]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="PK, SK")
    return {f"{i['PK']['S']}/{i['SK']['S']}" for page in pages for i in page["Items"]}


def key(entry: dict[str, Any]) -> str:
    e = entry["PutRequest"]["Item"] if "PutRequest" in entry else entry
    return f"{e['PK']['S']}/{e['SK']['S']}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(50_000.0)


@pytest.fixture
def direct(dynamodb_endpoint) -> Any:
    """A client talking to dynalite itself, for checking what really got written."""
    return client(dynamodb_endpoint)


@pytest.fixture
def tables(direct) -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    for name in created:
        direct.delete_table(TableName=name)


def create_table(dynamodb: Any, created: list[str], wcu: int | None, index: bool = False) -> str:
    """A table with PK/SK (and GSI1 on GSI1PK/GSI1SK); provisioned with wcu, else on-demand."""
    name = f"Proxy{uuid.uuid4().hex[:10]}"
    throughput = {"ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": wcu}} if wcu else {}
    attributes = ["PK", "SK"] + (["GSI1PK", "GSI1SK"] if index else [])
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        **({"BillingMode": "PROVISIONED", **throughput} if wcu else {"BillingMode": "PAY_PER_REQUEST"}),
    }
    if index:
        request["GlobalSecondaryIndexes"] = [{
            "IndexName": "GSI1",
            "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"},
                          {"AttributeName": "GSI1SK", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
            **throughput,
        }]
    dynamodb.create_table(**request)
    created.append(name)
    wait_active(dynamodb, name)
    return name


@pytest.fixture
def proxy_for(dynamodb_endpoint, clock) -> Iterator[Any]:
    started: list[Proxy] = []

    def start(**settings: Any) -> Proxy:
        proxy = start_proxy(dynamodb_endpoint, ProxyConfig(**settings), clock=clock)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def error_code(exc: pytest.ExceptionInfo) -> tuple[str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# --- capacity ----------------------------------------------------------------------------------


def test_batch_over_budget_comes_back_partly_unprocessed(proxy_for, direct, tables, clock):
    proxy = proxy_for(burst_seconds=0)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=5)
    # 1, 2, 1, 3, 1, 1 units against 5: the first three fit (4), the 3-unit one does not, the
    # next 1-unit one does (5), the last finds the bucket empty.
    batch = [put(item(f"k{i}", units)) for i, units in enumerate([1, 2, 1, 3, 1, 1])]

    response = dynamodb.batch_write_item(RequestItems={table: batch}, ReturnConsumedCapacity="TOTAL")

    assert response["UnprocessedItems"] == {table: [batch[3], batch[5]]}  # exactly as sent
    assert response["ConsumedCapacity"] == [{"TableName": table, "CapacityUnits": 5.0}]
    for i in range(len(batch)):
        got = direct.get_item(TableName=table, Key={"PK": {"S": f"k{i}"}, "SK": {"S": "A"}})
        assert ("Item" in got) == (i in (0, 1, 2, 4)), f"item k{i}"

    clock.advance(1)  # 5 units back: the two left over (3 + 1) fit now
    again = dynamodb.batch_write_item(RequestItems=response["UnprocessedItems"])

    assert again["UnprocessedItems"] == {}
    assert len(stored_keys(direct, table)) == 6


def test_batch_with_nothing_that_fits_is_refused_whole(proxy_for, direct, tables):
    proxy = proxy_for(burst_seconds=0)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=3)
    dynamodb.batch_write_item(RequestItems={table: [put(item("a", 3))]})  # the bucket is empty now

    with pytest.raises(ClientError) as exc:
        dynamodb.batch_write_item(RequestItems={table: [put(item("b")), put(item("c"))]})

    assert error_code(exc) == (THROTTLED, 400)
    assert stored_keys(direct, table) == {"a/A"}


def test_single_writes_over_budget_get_the_exception(proxy_for, direct, tables, clock):
    proxy = proxy_for(burst_seconds=0)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=2)
    dynamodb.put_item(TableName=table, Item=item("first", 2))

    refused = []
    for call in (
        lambda: dynamodb.put_item(TableName=table, Item=item("second")),
        lambda: dynamodb.update_item(TableName=table, Key={"PK": {"S": "first"}, "SK": {"S": "A"}},
                                     UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {"N": "1"}}),
        lambda: dynamodb.delete_item(TableName=table, Key={"PK": {"S": "first"}, "SK": {"S": "A"}}),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        refused.append(error_code(exc))

    assert refused == [(THROTTLED, 400)] * 3
    assert direct.get_item(TableName=table, Key={"PK": {"S": "first"}, "SK": {"S": "A"}})["Item"]["pad"]
    assert stored_keys(direct, table) == {"first/A"}  # nothing updated or deleted either
    clock.advance(0.5)  # one unit back
    dynamodb.put_item(TableName=table, Item=item("second"))
    assert stored_keys(direct, table) == {"first/A", "second/A"}


def test_gsi_items_are_charged_for_the_index_too(proxy_for, direct, tables):
    proxy = proxy_for(burst_seconds=0)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=4, index=True)
    indexed = {"GSI1PK": {"S": "EMAIL#x"}, "GSI1SK": {"S": "P"}}
    half_indexed = {"GSI1PK": {"S": "EMAIL#y"}}  # no GSI1SK: not in the index
    # a: 1 + 1 (index) = 2, b: 1, c: 2 (does not fit in the 1 left), d: 1 (half indexed, no charge)
    batch = [put(item("a", **indexed)), put(item("b")), put(item("c", **indexed)), put(item("d", **half_indexed))]

    response = dynamodb.batch_write_item(RequestItems={table: batch}, ReturnConsumedCapacity="INDEXES")

    assert response["UnprocessedItems"] == {table: [batch[2]]}
    assert stored_keys(direct, table) == {"a/A", "b/A", "d/A"}
    # dynalite 4.0.0 itself reports 3 table units and no index at all.
    assert response["ConsumedCapacity"] == [{
        "TableName": table, "CapacityUnits": 4.0, "Table": {"CapacityUnits": 3.0},
        "GlobalSecondaryIndexes": {"GSI1": {"CapacityUnits": 1.0}},
    }]
    assert proxy.stats()["tables"][table]["totals"]["accepted_wcu"] == 4


def test_put_item_consumed_capacity_with_index(proxy_for, tables):
    proxy = proxy_for()
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=100, index=True)
    response = dynamodb.put_item(TableName=table, Item=item("a", 3, GSI1PK={"S": "g"}, GSI1SK={"S": "h"}),
                                 ReturnConsumedCapacity="INDEXES")
    assert response["ConsumedCapacity"] == {
        "TableName": table, "CapacityUnits": 6.0, "Table": {"CapacityUnits": 3.0},
        "GlobalSecondaryIndexes": {"GSI1": {"CapacityUnits": 3.0}},
    }


def test_consumed_capacity_counts_utf8_bytes(proxy_for, direct, tables):
    proxy = proxy_for()
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=100)
    umlauts = {"PK": {"S": "a"}, "SK": {"S": "A"}, "t": {"S": "ë" * 1000}}  # 2,006 bytes in UTF-8

    assert direct.put_item(TableName=table, Item=umlauts, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"][
        "CapacityUnits"] == 1.0  # dynalite counts UTF-16 code units
    response = dynamodb.put_item(TableName=table, Item=umlauts, ReturnConsumedCapacity="TOTAL")

    assert response["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 2.0}


def test_per_partition_key_limit_on_an_on_demand_table(proxy_for, direct, tables):
    proxy = proxy_for(partition_limit=3)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=None)
    batch = [put(item("hot", sk=f"S{i}")) for i in range(5)] + [put(item("cold"))]

    response = dynamodb.batch_write_item(RequestItems={table: batch})

    assert response["UnprocessedItems"] == {table: batch[3:5]}
    assert stored_keys(direct, table) == {"hot/S0", "hot/S1", "hot/S2", "cold/A"}
    assert proxy.stats()["tables"][table]["capacity"]["source"] == "on-demand"


def test_update_table_changes_the_enforced_capacity(proxy_for, direct, tables, clock):
    proxy = proxy_for(burst_seconds=0)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=2)
    batch = [put(item(f"k{i}")) for i in range(12)]
    first = dynamodb.batch_write_item(RequestItems={table: batch})
    assert len(first["UnprocessedItems"][table]) == 10

    dynamodb.update_table(TableName=table, ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 10})
    wait_active(dynamodb, table)
    clock.advance(1)  # still at the old rate until the proxy hears of the change: 2 units
    second = dynamodb.batch_write_item(RequestItems=first["UnprocessedItems"])
    clock.advance(1)  # a full second at 10 WCU/s
    third = dynamodb.batch_write_item(RequestItems=second["UnprocessedItems"])

    assert len(second["UnprocessedItems"][table]) == 8
    assert third["UnprocessedItems"] == {}  # the last 8 of 10 possible
    assert len(stored_keys(direct, table)) == 12
    capacity = proxy.stats()["tables"][table]["capacity"]
    assert (capacity["write_capacity"], capacity["source"]) == (10.0, "provisioned")


def test_write_capacity_setting_overrides_the_table(proxy_for, direct, tables):
    proxy = proxy_for(burst_seconds=0, write_capacity=3)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=1000)
    response = dynamodb.batch_write_item(RequestItems={table: [put(item(f"k{i}")) for i in range(5)]})
    assert len(response["UnprocessedItems"][table]) == 2
    assert proxy.stats()["tables"][table]["capacity"]["source"] == "override"


def test_the_record_adds_up_to_what_dynalite_holds(proxy_for, direct, tables, clock):
    proxy = proxy_for(burst_seconds=0)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=7)
    units = {f"k{i}": 1 + i % 3 for i in range(30)}
    pending = [put(item(pk, n)) for pk, n in units.items()]
    calls = throttled = 0
    while pending:
        for start in range(0, len(pending), 25):
            calls += 1
            try:
                response = dynamodb.batch_write_item(RequestItems={table: pending[start:start + 25]})
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == THROTTLED
                throttled += 1
                continue
            left = response["UnprocessedItems"].get(table, [])
            pending = pending[:start] + left + pending[start + 25:]
            break
        clock.advance(0.5)

    stored = {k.split("/")[0] for k in stored_keys(direct, table)}
    record = proxy.stats()["tables"][table]
    seconds = record["seconds"]
    assert stored == set(units)
    assert sum(r["accepted_wcu"] for r in seconds) == sum(units.values()) == record["totals"]["accepted_wcu"]
    assert sum(r["accepted_items"] for r in seconds) == 30
    assert sum(r["requests"] for r in seconds) == calls
    assert sum(r["throttled_requests"] for r in seconds) == throttled
    assert all(isinstance(r["second"], int) for r in seconds)


# --- faults ------------------------------------------------------------------------------------


@pytest.fixture
def on_demand(direct, tables) -> str:
    return create_table(direct, tables, wcu=None)


@pytest.mark.parametrize("kind, code, status", [
    ("throttle", THROTTLED, 400),
    ("error_500", "InternalServerError", 500),
    ("error_503", "ServiceUnavailable", 503),
])
def test_error_faults(proxy_for, direct, on_demand, kind, code, status):
    proxy = proxy_for(**{f"{kind}_rate": 1.0})
    dynamodb = client(proxy.url)
    calls = [
        lambda: dynamodb.put_item(TableName=on_demand, Item=item("a")),
        lambda: dynamodb.batch_write_item(RequestItems={on_demand: [put(item("b")), put(item("c"))]}),
        lambda: dynamodb.get_item(TableName=on_demand, Key={"PK": {"S": "a"}, "SK": {"S": "A"}}),
        lambda: dynamodb.query(TableName=on_demand, KeyConditionExpression="PK = :p",
                               ExpressionAttributeValues={":p": {"S": "a"}}),
        lambda: dynamodb.scan(TableName=on_demand),
    ]
    answers = []
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        answers.append(error_code(exc))

    assert answers == [(code, status)] * 5
    assert stored_keys(direct, on_demand) == set()  # nothing was forwarded
    assert dynamodb.describe_table(TableName=on_demand)["Table"]["TableStatus"] == "ACTIVE"  # management is spared
    totals = proxy.stats()["tables"][on_demand]["totals"]
    assert totals["faults"] == {kind: 5}
    assert totals["throttled_requests"] == (5 if kind == "throttle" else 0)


def test_dropped_before_forwarding_never_writes(proxy_for, direct, on_demand):
    proxy = proxy_for(drop_rate=1.0, drop_after_share=0.0)
    with pytest.raises(ConnectionClosedError):
        client(proxy.url).put_item(TableName=on_demand, Item=item("a"))
    assert stored_keys(direct, on_demand) == set()
    assert proxy.stats()["tables"][on_demand]["totals"]["faults"] == {"drop_before": 1}


def test_dropped_after_forwarding_leaves_the_write_done(proxy_for, direct, on_demand):
    proxy = proxy_for(drop_rate=1.0, drop_after_share=1.0)
    dynamodb = client(proxy.url)
    with pytest.raises(ConnectionClosedError):
        dynamodb.put_item(TableName=on_demand, Item=item("a"))
    with pytest.raises(ConnectionClosedError):
        dynamodb.batch_write_item(RequestItems={on_demand: [put(item("b")), put(item("c"))]})
    assert stored_keys(direct, on_demand) == {"a/A", "b/A", "c/A"}
    totals = proxy.stats()["tables"][on_demand]["totals"]
    assert (totals["faults"], totals["accepted_items"]) == ({"drop_after": 2}, 3)


def test_partial_unprocessed_fault(proxy_for, direct, on_demand):
    proxy = proxy_for(unprocessed_rate=1.0, seed=11)
    dynamodb = client(proxy.url)
    batch = [put(item(f"k{i:02d}")) for i in range(25)]

    response = dynamodb.batch_write_item(RequestItems={on_demand: batch})

    returned = response["UnprocessedItems"][on_demand]
    assert 0 < len(returned) < 25
    assert all(entry in batch for entry in returned)
    assert stored_keys(direct, on_demand) == {key(e) for e in batch} - {key(e) for e in returned}
    totals = proxy.stats()["tables"][on_demand]["totals"]
    assert (totals["faults"], totals["partial_responses"], totals["accepted_items"]) == (
        {"unprocessed": 1}, 1, 25 - len(returned))


def test_slow_answers_still_answer(proxy_for, direct, on_demand):
    proxy = proxy_for(slow_rate=1.0, slow_seconds=0.01)
    client(proxy.url).put_item(TableName=on_demand, Item=item("a"))
    assert stored_keys(direct, on_demand) == {"a/A"}
    assert proxy.stats()["tables"][on_demand]["totals"]["faults"] == {"slow": 1}


def test_faults_apply_only_to_the_operations_listed(proxy_for, direct, on_demand):
    proxy = proxy_for(throttle_rate=1.0, fault_operations=frozenset({"GetItem"}))
    dynamodb = client(proxy.url)
    dynamodb.put_item(TableName=on_demand, Item=item("a"))
    with pytest.raises(ClientError) as exc:
        dynamodb.get_item(TableName=on_demand, Key={"PK": {"S": "a"}, "SK": {"S": "A"}})
    assert error_code(exc) == (THROTTLED, 400)
    assert stored_keys(direct, on_demand) == {"a/A"}


# --- a proxy in its own process, configured at run time ------------------------------------------


def test_separate_process_configured_over_http(dynamodb_endpoint, direct, on_demand):
    config = ProxyConfig(throttle_rate=1.0, fault_operations=frozenset({"PutItem"}))
    with spawn_proxy(dynamodb_endpoint, config) as proxy:
        dynamodb = client(proxy.url)
        with pytest.raises(ClientError) as exc:
            dynamodb.put_item(TableName=on_demand, Item=item("a"))
        assert error_code(exc) == (THROTTLED, 400)

        config = proxy.configure(throttle_rate=0.0)
        dynamodb.put_item(TableName=on_demand, Item=item("b"))

        totals = proxy.stats()["tables"][on_demand]["totals"]
        assert config.throttle_rate == 0.0
        assert (totals["requests"], totals["throttled_requests"], totals["accepted_items"]) == (2, 1, 1)
        assert stored_keys(direct, on_demand) == {"b/A"}
        proxy.reset()
        assert proxy.stats()["tables"] == {}
    assert proxy.process.returncode is not None


def test_a_write_the_upstream_refuses_costs_nothing(proxy_for, direct, tables):
    proxy = proxy_for(burst_seconds=0)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=2)
    with pytest.raises(ClientError) as exc:
        dynamodb.put_item(TableName=table, Item=item("bad", tags={"SS": []}))  # DynamoDB refuses empty sets
    assert error_code(exc) == ("ValidationException", 400)

    dynamodb.put_item(TableName=table, Item=item("a"))
    dynamodb.put_item(TableName=table, Item=item("b"))  # the refused write's unit was given back

    assert stored_keys(direct, table) == {"a/A", "b/A"}
    assert proxy.stats()["tables"][table]["totals"]["accepted_wcu"] == 2


def test_a_failed_condition_still_costs_its_units(proxy_for, direct, tables):
    proxy = proxy_for(burst_seconds=0)
    dynamodb = client(proxy.url)
    table = create_table(dynamodb, tables, wcu=3)
    dynamodb.put_item(TableName=table, Item=item("a"))
    with pytest.raises(ClientError) as exc:
        dynamodb.put_item(TableName=table, Item=item("a"), ConditionExpression="attribute_not_exists(PK)")
    assert error_code(exc) == ("ConditionalCheckFailedException", 400)

    dynamodb.put_item(TableName=table, Item=item("b"))  # the third unit
    with pytest.raises(ClientError) as exc:
        dynamodb.put_item(TableName=table, Item=item("c"))

    assert error_code(exc) == (THROTTLED, 400)
    totals = proxy.stats()["tables"][table]["totals"]
    assert (totals["accepted_wcu"], totals["accepted_items"]) == (3, 2)
