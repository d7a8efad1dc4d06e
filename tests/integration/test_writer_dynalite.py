"""write_items and the table helpers against dynalite, which is as strict as DynamoDB about what it accepts.

Tests take `aws_spark`, not `spark`: see there why.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from pyspark import TaskContext

from jobs.sinks.table import IndexSpec, TableSpec, delete_table, ensure_table, table_exists
from jobs.sinks.transport import Answer, HttpTransport
from jobs.sinks.writer import WriteSettings, task_slots, write_items
from tests.support.dynamodb import ITEMS_SCHEMA, STORE, dynamodb_client, items_frame, mixed_item, scan_all, settings_for
from transforms.wire import item_digest

pytestmark = pytest.mark.integration

@pytest.fixture
def client(dynamodb_endpoint):
    return dynamodb_client(dynamodb_endpoint)


@pytest.fixture
def store(client):
    """A fresh Store-shaped table with a unique name, dropped afterwards."""
    spec = TableSpec(f"Store-{uuid.uuid4().hex[:8]}", STORE.partition_key, STORE.sort_key, STORE.indexes)
    ensure_table(client, spec)
    yield spec
    delete_table(client, spec.name)


# --- tables -------------------------------------------------------------------------------------


def test_ensure_table_creates_once_with_indexes_and_delete_removes_it(client):
    spec = TableSpec(f"Tbl-{uuid.uuid4().hex[:8]}", "PK", "SK", (IndexSpec("GSI1", "GSI1PK", "GSI1SK"),))

    assert ensure_table(client, spec) is True
    assert ensure_table(client, spec) is False

    table = client.describe_table(TableName=spec.name)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "GSI1" and index["Projection"] == {"ProjectionType": "ALL"}
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == dict.fromkeys(
        ["PK", "SK", "GSI1PK", "GSI1SK"], "S"
    )

    delete_table(client, spec.name)
    assert not table_exists(client, spec.name)
    delete_table(client, spec.name)  # already gone: nothing to do


# --- writing ------------------------------------------------------------------------------------


def test_write_items_within_a_budget_writes_every_item_intact(dynamodb_endpoint, aws_spark, client, store):
    items = items_frame(aws_spark, 300).cache()
    total_wcu = items.agg({"wcu": "sum"}).first()[0]
    budget = 200.0
    settings = settings_for(dynamodb_endpoint, store.name, units_per_second=budget)

    started = time.monotonic()
    result = write_items(items, settings)
    elapsed = time.monotonic() - started

    assert result.failed_count == 0 and result.failed.count() == 0
    assert result.items_written == 300
    assert result.wcu_consumed == total_wcu  # dynalite reports the base table's units only
    assert result.batches >= math.ceil(300 / 25)
    # A lower bound only, so it cannot flake: the busiest task carries at least half the units,
    # starts with one second of its share and earns the rest at its share of the budget.
    share = budget / task_slots(aws_spark)
    assert elapsed >= (total_wcu / task_slots(aws_spark) - share) / share

    stored = {(i["PK"]["S"], i["SK"]["S"]): i for i in scan_all(client, store.name)}
    assert len(stored) == 300
    _, _, _, sent = mixed_item(7)
    got = stored[("CUSTOMER#7", "ORDER#00007")]
    assert got["blob"] == {"B": bytes([7, 0, 255])}  # raw bytes, not base64 text stored as bytes
    assert got["big"] == {"N": "12345678901234567890123456789012345677"}
    assert Decimal(got["total"]["N"]) == Decimal("7.50")
    assert got["empty"] == {"S": ""}
    assert got["lines"] == {
        "L": [
            {"M": {"sku": {"S": "SKU-7"}, "qty": {"N": "2"}, "price": {"N": "9.9"}}},
            {"NULL": True},
            {"L": [{"BOOL": True}, {"S": "ünïcödé"}]},
        ]
    }
    assert sorted(got["meta"]["M"]["tags"]["SS"]) == ["eu", "t7", "vip"]


def test_write_items_without_a_budget(dynamodb_endpoint, aws_spark, client, store):
    result = write_items(items_frame(aws_spark, 120), settings_for(dynamodb_endpoint, store.name))

    assert (result.items_written, result.failed_count, result.throttled_requests) == (120, 0, 0)
    assert len(scan_all(client, store.name)) == 120


@dataclass(frozen=True)
class DroppingTransport:
    """The real transport, except that some sort keys never get through: DynamoDB answering
    UnprocessedItems forever for them.

    Module level, so Spark pickles it by reference and the executors import it from this file.
    """

    drop: frozenset[str]

    def __call__(self, settings: WriteSettings) -> "DroppingTransport":
        object.__setattr__(self, "real", HttpTransport(settings.address))
        return self

    def post(self, operation: str, body: bytes) -> Answer:
        request = json.loads(body)
        ((table, entries),) = request["RequestItems"].items()
        dropped = [e for e in entries if e["PutRequest"]["Item"]["SK"]["S"] in self.drop]
        kept = [e for e in entries if e not in dropped]
        answer = Answer(200, "", "", {})
        if kept:
            answer = self.real.post(operation, json.dumps({**request, "RequestItems": {table: kept}}).encode())
        answer.body["UnprocessedItems"] = {table: dropped} if dropped else {}
        return answer


def test_items_dynamodb_never_takes_come_back_failed_with_reasons(dynamodb_endpoint, aws_spark, client, store):
    items = items_frame(aws_spark, 100)
    drop = frozenset({"ORDER#00003", "ORDER#00042", "PROFILE#90"})
    settings = settings_for(dynamodb_endpoint, store.name, max_attempts=3, base_delay=0.01, max_delay=0.05)

    result = write_items(items, settings, transport_factory=DroppingTransport(drop))

    assert result.failed_count == 3
    assert result.items_written == 97
    # Every call carrying a dropped item counts as throttled; each such batch is resent twice.
    assert result.throttled_requests >= 3 and result.retries >= 2
    failed = {r.sk: r for r in result.failed.collect()}
    assert set(failed) == drop
    for sk, row in failed.items():
        assert row.reason == "UnprocessedItems; gave up after 3 attempts"
        assert json.loads(row.item)["SK"] == {"S": sk}  # the dead letter holds the item as given
    assert failed["PROFILE#90"].entity == "customer" and failed["PROFILE#90"].pk == "CUSTOMER#10"
    assert len(scan_all(client, store.name)) == 97


@dataclass(frozen=True)
class CountingTransport:
    """The real transport, appending a line to `log` for every call (executors share this disk)."""

    log: str

    def __call__(self, settings: WriteSettings) -> "CountingTransport":
        object.__setattr__(self, "real", HttpTransport(settings.address))
        return self

    def post(self, operation: str, body: bytes) -> Answer:
        with open(self.log, "a") as log:
            log.write("call\n")
        return self.real.post(operation, body)


def test_reading_the_result_again_never_writes_again(dynamodb_endpoint, aws_spark, store, tmp_path):
    log = tmp_path / "calls.log"
    settings = settings_for(dynamodb_endpoint, store.name)

    result = write_items(items_frame(aws_spark, 100), settings, transport_factory=CountingTransport(str(log)))
    result.failed.unpersist()  # as if evicted: Spark must rebuild it from the outcomes, not the writes
    assert result.failed.count() == 0

    assert len(log.read_text().splitlines()) == result.batches


def test_an_item_dynamodb_rejects_fails_alone(dynamodb_endpoint, aws_spark, client, store):
    items = items_frame(aws_spark, 30)
    bad = {"PK": {"S": "CUSTOMER#bad"}, "SK": {"S": "PROFILE"}, "tags": {"SS": []}}  # empty sets are invalid
    bad_row = aws_spark.createDataFrame([("customer", "CUSTOMER#bad", "PROFILE", json.dumps(bad), 40, 1)], ITEMS_SCHEMA)

    result = write_items(items.unionByName(bad_row), settings_for(dynamodb_endpoint, store.name))

    assert result.items_written == 30
    ((row),) = result.failed.collect()
    assert row.pk == "CUSTOMER#bad" and row.reason.startswith("ValidationException: ")


class DyingTransport:
    """The real transport, in a Python worker that dies (os._exit, as an executor lost mid-task
    would) after `after` calls of the first attempt of partition 0, leaving a marker file first."""

    def __init__(self, after: int, marker: str):
        self.after = after
        self.marker = marker

    def __call__(self, settings: WriteSettings) -> "_Dying":
        context = TaskContext.get()
        doomed = context.partitionId() == 0 and context.attemptNumber() == 0
        return _Dying(HttpTransport(settings.address), self.after if doomed else None, self.marker)


class _Dying:
    def __init__(self, real: HttpTransport, after: int | None, marker: str):
        self.real, self.after, self.marker, self.calls = real, after, marker, 0

    def post(self, operation: str, body: bytes) -> Answer:
        if self.calls == self.after:
            with open(self.marker, "w") as marker:
                marker.write(f"died after {self.calls} calls\n")
            os._exit(1)
        self.calls += 1
        return self.real.post(operation, body)


def table_digests(client, table: str) -> dict[tuple[str, str], str]:
    return {(i["PK"]["S"], i["SK"]["S"]): item_digest(i) for i in scan_all(client, table)}


def test_a_task_killed_mid_write_and_retried_leaves_the_table_as_a_clean_run(dynamodb_endpoint, aws_spark, client, store):
    items = items_frame(aws_spark, 400).cache()
    clean = TableSpec(f"Clean-{uuid.uuid4().hex[:8]}", store.partition_key, store.sort_key, store.indexes)
    ensure_table(client, clean)
    marker = f"/tmp/carve-dying-{uuid.uuid4().hex}"
    try:
        write_items(items, settings_for(dynamodb_endpoint, clean.name))
        result = write_items(items, settings_for(dynamodb_endpoint, store.name, units_per_second=4000.0),
                             transport_factory=DyingTransport(after=3, marker=marker))

        assert os.path.exists(marker), "the first attempt of partition 0 should have died"
        # Stats come from the attempts that finished: the retried task wrote its whole partition.
        assert (result.items_written, result.failed_count) == (400, 0)
        assert table_digests(client, store.name) == table_digests(client, clean.name)
        assert len(table_digests(client, clean.name)) == 400
    finally:
        delete_table(client, clean.name)
        if os.path.exists(marker):
            os.remove(marker)
