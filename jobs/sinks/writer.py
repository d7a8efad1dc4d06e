"""carve's writer: items from the executors into DynamoDB with BatchWriteItem, within a write-unit budget.

The writer runs where the items are (`write_partition`, one call per Spark task). Each task asks
the driver's coordinator (jobs.sinks.pacing) for its share of the budget and charges a token
bucket with every batch's write units before sending it; what DynamoDB reports as consumed
(table and GSIs) corrects the charge. Throttles cut the task's pace (AIMD) and, like unprocessed
items, are resent after exponential backoff with jitter, never at once; when the attempts run
out the items come back as failed rows with a reason, and the run puts them in the dead letter
and fails.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from pyspark import StorageLevel, TaskContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs import interrupts
from jobs.sinks.pacing import HEARTBEAT_SECONDS, Budget, Coordinator, Pace
from jobs.sinks.table import TableAddress
from jobs.sinks.transport import Answer, HttpTransport, TransportError
from transforms.errors import SinkError, WriteInterrupted
from transforms.wire import MAX_BATCH_WRITE_REQUESTS, item_digest

BATCH_SECONDS = 0.05  # a batch holds at most this much of its task's pace in write units
MAX_BATCH = MAX_BATCH_WRITE_REQUESTS

THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
SERVER_ERROR_CODES = frozenset({"InternalServerError", "ServiceUnavailable"})


@dataclass(frozen=True)
class WriteSettings:
    table: str
    endpoint_url: str | None
    region: str
    units_per_second: float | None  # budget for the whole job, all tasks together; None = unlimited
    max_attempts: int = 30  # sends per batch, the first included
    base_delay: float = 0.05  # seconds; the backoff ceiling doubles from here on every retry
    max_delay: float = 10.0

    def __post_init__(self) -> None:
        if self.units_per_second is not None and self.units_per_second <= 0:
            raise SinkError("units_per_second must be positive, or None for no limit")
        if self.max_attempts < 1:
            raise SinkError("max_attempts must be at least 1")
        if not 0 < self.base_delay <= self.max_delay:
            raise SinkError("backoff needs 0 < base_delay <= max_delay")

    @property
    def address(self) -> TableAddress:
        return TableAddress(self.table, self.endpoint_url, self.region)


def http_transport(settings: WriteSettings) -> HttpTransport:
    return HttpTransport(settings.address)


TransportFactory = Callable[[WriteSettings], Any]  # returns an object with post(operation, body) -> Answer


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
    wcu_consumed: float  # table and indexes, as DynamoDB reported
    throttled: int  # calls answered with a throttling error or with UnprocessedItems
    retries: int  # calls that resent items after a backoff
    batches: int  # BatchWriteItem calls made, resends included
    timeline: str  # JSON {epoch second: WCU consumed in it}
    wcu_indexes: float = 0.0  # the part of wcu_consumed that went to GSIs


class FailedItem(NamedTuple):
    """An item given up on; kind is always FAILED. The rest is the dead-letter row."""

    kind: str
    entity: str
    pk: str
    sk: str | None
    item: str
    reason: str


class PendingItem(NamedTuple):
    entity: str
    pk: str
    sk: str | None
    item: str  # DynamoDB wire JSON, sent as it is; of a delete, the item's key
    wcu: int
    delete: bool = False


def pending_items(rows: Iterable[Any]) -> Iterator[PendingItem]:
    """Rows with entity, pk, sk, item, wcu and maybe delete (Spark Rows or anything with those attributes)."""
    for row in rows:
        yield PendingItem(row.entity, row.pk, row.sk, row.item, row.wcu, getattr(row, "delete", False))


def batches(items: Iterable[PendingItem], size: int = MAX_BATCH,
            max_units: Callable[[], float] = lambda: math.inf) -> Iterator[list[PendingItem]]:
    """Consecutive batches of at most `size` items and `max_units()` write units (a single item may
    exceed it), never two items with the same key in one batch."""
    batch: list[PendingItem] = []
    keys: set[tuple[str, str | None]] = set()
    units, limit = 0, max_units()
    for item in items:
        key = (item.pk, item.sk)
        if len(batch) == size or key in keys or (batch and units + item.wcu > limit):
            yield batch
            batch, keys, units, limit = [], set(), 0, max_units()
        batch.append(item)
        keys.add(key)
        units += item.wcu
    if batch:
        yield batch


def batch_body(table: str, items: list[PendingItem]) -> bytes:
    """The BatchWriteItem request, joined from the items' wire JSON."""
    requests = ",".join(('{"DeleteRequest":{"Key":' if p.delete else '{"PutRequest":{"Item":') + p.item + "}}"
                        for p in items)
    return ('{"RequestItems":{' + json.dumps(table) + ":[" + requests + ']},"ReturnConsumedCapacity":"INDEXES"}').encode()


def _still_pending(sent: list[PendingItem], unprocessed: list[dict[str, Any]]) -> list[PendingItem]:
    """The sent items DynamoDB handed back, matched by digest (it may respell numbers and binary)."""
    by_digest = {item_digest(json.loads(p.item)): p for p in sent}
    left = []
    for request in unprocessed:
        put = request.get("PutRequest")
        digest = item_digest(put["Item"] if put else request["DeleteRequest"]["Key"])
        if digest not in by_digest:
            raise SinkError("BatchWriteItem returned an unprocessed item that was not in the request")
        left.append(by_digest[digest])
    return left


def _failed(item: PendingItem, reason: str) -> FailedItem:
    return FailedItem(FAILED, item.entity, item.pk, item.sk, item.item, reason)


def _consumed(answer: Answer) -> tuple[float | None, float]:
    """Total and GSI write units from ConsumedCapacity; None when the endpoint reports none."""
    entries = answer.body.get("ConsumedCapacity")
    if not entries:
        return None, 0.0
    total = sum(float(c.get("CapacityUnits", 0.0)) for c in entries)
    indexes = sum(float(i.get("CapacityUnits", 0.0)) for c in entries
                  for i in (c.get("GlobalSecondaryIndexes") or {}).values())
    return total, indexes


class _Writer:
    """One task's sending loop and counters."""

    def __init__(
        self,
        transport: Any,
        settings: WriteSettings,
        share: Any | None,  # pacing.Link or StaticShare; None: no budget
        task: tuple[int, int],
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random,
    ):
        self._transport = transport
        self._settings = settings
        self._share = share
        self._task = task
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self.pace = Pace(share.ask(*task), clock) if share is not None else None
        self._asked = clock()
        self.written = 0
        self.consumed = 0.0
        self.consumed_indexes = 0.0
        self.throttled = 0
        self.retries = 0
        self.calls = 0
        self.timeline: dict[int, float] = {}
        self._unreported = 0.0  # WCU consumed since the coordinator last heard from this task
        self._reported_items = 0  # of self.written, what the coordinator has heard of

    def stats(self) -> TaskStats:
        timeline = json.dumps({str(k): round(v, 3) for k, v in sorted(self.timeline.items())})
        return TaskStats(STATS, self.written, self.consumed, self.throttled, self.retries, self.calls, timeline,
                         self.consumed_indexes)

    def batch_units(self) -> float:
        """At most BATCH_SECONDS of the task's pace in one batch: a 25-item batch of 6 KB items is
        150 WCU, a third of a second at 500 WCU/s; sent at once it would overfill that second."""
        return math.inf if self.pace is None else self.pace.rate * BATCH_SECONDS

    def finish(self) -> None:
        if self._share is not None:
            self._share.ask(*self._task, done=True, wcu=self._unreported, items=self._new_items())

    def _new_items(self) -> int:
        new, self._reported_items = self.written - self._reported_items, self.written
        return new

    def write(self, batch: list[PendingItem]) -> Iterator[FailedItem]:
        """Send the batch until every item is written or the attempts run out; yields what failed."""
        settings = self._settings
        pending, reason = batch, ""
        for attempt in range(1, settings.max_attempts + 1):
            if attempt > 1:
                self.retries += 1
                self._sleep(backoff_delay(attempt - 1, settings.base_delay, settings.max_delay, self._rng))
            pending, reason, invalid = self._send(pending)
            if invalid:
                yield from self._isolate(pending, reason)
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

    def _pace(self, units: float) -> None:
        if self.pace is None:
            return
        now = self._clock()
        if now - self._asked >= HEARTBEAT_SECONDS:
            self._asked = now
            self.pace.set_share(self._share.ask(*self._task, wcu=self._unreported, items=self._new_items()))
            self._unreported = 0.0
        self.pace.acquire(units, self._sleep)

    def _send(self, pending: list[PendingItem]) -> tuple[list[PendingItem], str, bool]:
        """One BatchWriteItem call; returns the items still to send, why, and whether they are invalid."""
        charged = sum(p.wcu for p in pending)
        self._pace(charged)
        self.calls += 1
        table = self._settings.table
        try:
            answer = self._transport.post("BatchWriteItem", batch_body(table, pending))
        except TransportError as exc:
            return pending, f"connection error: {exc}", False
        if answer.status != 200:
            if answer.code in THROTTLING_CODES:
                self.throttled += 1
                if self.pace is not None:
                    self.pace.charge(-charged)  # a throttled call consumed nothing
                    self.pace.throttled()
                return pending, answer.code, False
            if answer.code == "ValidationException":
                return pending, f"ValidationException: {answer.message}", True
            if answer.code in SERVER_ERROR_CODES or answer.status >= 500:
                return pending, f"{answer.code or 'server error'} (HTTP {answer.status})", False
            # Wrong table, no access, bad credentials: every item would fail alike, so stop the job.
            raise SinkError(f"BatchWriteItem into {table} failed: {answer.code or f'HTTP {answer.status}'}: {answer.message}")
        consumed, indexes = _consumed(answer)
        if consumed is not None:
            self.consumed += consumed
            self.consumed_indexes += indexes
            second = int(time.time())
            self.timeline[second] = self.timeline.get(second, 0.0) + consumed
            self._unreported += consumed
            if self.pace is not None and consumed != charged:
                # Correct the estimate by what DynamoDB charged: a debt slows the next send down,
                # a refund (unprocessed items, smaller items than estimated) speeds it up.
                self.pace.charge(consumed - charged)
        unprocessed = answer.body.get("UnprocessedItems", {}).get(table, [])
        if not unprocessed:
            self.written += len(pending)
            return [], "", False
        self.throttled += 1
        if self.pace is not None:
            self.pace.throttled()
        left = _still_pending(pending, unprocessed)
        self.written += len(pending) - len(left)
        return left, "UnprocessedItems", False


def write_partition(
    rows: Iterable[Any],
    settings: WriteSettings,
    share: Any | None,
    transport_factory: TransportFactory = http_transport,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Iterator[tuple]:
    """Write one task's rows (entity, pk, sk, item, wcu); yields FailedItem rows, then one TaskStats.

    share tells this task its part of the budget in write units per second (a pacing.Link to the
    driver's coordinator, or a StaticShare); None writes without a limit.
    """
    context = TaskContext.get()
    task = (context.partitionId(), context.attemptNumber()) if context else (0, 0)
    writer = _Writer(transport_factory(settings), settings, share, task, clock, sleep, rng or random.Random())
    for batch in batches(pending_items(rows), max_units=writer.batch_units):
        yield from writer.write(batch)
    writer.finish()
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
    wcu_indexes: float
    throttled_requests: int
    retries: int
    batches: int
    failed: DataFrame  # entity, pk, sk, item, reason; cached
    failed_count: int
    timeline: dict[int, float]  # epoch second -> WCU consumed, all tasks
    budget_timeline: list[tuple[float, float]]  # (epoch second, WCU/s) whenever the budget changed


def task_slots(spark: SparkSession) -> int:
    """How many tasks run at once: the budget is split over exactly this many."""
    return max(1, spark.sparkContext.defaultParallelism)


def write_items(
    items_df: DataFrame,
    settings: WriteSettings,
    transport_factory: TransportFactory = http_transport,
    budget: Callable[[], Budget] | None = None,
    live: Callable[[str], None] | None = None,
) -> WriteResult:
    """Write the items (entity, pk, sk, item, wcu, ...; with a true `delete`, item is the key of
    one to delete) from the executors within the budget.

    `budget` is re-read while the job runs (a share of the table's capacity follows autoscaling);
    without it, settings.units_per_second is the budget (None: no limit). `live` is told the achieved
    rate every second (the progress line). Returns what failed
    instead of raising: the caller puts it in the dead letter and raises WriteFailedError.
    """
    spark = items_df.sparkSession
    slots = task_slots(spark)
    if budget is None and settings.units_per_second is not None:
        fixed = Budget(settings.units_per_second, f"{settings.units_per_second:,.0f} WCU/s")
        budget = lambda: fixed  # noqa: E731
    rows = (
        items_df.select("entity", "pk", "sk", "item", "wcu",
                        "delete" if "delete" in items_df.columns else F.lit(False).alias("delete"))
        # One task per slot, all running at once, each with its share of the budget.
        .repartition(slots)
        # Source order would write an item collection (one pk) back to back and hit the
        # 1,000 WCU/s partition limit; hash order spreads every partition key over the whole run.
        .sortWithinPartitions(F.xxhash64("pk", "sk"))
    )
    coordinator = None
    if budget is not None:
        host = spark.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")
        coordinator = Coordinator(budget, tasks=slots, slots=slots, host=host, live=live).start()
    try:
        write = partial(write_partition, settings=settings, share=coordinator.link() if coordinator else None,
                        transport_factory=transport_factory)
        # Read twice (stats now, failed items whenever the caller likes) but the items must be
        # written once. persist keeps PySpark from fusing the filters below into the writing
        # function; the local checkpoint cuts the lineage, so an evicted block can never lead
        # Spark back to the writes. It holds only the small outcome tuples.
        outcomes = rows.rdd.mapPartitions(write).persist(StorageLevel.MEMORY_AND_DISK)
        outcomes.localCheckpoint()
        stats = [TaskStats(*o) for o in outcomes.filter(lambda o: o[0] == STATS).collect()]
    except (KeyboardInterrupt, Exception):
        if interrupts.asked():  # the job failed because Ctrl-C cancelled it
            raise WriteInterrupted(coordinator.items_acknowledged if coordinator else None) from None
        raise
    finally:
        if coordinator is not None:
            coordinator.stop()
    failed = spark.createDataFrame(outcomes.filter(lambda o: o[0] == FAILED).map(lambda o: o[1:]), FAILED_SCHEMA)
    failed = failed.cache()
    failed_count = failed.count()
    timeline: dict[int, float] = {}
    for s in stats:
        for second, units in json.loads(s.timeline).items():
            timeline[int(second)] = timeline.get(int(second), 0.0) + units
    return WriteResult(
        items_written=sum(s.written for s in stats),
        wcu_consumed=sum(s.wcu_consumed for s in stats),
        wcu_indexes=sum(s.wcu_indexes for s in stats),
        throttled_requests=sum(s.throttled for s in stats),
        retries=sum(s.retries for s in stats),
        batches=sum(s.batches for s in stats),
        failed=failed,
        failed_count=failed_count,
        timeline=dict(sorted(timeline.items())),
        budget_timeline=coordinator.budget_timeline if coordinator else [],
    )
