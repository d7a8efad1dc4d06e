"""DynamoDB: create the target table, and write items from the executors within a write-unit budget.

The writer runs where the items are (`write_partition`, one call per Spark task). Each task gets an
equal share of the job's budget and charges a token bucket with every item's write units before
sending it, so the job as a whole never asks DynamoDB for more than the budget. Throttles and
unprocessed items are resent after exponential backoff with jitter, never at once; when the
attempts run out the items come back as failed rows with a reason, and the caller raises.
"""

from __future__ import annotations

import base64
import json
import random
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.reconcile import item_digest
from transforms.errors import CarveError

MAX_BATCH = 25  # BatchWriteItem's limit; 25 items of at most 400 KB stay under its 16 MB limit too

THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
SERVER_ERROR_CODES = frozenset({"InternalServerError", "ServiceUnavailable"})


# --- tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[IndexSpec, ...] = ()

    def key_attributes(self) -> list[str]:
        """Every attribute used in the table's or an index's key, each once."""
        names = [self.partition_key, self.sort_key]
        for index in self.indexes:
            names += [index.partition_key, index.sort_key]
        return list(dict.fromkeys(n for n in names if n))


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return schema


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _http_status(exc: ClientError) -> int:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


def table_exists(client: Any, name: str) -> bool:
    try:
        client.describe_table(TableName=name)
    except ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


def create_table_request(
    spec: TableSpec, billing: str = "PAY_PER_REQUEST", provisioned_units: int | None = None
) -> dict[str, Any]:
    """CreateTable arguments: every key attribute a string, every index projecting all attributes."""
    if billing not in ("PAY_PER_REQUEST", "PROVISIONED"):
        raise CarveError(f"billing must be PAY_PER_REQUEST or PROVISIONED, not {billing!r}")
    if billing == "PROVISIONED" and not provisioned_units:
        raise CarveError("a PROVISIONED table needs provisioned_units (read and write capacity units)")
    throughput = (
        {"ProvisionedThroughput": {"ReadCapacityUnits": provisioned_units, "WriteCapacityUnits": provisioned_units}}
        if billing == "PROVISIONED"
        else {}
    )
    request: dict[str, Any] = {
        "TableName": spec.name,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in spec.key_attributes()],
        "KeySchema": _key_schema(spec.partition_key, spec.sort_key),
        "BillingMode": billing,
        **throughput,
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": "ALL"},
                **throughput,
            }
            for index in spec.indexes
        ]
    return request


def ensure_table(
    client: Any, spec: TableSpec, billing: str = "PAY_PER_REQUEST", provisioned_units: int | None = None
) -> bool:
    """Create the table (and its indexes) unless it exists, and wait until it is ACTIVE; True if created here."""
    created = False
    if not table_exists(client, spec.name):
        try:
            client.create_table(**create_table_request(spec, billing, provisioned_units))
            created = True
        except ClientError as exc:
            # Another job created it between our describe and create: use theirs.
            if _error_code(exc) != "ResourceInUseException":
                raise
    client.get_waiter("table_exists").wait(TableName=spec.name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    return created


def delete_table(client: Any, name: str) -> None:
    """Delete the table and wait until it is gone (tests clean up with this)."""
    try:
        client.delete_table(TableName=name)
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        return
    client.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


# --- settings, client, rate ------------------------------------------------------------------


@dataclass(frozen=True)
class WriteSettings:
    table: str
    endpoint_url: str | None
    region: str
    units_per_second: float | None  # budget for the whole job, all tasks together; None = unlimited
    max_attempts: int = 10  # sends per batch, the first included
    base_delay: float = 0.05  # seconds; the backoff ceiling doubles from here on every retry
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.units_per_second is not None and self.units_per_second <= 0:
            raise CarveError("units_per_second must be positive, or None for no limit")
        if self.max_attempts < 1:
            raise CarveError("max_attempts must be at least 1")
        if not 0 < self.base_delay <= self.max_delay:
            raise CarveError("backoff needs 0 < base_delay <= max_delay")


ClientFactory = Callable[[WriteSettings], Any]


def dynamodb_client(settings: WriteSettings) -> Any:
    """A low-level DynamoDB client for the writer, built on the executor.

    botocore's own retries are off: otherwise it would resend throttled calls at once and out of
    sight, and write_partition could neither back off properly nor count them.
    """
    config = Config(
        region_name=settings.region,
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.session.Session().client("dynamodb", endpoint_url=settings.endpoint_url, config=config)


class TokenBucket:
    """Write units refilled continuously at `rate` per second, holding at most `capacity`.

    `take` charges first and then says how long to wait, so the balance can go below zero: an item
    worth more units than the capacity still goes through, and the debt is paid by waiting. Over
    any span of t seconds at most capacity + rate * t units are handed out.
    """

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]):
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._last = clock()

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self, units: float) -> float:
        """Charge `units`; returns the seconds to wait before using them (0 when already covered)."""
        self._refill()
        self._tokens -= units
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, units: float, sleep: Callable[[float], None]) -> float:
        wait = self.take(units)
        if wait > 0:
            sleep(wait)
        return wait


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before the retry-th resend: exponential, with jitter in its upper half.

    The jitter spreads tasks that were throttled together; keeping the lower half out means a
    resend is never immediate.
    """
    ceiling = min(cap, base * 2 ** (retry - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


# --- executor side ---------------------------------------------------------------------------

STATS = "stats"
FAILED = "failed"


class TaskStats(NamedTuple):
    """What one task did; kind is always STATS."""

    kind: str
    written: int
    wcu_consumed: float
    throttled: int  # calls answered with a throttling error or with UnprocessedItems
    retries: int  # calls that resent items after a backoff
    batches: int  # BatchWriteItem calls made, resends included


class FailedItem(NamedTuple):
    """An item given up on; kind is always FAILED. The rest is the dead-letter row."""

    kind: str
    entity: str
    pk: str
    sk: str | None
    item: str
    reason: str


@dataclass(slots=True)
class PendingItem:
    """An item on its way: the row's fields plus the parsed item the client sends."""

    entity: str
    pk: str
    sk: str | None
    item: str  # the wire JSON as received, for the dead letter
    wire: dict[str, Any]  # what the client sends
    wcu: int


def _wire_value(value: dict[str, Any]) -> dict[str, Any]:
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner, validate=True)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b, validate=True) for b in inner]}
    if kind == "L":
        return {"L": [_wire_value(v) for v in inner]}
    if kind == "M":
        return {"M": {name: _wire_value(v) for name, v in inner.items()}}
    return value


def wire_item(item_json: str) -> dict[str, Any]:
    """The item JSON as the low-level client takes it.

    Everything passes through as parsed except binary: botocore base64-encodes B values itself, so
    the base64 text in the JSON must become bytes first or it would be stored encoded twice.
    """
    return {name: _wire_value(value) for name, value in json.loads(item_json).items()}


def pending_items(rows: Iterable[Any]) -> Iterator[PendingItem]:
    """Rows with entity, pk, sk, item, wcu (Spark Rows or anything with those attributes), parsed."""
    for row in rows:
        yield PendingItem(row.entity, row.pk, row.sk, row.item, wire_item(row.item), row.wcu)


def batches(items: Iterable[PendingItem], size: int = MAX_BATCH) -> Iterator[list[PendingItem]]:
    """Consecutive batches of at most `size`, never two items with the same key in one batch."""
    batch: list[PendingItem] = []
    keys: set[tuple[str, str | None]] = set()
    for item in items:
        key = (item.pk, item.sk)
        if len(batch) == size or key in keys:
            yield batch
            batch, keys = [], set()
        batch.append(item)
        keys.add(key)
    if batch:
        yield batch


def _still_pending(sent: list[PendingItem], unprocessed: list[dict[str, Any]]) -> list[PendingItem]:
    """The sent items DynamoDB handed back, matched by digest (it may respell numbers and binary)."""
    by_digest = {item_digest(p.wire): p for p in sent}
    left = []
    for request in unprocessed:
        digest = item_digest(request["PutRequest"]["Item"])
        if digest not in by_digest:
            raise CarveError("BatchWriteItem returned an unprocessed item that was not in the request")
        left.append(by_digest[digest])
    return left


def _failed(item: PendingItem, reason: str) -> FailedItem:
    return FailedItem(FAILED, item.entity, item.pk, item.sk, item.item, reason)


class _Writer:
    """One task's sending loop and counters."""

    def __init__(
        self,
        client: Any,
        settings: WriteSettings,
        bucket: TokenBucket | None,
        sleep: Callable[[float], None],
        rng: random.Random,
    ):
        self._client = client
        self._settings = settings
        self._bucket = bucket
        self._sleep = sleep
        self._rng = rng
        self.written = 0
        self.consumed = 0.0
        self.throttled = 0
        self.retries = 0
        self.calls = 0

    def stats(self) -> TaskStats:
        return TaskStats(STATS, self.written, self.consumed, self.throttled, self.retries, self.calls)

    def write(self, batch: list[PendingItem]) -> Iterator[FailedItem]:
        """Send the batch until every item is written or the attempts run out; yields what failed."""
        settings = self._settings
        pending, reason = batch, ""
        for attempt in range(1, settings.max_attempts + 1):
            if attempt > 1:
                self.retries += 1
                self._sleep(backoff_delay(attempt - 1, settings.base_delay, settings.max_delay, self._rng))
            try:
                pending, reason = self._send(pending)
            except ClientError as exc:
                if _error_code(exc) != "ValidationException":
                    raise  # wrong table, no access, ...: every item would fail alike, so stop the job
                yield from self._isolate(pending, f"ValidationException: {exc.response['Error'].get('Message', '')}")
                return
            if not pending:
                return
        for item in pending:
            yield _failed(item, f"{reason}; gave up after {settings.max_attempts} attempts")

    def _isolate(self, pending: list[PendingItem], reason: str) -> Iterator[FailedItem]:
        # One invalid item makes DynamoDB reject the whole batch: resend each alone, so only the
        # invalid ones end up in the dead letter.
        if len(pending) == 1:
            yield _failed(pending[0], reason)
            return
        for item in pending:
            yield from self.write([item])

    def _send(self, pending: list[PendingItem]) -> tuple[list[PendingItem], str]:
        """One BatchWriteItem call; returns the items still to send and why."""
        charged = sum(p.wcu for p in pending)
        if self._bucket is not None:
            self._bucket.acquire(charged, self._sleep)
        self.calls += 1
        table = self._settings.table
        try:
            response = self._client.batch_write_item(
                RequestItems={table: [{"PutRequest": {"Item": p.wire}} for p in pending]},
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as exc:
            code = _error_code(exc)
            if code in THROTTLING_CODES:
                self.throttled += 1
                return pending, code
            if code in SERVER_ERROR_CODES or _http_status(exc) >= 500:
                return pending, f"{code or 'server error'} (HTTP {_http_status(exc)})"
            raise
        except (BotoConnectionError, HTTPClientError) as exc:
            return pending, f"connection error: {exc}"
        consumed = sum(c.get("CapacityUnits", 0.0) for c in response.get("ConsumedCapacity", []))
        self.consumed += consumed
        if self._bucket is not None and consumed > charged:
            # DynamoDB charged more than the estimate: take the difference now; the debt makes the
            # next acquire wait, so the budget holds to what was really consumed.
            self._bucket.take(consumed - charged)
        unprocessed = response.get("UnprocessedItems", {}).get(table, [])
        if not unprocessed:
            self.written += len(pending)
            return [], ""
        self.throttled += 1
        left = _still_pending(pending, unprocessed)
        self.written += len(pending) - len(left)
        return left, "UnprocessedItems"


def write_partition(
    rows: Iterable[Any],
    settings: WriteSettings,
    task_rate: float | None,
    client_factory: ClientFactory = dynamodb_client,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Iterator[tuple]:
    """Write one task's rows (entity, pk, sk, item, wcu); yields FailedItem rows, then one TaskStats.

    task_rate is this task's share of the budget in write units per second (None: no limit). The
    bucket holds about one second of it, so a task never bursts much above its share.
    """
    client = client_factory(settings)
    bucket = TokenBucket(task_rate, task_rate, clock) if task_rate else None
    writer = _Writer(client, settings, bucket, sleep, rng or random.Random())
    for batch in batches(pending_items(rows)):
        yield from writer.write(batch)
    yield writer.stats()


# --- driver side -----------------------------------------------------------------------------

FAILED_SCHEMA = StructType(
    [
        StructField("entity", StringType(), False),
        StructField("pk", StringType(), False),
        StructField("sk", StringType(), True),
        StructField("item", StringType(), False),
        StructField("reason", StringType(), False),
    ]
)


@dataclass(frozen=True)
class WriteResult:
    items_written: int
    wcu_consumed: float
    throttled_requests: int
    retries: int
    batches: int
    failed: DataFrame  # entity, pk, sk, item, reason; cached
    failed_count: int


def task_slots(spark: SparkSession) -> int:
    """How many tasks run at once: the budget is split over exactly this many."""
    return max(1, spark.sparkContext.defaultParallelism)


def write_items(
    items_df: DataFrame, settings: WriteSettings, client_factory: ClientFactory = dynamodb_client
) -> WriteResult:
    """Write the items (entity, pk, sk, item, wcu, ...) from the executors within settings' budget.

    Returns what failed instead of raising: the caller puts it in the dead letter and raises
    WriteFailedError when failed_count > 0.
    """
    spark = items_df.sparkSession
    slots = task_slots(spark)
    # One task per slot, all running at once, each with an equal share: together exactly the budget.
    task_rate = None if settings.units_per_second is None else settings.units_per_second / slots
    rows = (
        items_df.select("entity", "pk", "sk", "item", "wcu")
        .repartition(slots)
        # Source order would write an item collection (one pk) back to back and hit the
        # 1,000 WCU/s partition limit; hash order interleaves partition keys.
        .sortWithinPartitions(F.xxhash64("pk", "sk"))
    )
    write = partial(write_partition, settings=settings, task_rate=task_rate, client_factory=client_factory)
    # Read twice (stats now, failed items whenever the caller likes) but the items must be written
    # once. persist keeps PySpark from fusing the filters below into the writing function; the
    # local checkpoint cuts the lineage, so an evicted block can never lead Spark back to the
    # writes. It holds only the small outcome tuples and lives as long as `failed` refers to it.
    outcomes = rows.rdd.mapPartitions(write).persist(StorageLevel.MEMORY_AND_DISK)
    outcomes.localCheckpoint()
    stats = outcomes.filter(lambda o: o[0] == STATS).collect()
    failed = spark.createDataFrame(outcomes.filter(lambda o: o[0] == FAILED).map(lambda o: o[1:]), FAILED_SCHEMA)
    failed = failed.cache()
    failed_count = failed.count()
    return WriteResult(
        items_written=sum(s.written for s in stats),
        wcu_consumed=sum(s.wcu_consumed for s in stats),
        throttled_requests=sum(s.throttled for s in stats),
        retries=sum(s.retries for s in stats),
        batches=sum(s.batches for s in stats),
        failed=failed,
        failed_count=failed_count,
    )
