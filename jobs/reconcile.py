"""Proof that the table holds what we meant to write: one digest per item on each side, joined by key.

The digest must not depend on how an item happens to be spelled. What we send is DynamoDB wire
JSON (binary as base64 text, numbers as we formatted them, sets in our order); what a Scan returns
through boto3's low-level client has binary as bytes, numbers normalized by DynamoDB ("1.50" comes
back "1.5") and sets in any order. `canonical` maps both spellings of the same item to one value.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import boto3
from botocore.config import Config
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from transforms.errors import CarveError

if TYPE_CHECKING:
    # Type only: jobs.dynamo imports this module for item_digest, so a runtime import would be circular.
    from jobs.dynamo import WriteSettings

SAMPLE_SIZE = 20

DIGEST_SCHEMA = StructType(
    [
        StructField("pk", StringType(), False),
        StructField("sk", StringType(), True),
        StructField("digest", StringType(), False),
    ]
)
EXPECTED_SCHEMA = StructType([StructField("entity", StringType(), False), *DIGEST_SCHEMA.fields])

Key = tuple[str, str | None]


# --- canonical form and digest ---------------------------------------------------------------


def canonical_number(text: str) -> str:
    """The one spelling of a DynamoDB number: no leading or trailing zeros, no -0.

    Built from the decimal digits directly, never through a float or a Decimal context, so all
    38 significant digits DynamoDB keeps are compared exactly.
    """
    value = Decimal(text)  # parsing a string is exact whatever the context precision
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a DynamoDB number")
    sign, digits, exponent = value.as_tuple()
    significant = list(digits)
    while len(significant) > 1 and significant[0] == 0:
        significant.pop(0)
    if significant == [0]:
        return "0"
    while significant[-1] == 0:
        significant.pop()
        exponent += 1
    return str(Decimal((sign, tuple(significant), exponent)))


def canonical_binary(value: bytes | bytearray | str) -> str:
    """Base64 of the raw bytes: the wire JSON holds base64 text, boto3 hands back bytes."""
    raw = base64.b64decode(value, validate=True) if isinstance(value, str) else bytes(value)
    return base64.b64encode(raw).decode("ascii")


def canonical_value(value: dict[str, Any]) -> dict[str, Any]:
    """One AttributeValue ({"S": ...}, {"M": {...}}, ...) in canonical form."""
    if len(value) != 1:
        raise ValueError(f"an AttributeValue has exactly one type, got {sorted(value)}")
    ((kind, inner),) = value.items()
    if kind in ("S", "BOOL", "NULL"):
        return {kind: inner}
    if kind == "N":
        return {"N": canonical_number(inner)}
    if kind == "B":
        return {"B": canonical_binary(inner)}
    if kind == "SS":
        return {"SS": sorted(inner)}
    if kind == "NS":
        return {"NS": sorted(canonical_number(n) for n in inner)}
    if kind == "BS":
        return {"BS": sorted(canonical_binary(b) for b in inner)}
    if kind == "L":
        return {"L": [canonical_value(v) for v in inner]}
    if kind == "M":
        return {"M": canonical(inner)}
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def canonical(item: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The item with every value canonical; key order is settled when the digest serializes it."""
    return {name: canonical_value(value) for name, value in item.items()}


def item_digest(item: dict[str, dict[str, Any]]) -> str:
    """sha256 hex of the canonical item: equal for every spelling of the same DynamoDB item."""
    text = json.dumps(canonical(item), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_text(value: dict[str, Any]) -> str:
    """A key attribute's value as the items DataFrame spells it in its pk/sk columns."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return canonical_binary(inner)
    return inner  # S and N: DynamoDB returns them as sent (N keys are stored normalized upstream)


# --- both sides as DataFrames ----------------------------------------------------------------


def _expected_partition(rows: Iterable[Any]) -> Iterator[tuple[str, str, str | None, str]]:
    for row in rows:
        yield row.entity, row.pk, row.sk, item_digest(json.loads(row.item))


def expected_digests(items_df: DataFrame) -> DataFrame:
    """entity, pk, sk, digest of the items we meant to write, computed on the executors."""
    rows = items_df.select("entity", "pk", "sk", "item").rdd.mapPartitions(_expected_partition)
    return items_df.sparkSession.createDataFrame(rows, EXPECTED_SCHEMA)


def scan_client(settings: WriteSettings) -> Any:
    """A low-level client for reading: botocore's standard retries absorb throttled Scan pages."""
    config = Config(
        region_name=settings.region,
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        connect_timeout=5,
        read_timeout=60,
    )
    return boto3.session.Session().client("dynamodb", endpoint_url=settings.endpoint_url, config=config)


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
    settings: WriteSettings,
    total_segments: int,
    partition_key: str,
    sort_key: str | None,
    client_factory: Callable[[WriteSettings], Any],
) -> Iterator[tuple[str, str | None, str]]:
    client = client_factory(settings)
    for segment in segments:
        yield from scan_segment(client, settings.table, segment, total_segments, partition_key, sort_key)


def scan_digests(
    spark: SparkSession,
    settings: WriteSettings,
    segments: int,
    partition_key: str,
    sort_key: str | None = None,
    client_factory: Callable[[WriteSettings], Any] = scan_client,
) -> DataFrame:
    """pk, sk, digest of every item in the table: a parallel Scan, one Spark task per segment."""
    if segments < 1:
        raise ValueError("segments must be at least 1")
    scan = partial(
        _scan_partition,
        settings=settings,
        total_segments=segments,
        partition_key=partition_key,
        sort_key=sort_key,
        client_factory=client_factory,
    )
    rows = spark.sparkContext.parallelize(range(segments), segments).mapPartitions(scan)
    return spark.createDataFrame(rows, DIGEST_SCHEMA)


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


def _entity_counts(statuses: DataFrame) -> dict[str, dict[str, int]]:
    def flagged(status: str):
        return F.sum((F.col("status") == status).cast("long")).alias(status)

    rows = (
        statuses.where(F.col("entity").isNotNull())
        .groupBy("entity")
        .agg(F.count("*").alias("expected"), flagged("missing"), flagged("mismatched"))
        .collect()
    )
    return {r.entity: {"expected": r.expected, "missing": r.missing, "mismatched": r.mismatched} for r in rows}


def _sample(statuses: DataFrame, status: str) -> tuple[Key, ...]:
    rows = statuses.where(F.col("status") == status).orderBy("pk", "sk").limit(SAMPLE_SIZE).collect()
    return tuple((r.pk, r.sk) for r in rows)


def reconcile(expected: DataFrame, actual: DataFrame) -> ReconcileResult:
    """Compare expected (entity, pk, sk, digest) with actual (pk, sk, digest); only counts and samples leave Spark."""
    statuses = compare_digests(expected, actual).cache()
    try:
        counts = {r.status: r["count"] for r in statuses.groupBy("status").count().collect()}
        ok, missing, mismatched = (counts.get(s, 0) for s in ("ok", "missing", "mismatched"))
        return ReconcileResult(
            expected=ok + missing + mismatched,
            found=ok + mismatched,
            missing=missing,
            extra=counts.get("extra", 0),
            mismatched=mismatched,
            by_entity=_entity_counts(statuses),
            missing_sample=_sample(statuses, "missing"),
            extra_sample=_sample(statuses, "extra"),
            mismatched_sample=_sample(statuses, "mismatched"),
        )
    finally:
        statuses.unpersist()
