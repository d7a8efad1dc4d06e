"""What `carve plan` learns from the items it built: per entity and for the whole load.

Everything is measured on the items the full run would build (the same transforms); in a sample,
each entity's totals are scaled by its rows in the source over its rows in the sample. Sizes,
write units and import bytes are DynamoDB's own rules: a write costs one unit per started KB of
the item, in the table and again in every global secondary index that holds the item (carve
creates indexes with projection ALL, so the index entry is as large as the item).
"""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.plan.sample import EntitySample
from jobs.runtimes.gateway import session_threads
from jobs.sizes import percentiles, size_columns, size_figures
from transforms.errors import CarveError
from transforms.mapping import Mapping
from transforms.wire import KB, MAX_ITEM_BYTES

NEAR_LIMIT = 0.9 * MAX_ITEM_BYTES  # "within 10 % of 400 KB"
TOP = 10
SAMPLE_ITEMS = 2
# An Import-from-S3 file in DynamoDB JSON holds one {"Item":<the item>} per line.
IMPORT_LINE_BYTES = len('{"Item":}\n')
PARTITION_WCU_PER_SECOND = 1000  # one partition key takes at most this many write units per second


@dataclass(frozen=True)
class LoadFigures:
    by_entity: dict[str, dict[str, Any]]
    write_units: dict[str, Any]  # {"table": n, "indexes": {name: n}, "total": n}
    import_bytes: int
    largest_items: list[dict[str, Any]]
    collections: dict[str, list[dict[str, Any]]]  # by_items, by_bytes
    hot_keys: list[dict[str, Any]]
    samples: dict[str, list[Any]]
    sampled: bool


def in_index(mapping: Mapping) -> dict[str, Column]:
    """Per index, whether an item lands in it: it has every key attribute of the index."""
    attrs = sorted({a for index in mapping.target.indexes for a in (index.partition, index.sort) if a})
    if not attrs:
        return {}
    schema = T.StructType([T.StructField(a, T.MapType(T.StringType(), T.StringType())) for a in attrs])
    parsed = F.from_json("item", schema)
    out = {}
    for index in mapping.target.indexes:
        held = parsed[index.partition].isNotNull()
        out[index.name] = held & parsed[index.sort].isNotNull() if index.sort else held
    return out


def measured(items: DataFrame, mapping: Mapping) -> DataFrame:
    """What the figures read of the built items: entity, pk, sk, item, size, problem, the table
    write units of each and, per index, whether the item lands in it."""
    units = F.ceil(F.col("size") / KB)
    return items.select("entity", "pk", "sk", "item", "size", "problem", units.alias("units"),
                        *[flag.alias(f"in_{name}") for name, flag in in_index(mapping).items()])


def measure(frame: DataFrame, mapping: Mapping, samples: MappingABC[str, EntitySample]) -> LoadFigures:
    """Every figure of the plan from `measured` items, which the caller has computed once
    (cached or checkpointed): each figure is a small job over them, whose time is mostly the
    driver planning it, so the four run together."""
    indexes = [index.name for index in mapping.target.indexes]
    good = frame.where(F.col("problem").isNull())
    with session_threads(frame.sparkSession, 4, "carve-plan") as pool:
        entities = pool.submit(_by_entity, frame, indexes, samples)
        tops = pool.submit(_top_keys, good)
        largest = pool.submit(lambda: frame.orderBy(F.desc("size"), "pk", "sk").limit(TOP).collect())
        typical = pool.submit(_samples, good)
        by_entity = entities.result()
        write_units = _total_units(by_entity, indexes)
        return LoadFigures(
            by_entity=by_entity,
            write_units=write_units,
            import_bytes=sum(e["import_bytes"] for e in by_entity.values()),
            largest_items=[{"entity": r.entity, "pk": r.pk, "sk": r.sk, "size": r["size"], "problem": r.problem}
                           for r in largest.result()],
            collections={"by_items": tops.result()["items"], "by_bytes": tops.result()["bytes"]},
            hot_keys=_hot_keys(tops.result()["units"], write_units["table"]),
            samples=typical.result(),
            sampled=not all(s.whole for s in samples.values()),
        )


def _by_entity(frame: DataFrame, indexes: list[str], samples: MappingABC[str, EntitySample]) -> dict[str, dict[str, Any]]:
    good = F.col("problem").isNull()
    size = F.col("size")
    aggregates = [
        F.count(F.lit(1)).alias("built"),
        F.count("problem").alias("quarantined"),
        F.sum(F.when(good, F.col("units"))).alias("units"),
        F.sum(F.when(good, size)).alias("bytes"),
        F.sum(F.when(good, F.octet_length("item") + IMPORT_LINE_BYTES)).alias("import_bytes"),
        F.count(F.when(size > MAX_ITEM_BYTES, 1)).alias("over_limit"),
        F.count(F.when((size > NEAR_LIMIT) & (size <= MAX_ITEM_BYTES), 1)).alias("near_limit"),
        *[F.sum(F.when(good & F.col(f"in_{name}"), F.col("units"))).alias(f"units_{name}") for name in indexes],
        *size_columns(F.when(good, size)),
    ]
    out = {}
    for row in frame.groupBy("entity").agg(*aggregates).orderBy("entity").collect():
        sample = samples[row.entity]
        rows = row.built if sample.whole else sample.rows  # a whole entity's sample is every row
        scale = rows / row.built
        out[row.entity] = {
            "built": rows,
            "quarantined": round(row.quarantined * scale),
            "write_units": round((row.units or 0) * scale),
            "index_write_units": {name: round((row[f"units_{name}"] or 0) * scale) for name in indexes},
            "bytes": round((row.bytes or 0) * scale),
            "import_bytes": round((row.import_bytes or 0) * scale),
            "over_400kb": round(row.over_limit * scale),
            "within_10pct_of_400kb": round(row.near_limit * scale),
            "sizes": size_figures(row),
            "sample": {"rows": row.built, "share": round(sample.fraction, 4), "scale": round(scale, 4)},
        }
    for name, sample in samples.items():
        if name not in out and sample.rows:
            raise CarveError(f"the sample of entity '{name}' holds none of its {sample.rows:,} rows; "
                             "ask for more with --sample, or read everything with --full")
    return out


def _total_units(by_entity: MappingABC[str, dict[str, Any]], indexes: list[str]) -> dict[str, Any]:
    table = sum(e["write_units"] for e in by_entity.values())
    per_index = {name: sum(e["index_write_units"][name] for e in by_entity.values()) for name in indexes}
    return {"table": table, "indexes": per_index, "total": table + sum(per_index.values())}


def _top_keys(good: DataFrame) -> dict[str, list[Any]]:
    """The partition keys with the most items, the most bytes (an item collection is all the items
    of one partition key) and the most table write units, as rows, in one Spark job."""
    per_key = good.groupBy("pk").agg(F.count(F.lit(1)).alias("items"), F.sum("size").alias("bytes"),
                                     F.sum("units").alias("units"))
    orders = ("items", "bytes", "units")
    # One action; the three top-N reuse one aggregation (Spark reuses the identical exchange).
    tops = [per_key.orderBy(F.desc(o), "pk").limit(TOP).select(F.lit(o).alias("order"), "*") for o in orders]
    rows = reduce(DataFrame.unionByName, tops).collect()

    def top(order: str) -> list[Any]:
        return sorted((r for r in rows if r.order == order), key=lambda r: (-r[order], r.pk))

    return {
        "items": [{"pk": r.pk, "items": r["items"], "bytes": r.bytes} for r in top("items")],
        "bytes": [{"pk": r.pk, "items": r["items"], "bytes": r.bytes} for r in top("bytes")],
        "units": top("units"),
    }


def _hot_keys(rows: list[Any], total: int) -> list[dict[str, Any]]:
    """The keys with the most table write units, with their share of the whole load's (`total`,
    estimated in a sample: a sampled key has all its items, so its own units are exact) and the
    seconds each needs at DynamoDB's 1,000 WCU/s per partition key."""
    return [{"pk": r.pk, "write_units": r.units, "share": r.units / total if total else 0.0,
             "seconds_at_partition_limit": r.units / PARTITION_WCU_PER_SECOND} for r in rows]


def _samples(good: DataFrame) -> dict[str, list[Any]]:
    """Per entity, the items nearest its median size (the p50 of the entity's figures, by the same
    aggregate): what a typical item looks like."""
    entity = Window.partitionBy("entity")
    median = percentiles(F.col("size")).over(entity)[0]
    first = F.row_number().over(entity.orderBy(F.abs(F.col("size") - median), "pk", "sk"))
    rows = good.withColumn("n", first).where(F.col("n") <= SAMPLE_ITEMS).orderBy("entity", "n").collect()
    out: dict[str, list[Any]] = {}
    for r in rows:
        out.setdefault(r.entity, []).append(json.loads(r.item))
    return out
