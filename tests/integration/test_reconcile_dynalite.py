"""Write through write_items, Scan back with scan_digests, and reconcile against dynalite."""

from __future__ import annotations

import uuid

import pytest
from py4j.protocol import Py4JJavaError

from jobs.sinks.table import TableSpec, delete_table, ensure_table
from jobs.sinks.writer import write_items
from jobs.verify.reconcile import expected_digests, reconcile, scan_digests

# aws_spark is a fixture (Spark whose workers have the dummy AWS credentials): see its docstring.
from tests.support.dynamodb import STORE, dynamodb_client, items_frame, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def client(dynamodb_endpoint):
    return dynamodb_client(dynamodb_endpoint)


def fresh_table(client, spec: TableSpec) -> TableSpec:
    named = TableSpec(f"{spec.name}-{uuid.uuid4().hex[:8]}", spec.partition_key, spec.sort_key, spec.indexes)
    ensure_table(client, named)
    return named


@pytest.fixture
def store(client):
    spec = fresh_table(client, STORE)
    yield spec
    delete_table(client, spec.name)


@pytest.fixture
def users(client):
    spec = fresh_table(client, TableSpec("Users", "PK"))
    yield spec
    delete_table(client, spec.name)


def test_what_was_written_reconciles_and_tampering_shows_up_exactly(dynamodb_endpoint, aws_spark, client, store):
    items = items_frame(aws_spark, 300).cache()
    settings = settings_for(dynamodb_endpoint, store.name, units_per_second=1000.0)
    written = write_items(items, settings)
    assert (written.items_written, written.failed_count) == (300, 0)
    expected = expected_digests(items).cache()

    clean = reconcile(expected, scan_digests(aws_spark, settings.address, segments=4, partition_key="PK", sort_key="SK"))

    assert clean.ok
    assert (clean.expected, clean.found, clean.missing, clean.extra, clean.mismatched) == (300, 300, 0, 0, 0)
    assert clean.by_entity == {
        "customer": {"expected": 30, "missing": 0, "mismatched": 0},
        "order": {"expected": 270, "missing": 0, "mismatched": 0},
    }

    client.delete_item(TableName=store.name, Key={"PK": {"S": "CUSTOMER#7"}, "SK": {"S": "ORDER#00007"}})
    client.update_item(
        TableName=store.name,
        Key={"PK": {"S": "CUSTOMER#10"}, "SK": {"S": "PROFILE#10"}},
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "total"},
        ExpressionAttributeValues={":t": {"N": "10.51"}},
    )
    client.put_item(TableName=store.name, Item={"PK": {"S": "CUSTOMER#999"}, "SK": {"S": "STRAY"}})

    tampered = reconcile(expected, scan_digests(aws_spark, settings.address, segments=3, partition_key="PK", sort_key="SK"))

    assert (tampered.expected, tampered.found, tampered.missing, tampered.extra, tampered.mismatched) == (
        300, 299, 1, 1, 1,
    )
    assert tampered.missing_sample == (("CUSTOMER#7", "ORDER#00007"),)
    assert tampered.mismatched_sample == (("CUSTOMER#10", "PROFILE#10"),)
    assert tampered.extra_sample == (("CUSTOMER#999", "STRAY"),)
    assert tampered.by_entity == {
        "customer": {"expected": 30, "missing": 0, "mismatched": 1},
        "order": {"expected": 270, "missing": 1, "mismatched": 0},
    }


def test_a_table_without_a_sort_key_reconciles(dynamodb_endpoint, aws_spark, client, users):
    items = items_frame(aws_spark, 60, sort_key=False)
    settings = settings_for(dynamodb_endpoint, users.name)
    assert write_items(items, settings).items_written == 60

    result = reconcile(expected_digests(items), scan_digests(aws_spark, settings.address, segments=2, partition_key="PK"))

    assert result.ok and result.found == 60


def test_a_wrong_key_attribute_name_is_reported_not_guessed(dynamodb_endpoint, aws_spark, client, users):
    settings = settings_for(dynamodb_endpoint, users.name)
    client.put_item(TableName=users.name, Item={"PK": {"S": "U#1"}})

    # The CarveError is raised on an executor and reaches the driver wrapped in the failed Spark job.
    with pytest.raises(Py4JJavaError, match="no key attribute 'id'"):
        scan_digests(aws_spark, settings.address, segments=1, partition_key="id").collect()
