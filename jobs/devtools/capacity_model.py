"""DynamoDB's write-capacity rules as plain Python: write costs, token buckets, admission.

The capacity proxy (`jobs.devtools.capacity_proxy`) decides with these whether a write fits a table's budget.
Nothing here does I/O or reads a clock of its own: the clock is a parameter, so the tests drive
time by hand.

Modelled, as DynamoDB documents it:

- item size: by DynamoDB's published rules (transforms.wire, shared with the writer);
- a write costs 1 WCU per started KB of the item, and the same again for every global secondary
  index whose key attributes the item has;
- a table's bucket refills at its write capacity per second and keeps up to `burst_seconds` of
  unused capacity (at least one second's worth);
- one partition key takes at most `partition_limit` WCU per second (its own bucket, one second
  deep); the table part of a write counts against it, index writes go to the index's partitions.

Not modelled: a write that replaces or deletes an item costs the larger of the old and the new
item in DynamoDB, but the proxy never reads the old item, so it charges what the request carries
(DeleteItem: the key; UpdateItem: the key and the values the update names). Index projections
(KEYS_ONLY, INCLUDE) are charged as ALL, an index key change (delete + put in the index) as one
write, and index partitions have no per-key limit. A bucket starts full.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

from transforms.wire import item_size, utf8_len, value_size, write_units

Clock = Callable[[], float]

# --- tables and write costs --------------------------------------------------------------------


@dataclass(frozen=True)
class IndexKey:
    """A global secondary index's name and key attributes."""

    name: str
    partition_key: str
    sort_key: str | None = None

    def holds(self, attributes: Iterable[str] | Mapping[str, Any]) -> bool:
        """Whether an item with these attributes lands in the index (it needs every key attribute)."""
        return self.partition_key in attributes and (self.sort_key is None or self.sort_key in attributes)


@dataclass(frozen=True)
class TableInfo:
    """What the proxy needs to know of a table, from DescribeTable.

    write_capacity is the provisioned WCU, or None for an on-demand (PAY_PER_REQUEST) table.
    """

    name: str
    partition_key: str
    sort_key: str | None
    indexes: tuple[IndexKey, ...]
    write_capacity: float | None
    active: bool = True

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> "TableInfo":
        """From DescribeTable's `Table`."""

        def keys(schema: Sequence[Mapping[str, str]]) -> tuple[str, str | None]:
            by_type = {k["KeyType"]: k["AttributeName"] for k in schema}
            return by_type["HASH"], by_type.get("RANGE")

        partition_key, sort_key = keys(table["KeySchema"])
        indexes = tuple(
            IndexKey(g["IndexName"], *keys(g["KeySchema"])) for g in table.get("GlobalSecondaryIndexes", ())
        )
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        units = table.get("ProvisionedThroughput", {}).get("WriteCapacityUnits") or 0
        # dynalite reports an on-demand table's throughput as 0 units, as DynamoDB does.
        capacity = None if billing == "PAY_PER_REQUEST" or units <= 0 else float(units)
        return cls(table["TableName"], partition_key, sort_key, indexes, capacity, table.get("TableStatus") == "ACTIVE")

    def key_of(self, item: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        """The item's primary key, hashable (for duplicate checks)."""
        if self.sort_key is None:
            return (_key_value(item[self.partition_key]),)
        return _key_value(item[self.partition_key]), _key_value(item[self.sort_key])

    def partition_of(self, item: Mapping[str, Any]) -> tuple[str, str]:
        """The partition key value, hashable (for the per-key bucket): ("S", "CUSTOMER#1")."""
        return _key_value(item[self.partition_key])


def _key_value(value: Mapping[str, Any]) -> tuple[str, str]:
    # Key attributes are S, N or B: one type and one string.
    ((kind, inner),) = value.items()
    if not isinstance(inner, str):
        raise TypeError(f"a key attribute must be S, N or B, not {kind}")
    return kind, inner


@dataclass(frozen=True)
class WriteCost:
    """What one write draws: table units, units per index it lands in, and its partition key."""

    table_units: int
    index_units: Mapping[str, int] = field(default_factory=dict)
    partition: Hashable = ""

    @property
    def total(self) -> int:
        return self.table_units + sum(self.index_units.values())


def put_cost(table: TableInfo, item: Mapping[str, Mapping[str, Any]]) -> WriteCost:
    """A PutItem / PutRequest: the item's units, the same again per index that holds it."""
    units = write_units(item_size(item))
    return WriteCost(units, {i.name: units for i in table.indexes if i.holds(item)}, table.partition_of(item))


def delete_cost(table: TableInfo, key: Mapping[str, Mapping[str, Any]]) -> WriteCost:
    """A DeleteItem / DeleteRequest, charged by its key (DynamoDB charges the deleted item's size)."""
    return WriteCost(write_units(item_size(key)), {}, table.partition_of(key))


_NAME_TOKEN = re.compile(r"#?[A-Za-z_][A-Za-z0-9_]*")


def update_cost(table: TableInfo, request: Mapping[str, Any]) -> WriteCost:
    """An UpdateItem: the key plus the values it writes, as if they were one item (a lower bound).

    It lands in an index when every key attribute of the index is named: in the key, in
    AttributeUpdates, or in the UpdateExpression (directly or through ExpressionAttributeNames).
    """
    key = request["Key"]
    size = item_size(key)
    names = set(key)
    for name, update in request.get("AttributeUpdates", {}).items():
        names.add(name)
        if "Value" in update:
            size += utf8_len(name) + value_size(update["Value"])
    aliases = request.get("ExpressionAttributeNames", {})
    size += sum(utf8_len(n) for n in aliases.values())
    size += sum(value_size(v) for v in request.get("ExpressionAttributeValues", {}).values())
    for token in _NAME_TOKEN.findall(request.get("UpdateExpression", "")):
        names.add(aliases.get(token, token))
    units = write_units(size)
    return WriteCost(units, {i.name: units for i in table.indexes if i.holds(names)}, table.partition_of(key))


# --- buckets -----------------------------------------------------------------------------------


class CapacityBucket:
    """Write units refilled continuously at `rate` per second, holding at most `capacity`.

    Unlike the writer's bucket this one never goes below zero: a write is admitted only when the
    balance covers it. One exception keeps big items writable: a write costing more than the
    bucket can ever hold is admitted when the bucket is full, and empties it.
    """

    def __init__(self, rate: float, capacity: float, clock: Clock):
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

    @property
    def idle_since(self) -> float:
        return self._last

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def covers(self, units: float) -> bool:
        self._refill()
        return self._tokens >= units or (units > self.capacity and self._tokens >= self.capacity)

    def charge(self, units: float) -> None:
        self._refill()
        self._tokens = max(0.0, self._tokens - units)

    def refund(self, units: float) -> None:
        self._refill()
        self._tokens = min(self.capacity, self._tokens + units)

    def reconfigure(self, rate: float, capacity: float) -> None:
        """A new rate and depth (UpdateTable); the balance carries over, cut to the new depth."""
        self._refill()
        self.rate, self.capacity = rate, capacity
        self._tokens = min(self._tokens, capacity)


def table_bucket_capacity(write_capacity: float, burst_seconds: float) -> float:
    """Up to burst_seconds of unused capacity, but never less than one second's worth."""
    return write_capacity * max(1.0, burst_seconds)


class TableBudget:
    """A table's write bucket (None: on-demand, unlimited) and one bucket per partition key value.

    `admit` is the decision DynamoDB makes per item of a BatchWriteItem: each write in turn is
    accepted if the table's bucket covers its total cost and its partition key's bucket covers
    its table part; accepted writes are charged at once, so a later, smaller item may still fit
    where an earlier, bigger one did not.
    """

    # Partition buckets idle for longer than their depth are full again: forgetting them changes
    # nothing, and keeps memory flat over millions of keys.
    PRUNE_EVERY = 5.0

    def __init__(
        self, write_capacity: float | None, burst_seconds: float, partition_limit: float | None, clock: Clock
    ):
        self._clock = clock
        self.write_capacity: float | None = None
        self.burst_seconds = burst_seconds
        self.partition_limit: float | None = None
        self._table: CapacityBucket | None = None
        self._partitions: dict[Hashable, CapacityBucket] = {}
        self._pruned = clock()
        self.configure(write_capacity, burst_seconds, partition_limit)

    def configure(self, write_capacity: float | None, burst_seconds: float, partition_limit: float | None) -> None:
        if (write_capacity, burst_seconds) != (self.write_capacity, self.burst_seconds) or self._table is None:
            if write_capacity is None:
                self._table = None
            elif self._table is None:
                self._table = CapacityBucket(
                    write_capacity, table_bucket_capacity(write_capacity, burst_seconds), self._clock
                )
            else:
                self._table.reconfigure(write_capacity, table_bucket_capacity(write_capacity, burst_seconds))
        if partition_limit != self.partition_limit:
            self._partitions.clear()
        self.write_capacity, self.burst_seconds, self.partition_limit = write_capacity, burst_seconds, partition_limit

    @property
    def available(self) -> float | None:
        """Units in the table's bucket now; None when the table has no limit."""
        return None if self._table is None else self._table.tokens

    @property
    def tracked_partitions(self) -> int:
        """Partition keys with a bucket of their own now (idle ones are forgotten)."""
        return len(self._partitions)

    def _partition(self, partition: Hashable) -> CapacityBucket | None:
        if self.partition_limit is None:
            return None
        bucket = self._partitions.get(partition)
        if bucket is None:
            limit = self.partition_limit
            bucket = self._partitions[partition] = CapacityBucket(limit, limit, self._clock)
        return bucket

    def admit(self, costs: Sequence[WriteCost]) -> list[bool]:
        """For each write in order: accepted (and charged) or not."""
        self._prune()
        decisions = []
        for cost in costs:
            key = self._partition(cost.partition)
            fits = (self._table is None or self._table.covers(cost.total)) and (
                key is None or key.covers(cost.table_units)
            )
            if fits:
                if self._table is not None:
                    self._table.charge(cost.total)
                if key is not None:
                    key.charge(cost.table_units)
            decisions.append(fits)
        return decisions

    def refund(self, costs: Iterable[WriteCost]) -> None:
        """Give back what admitted writes drew when they were not written after all (upstream refused them)."""
        for cost in costs:
            if self._table is not None:
                self._table.refund(cost.total)
            key = self._partitions.get(cost.partition)
            if key is not None:
                key.refund(cost.table_units)

    def _prune(self) -> None:
        now = self._clock()
        if now - self._pruned < self.PRUNE_EVERY or self.partition_limit is None:
            return
        self._pruned = now
        # A bucket one second deep is full again after one second idle.
        stale = [p for p, b in self._partitions.items() if now - b.idle_since >= b.capacity / b.rate]
        for partition in stale:
            del self._partitions[partition]
