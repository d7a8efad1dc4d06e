"""Proof that the table holds what we meant to write: one digest per item on each side, joined by key.

Both sides digest an item by transforms.wire.item_digest, which does not depend on how an item
happens to be spelled (DynamoDB hands numbers back normalized and binary as bytes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import boto3
from botocore.config import Config
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.sinks.table import TableAddress
from transforms.errors import CarveError
from transforms.wire import item_digest, key_text

SAMPLE_SIZE = 20
SCAN_ATTEMPTS = 30  # botocore's standard retries per Scan page: throttled pages are read again

DIGEST_SCHEMA = StructType(
    [
        StructField("pk", StringType(), False),
        StructField("sk", StringType(), True),
        StructField("digest", StringType(), False),
    ]
)
EXPECTED_SCHEMA = StructType([StructField("entity", StringType(), False), *DIGEST_SCHEMA.fields])

Key = tuple[str, str | None]


# --- both sides as DataFrames ----------------------------------------------------------------


def _expected_partition(rows: Iterable[Any]) -> Iterator[tuple[str, str, str | None, str]]:
    for row in rows:
        yield row.entity, row.pk, row.sk, item_digest(json.loads(row.item))


def expected_digests(items_df: DataFrame) -> DataFrame:
    """entity, pk, sk, digest of the items we meant to write, computed on the executors."""
    rows = items_df.select("entity", "pk", "sk", "item").rdd.mapPartitions(_expected_partition)
    return items_df.sparkSession.createDataFrame(rows, EXPECTED_SCHEMA)


def scan_client(address: TableAddress) -> Any:
    """A low-level client for reading: botocore's standard retries absorb throttled Scan pages."""
    config = Config(
        region_name=address.region,
        retries={"mode": "standard", "total_max_attempts": SCAN_ATTEMPTS},
        connect_timeout=5,
        read_timeout=60,
    )
    return boto3.session.Session().client("dynamodb", endpoint_url=address.endpoint_url, config=config)


def scan_segment(
    client: Any, table: str, segment: int, total_segments: int, partition_key: str, sort_key: str | None
) -> Iterator[tuple[str, str | None, str]]:
    """pk, sk, digest of every item in one Scan segment, page by page."""
    pages = client.get_paginator("scan").paginate(
        TableName=table,
        Segment=segment,
        TotalSegments=total_segments,
        # Reconciling right after a write: an eventually consistent read could report items as missing.
        ConsistentRead=True,
    )
    for page in pages:
        for item in page["Items"]:
            yield _key_of(item, partition_key), _key_of(item, sort_key) if sort_key else None, item_digest(item)


def _key_of(item: dict[str, Any], attribute: str) -> str:
    if attribute not in item:
        raise CarveError(f"scanned item has no key attribute {attribute!r}; check partition_key/sort_key")
    return key_text(item[attribute])


def _scan_partition(
    segments: Iterable[int],
    address: TableAddress,
    total_segments: int,
    partition_key: str,
    sort_key: str | None,
    client_factory: Callable[[TableAddress], Any],
) -> Iterator[tuple[str, str | None, str]]:
    client = client_factory(address)
    for segment in segments:
        yield from scan_segment(client, address.table, segment, total_segments, partition_key, sort_key)


def scan_digests(
    spark: SparkSession,
    address: TableAddress,
    segments: int,
    partition_key: str,
    sort_key: str | None = None,
    client_factory: Callable[[TableAddress], Any] = scan_client,
) -> DataFrame:
    """pk, sk, digest of every item in the table: a parallel Scan, one Spark task per segment."""
    if segments < 1:
        raise ValueError("segments must be at least 1")
    scan = partial(
        _scan_partition,
        address=address,
        total_segments=segments,
        partition_key=partition_key,
        sort_key=sort_key,
        client_factory=client_factory,
    )
    rows = spark.sparkContext.parallelize(range(segments), segments).mapPartitions(scan)
    return spark.createDataFrame(rows, DIGEST_SCHEMA)


GET_BATCH = 100  # BatchGetItem's limit of keys per call


def fetch_segment(client: Any, table: str, keys: list[Key], partition_key: str,
                  sort_key: str | None) -> Iterator[tuple[str, str | None, str]]:
    """pk, sk, digest of those of `keys` that are in the table (strongly consistent reads)."""
    for start in range(0, len(keys), GET_BATCH):
        wanted = [{partition_key: {"S": pk}, **({sort_key: {"S": sk}} if sort_key else {})}
                  for pk, sk in keys[start:start + GET_BATCH]]
        request = {table: {"Keys": wanted, "ConsistentRead": True}}
        for attempt in range(SCAN_ATTEMPTS):
            answer = client.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                yield _key_of(item, partition_key), _key_of(item, sort_key) if sort_key else None, item_digest(item)
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2 ** attempt, 2.0))  # DynamoDB hands back keys it had no capacity for
        else:
            raise CarveError(f"BatchGetItem on {table}: keys still unprocessed after {SCAN_ATTEMPTS} attempts")


def fetch_digests(keys: DataFrame, address: TableAddress, partition_key: str, sort_key: str | None = None,
                  client_factory: Callable[[TableAddress], Any] = scan_client) -> DataFrame:
    """pk, sk, digest of the items at `keys` (pk, sk) that the table holds, read by key from the executors."""
    def fetch(rows: Iterable[Any]) -> Iterator[tuple[str, str | None, str]]:
        wanted = [(r.pk, r.sk) for r in rows]
        if wanted:
            yield from fetch_segment(client_factory(address), address.table, wanted, partition_key, sort_key)

    return keys.sparkSession.createDataFrame(keys.select("pk", "sk").distinct().rdd.mapPartitions(fetch), DIGEST_SCHEMA)


# --- the comparison --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileResult:
    expected: int
    found: int  # expected items present in the table, whether or not they match
    missing: int
    extra: int  # in the table but not expected (another writer, or a stale run)
    mismatched: int
    by_entity: dict[str, dict[str, int]]  # entity -> {"expected", "missing", "mismatched"}
    missing_sample: tuple[Key, ...]
    extra_sample: tuple[Key, ...]
    mismatched_sample: tuple[Key, ...]

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.mismatched == 0


def compare_digests(expected: DataFrame, actual: DataFrame) -> DataFrame:
    """entity, pk, sk, status (ok, missing, extra, mismatched) for every key on either side."""
    ours = expected.select("entity", "pk", "sk", F.col("digest").alias("expected_digest"))
    theirs = actual.select(
        F.col("pk").alias("actual_pk"), F.col("sk").alias("actual_sk"), F.col("digest").alias("actual_digest")
    )
    # Null-safe on sk: tables without a sort key have a null sk on both sides.
    on = ours["pk"].eqNullSafe(theirs["actual_pk"]) & ours["sk"].eqNullSafe(theirs["actual_sk"])
    status = (
        F.when(F.col("expected_digest").isNull(), "extra")
        .when(F.col("actual_digest").isNull(), "missing")
        .when(F.col("expected_digest") != F.col("actual_digest"), "mismatched")
        .otherwise("ok")
    )
    return ours.join(theirs, on, "full_outer").select(
        "entity",
        F.coalesce("pk", "actual_pk").alias("pk"),
        F.when(F.col("expected_digest").isNull(), F.col("actual_sk")).otherwise(F.col("sk")).alias("sk"),
        status.alias("status"),
    )


def _sample(statuses: DataFrame, status: str) -> tuple[Key, ...]:
    rows = statuses.where(F.col("status") == status).orderBy("pk", "sk").limit(SAMPLE_SIZE).collect()
    return tuple((r.pk, r.sk) for r in rows)


def reconcile(expected: DataFrame, actual: DataFrame) -> ReconcileResult:
    """Compare expected (entity, pk, sk, digest) with actual (pk, sk, digest); only counts and samples leave Spark."""
    statuses = compare_digests(expected, actual).cache()
    try:
        # One job for every count; a sample only of what went wrong (a job each).
        counts = dict.fromkeys(("ok", "missing", "mismatched", "extra"), 0)
        by_entity: dict[str, dict[str, int]] = {}
        for r in statuses.groupBy("entity", "status").count().collect():
            counts[r.status] += r["count"]
            if r.entity is not None:  # an extra item has no entity
                entity = by_entity.setdefault(r.entity, {"expected": 0, "missing": 0, "mismatched": 0})
                entity["expected"] += r["count"]
                if r.status in ("missing", "mismatched"):
                    entity[r.status] += r["count"]
        ok, missing, mismatched, extra = counts.values()

        def sample(status: str) -> tuple[Key, ...]:
            return _sample(statuses, status) if counts[status] else ()

        return ReconcileResult(
            expected=ok + missing + mismatched,
            found=ok + mismatched,
            missing=missing,
            extra=extra,
            mismatched=mismatched,
            by_entity=by_entity,
            missing_sample=sample("missing"),
            extra_sample=sample("extra"),
            mismatched_sample=sample("mismatched"),
        )
    finally:
        statuses.unpersist()
