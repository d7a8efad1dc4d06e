"""carve's writer through the capacity proxy in front of dynalite: faults, an exhausted retry
budget, and a table whose capacity changes while the job writes.

The proxy (jobs.capacity_proxy) is the DynamoDB that throttles and fails; what the table holds is
read straight from dynalite, behind it. Nothing here is timed.
"""

from __future__ import annotations

import json
import threading
import uuid

import boto3
import pytest

from jobs.devtools.capacity_proxy import ProxyConfig, start_proxy
from jobs.sinks import pacing
from jobs.sinks.pacing import BudgetSpec, resolve_budget
from jobs.sinks.table import TableSpec, delete_table, ensure_table
from jobs.sinks.writer import write_items
from tests.support.dynamodb import STORE, dynamodb_client, items_frame, scan_all, settings_for
from transforms.wire import item_digest

pytestmark = pytest.mark.integration

FAULTS = dict(throttle_rate=0.20, unprocessed_rate=0.10, error_500_rate=0.01, error_503_rate=0.01, drop_rate=0.01)


@pytest.fixture
def dynalite(dynamodb_endpoint):
    return dynamodb_client(dynamodb_endpoint)


@pytest.fixture
def table(dynalite):
    spec = TableSpec(f"Proxied-{uuid.uuid4().hex[:8]}", STORE.partition_key, STORE.sort_key, STORE.indexes)
    ensure_table(dynalite, spec)
    yield spec
    delete_table(dynalite, spec.name)


def expected_digests(frame) -> dict[tuple[str, str], str]:
    return {(r.pk, r.sk): item_digest(json.loads(r.item)) for r in frame.collect()}


def stored_digests(client, name: str) -> dict[tuple[str, str], str]:
    return {(i["PK"]["S"], i["SK"]["S"]): item_digest(i) for i in scan_all(client, name)}


def test_throttles_unprocessed_items_5xx_and_dropped_connections_lose_nothing(dynamodb_endpoint, aws_spark, dynalite, table):
    items = items_frame(aws_spark, 600).cache()
    with start_proxy(dynamodb_endpoint, ProxyConfig(seed=11, **FAULTS)) as proxy:
        settings = settings_for(proxy.url, table.name, units_per_second=3000.0, base_delay=0.01, max_delay=0.2)

        result = write_items(items, settings)
        faults = proxy.stats()["tables"][table.name]["totals"]["faults"]

    # The faults happened (the rarer kinds are certain in the test below), and the writer saw them.
    assert faults["throttle"] > 0 and faults["unprocessed"] > 0
    assert result.retries >= sum(faults.values())
    assert result.throttled_requests >= faults["throttle"] + faults["unprocessed"]
    # And nothing was lost or changed.
    assert (result.items_written, result.failed_count) == (600, 0)
    assert stored_digests(dynalite, table.name) == expected_digests(items)


@pytest.mark.parametrize("fault, recorded", [("error_500_rate", {"error_500"}), ("error_503_rate", {"error_503"}),
                                             ("drop_rate", {"drop_before", "drop_after"})])
def test_each_kind_of_failure_is_resent_until_written(dynamodb_endpoint, aws_spark, dynalite, table, fault, recorded):
    items = items_frame(aws_spark, 250).cache()
    with start_proxy(dynamodb_endpoint, ProxyConfig(seed=5, **{fault: 0.5})) as proxy:
        settings = settings_for(proxy.url, table.name, units_per_second=3000.0, base_delay=0.01, max_delay=0.1)
        result = write_items(items, settings)
        faults = proxy.stats()["tables"][table.name]["totals"]["faults"]

    assert sum(faults.get(kind, 0) for kind in recorded) > 0 and set(faults) <= recorded
    assert (result.items_written, result.failed_count) == (250, 0)
    assert stored_digests(dynalite, table.name) == expected_digests(items)


def test_items_the_table_never_takes_go_to_the_dead_letter_with_the_reason(dynamodb_endpoint, aws_spark, dynalite, table):
    items = items_frame(aws_spark, 60)
    with start_proxy(dynamodb_endpoint, ProxyConfig(throttle_rate=1.0, seed=3)) as proxy:
        settings = settings_for(proxy.url, table.name, units_per_second=1000.0, max_attempts=3, base_delay=0.01,
                                max_delay=0.02)
        result = write_items(items, settings)

    assert (result.items_written, result.failed_count) == (0, 60)
    reasons = {r.reason for r in result.failed.collect()}
    assert reasons == {"ProvisionedThroughputExceededException; gave up after 3 attempts"}
    assert scan_all(dynalite, table.name) == []


def test_a_share_of_capacity_follows_the_table_when_its_capacity_changes(dynamodb_endpoint, aws_spark, dynalite, monkeypatch):
    monkeypatch.setattr(pacing, "BUDGET_REREAD_SECONDS", 0.5)
    spec = TableSpec(f"Scaling-{uuid.uuid4().hex[:8]}", STORE.partition_key, STORE.sort_key)
    ensure_table(dynalite, spec, "PROVISIONED", 100)
    items = items_frame(aws_spark, 500).cache()  # about 560 WCU: several seconds at 100 WCU/s
    try:
        with start_proxy(dynamodb_endpoint, ProxyConfig(burst_seconds=0)) as proxy:
            through_proxy = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1")

            def budget() -> pacing.Budget:
                return resolve_budget(BudgetSpec(share=1.0), through_proxy.describe_table(TableName=spec.name)["Table"])

            def scale_up() -> None:  # what autoscaling does, once the write is under way
                while not proxy.stats()["tables"].get(spec.name, {}).get("seconds"):
                    threading.Event().wait(0.05)
                through_proxy.update_table(TableName=spec.name, ProvisionedThroughput={
                    "ReadCapacityUnits": 100, "WriteCapacityUnits": 400})

            scaler = threading.Thread(target=scale_up, daemon=True)
            scaler.start()
            result = write_items(items, settings_for(proxy.url, spec.name), budget=budget)
            scaler.join(timeout=30)
            seconds = proxy.stats()["tables"][spec.name]["seconds"]

        assert result.failed_count == 0 and result.items_written == 500
        assert [units for _, units in result.budget_timeline] == [100.0, 400.0]
        assert max(s["accepted_wcu"] for s in seconds) > 100  # the new capacity was used
    finally:
        delete_table(dynalite, spec.name)
