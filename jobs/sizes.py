"""Item size figures, by DynamoDB's rules (the items' `size` column): percentiles, the largest,
and how many items fall in each power-of-two band up to the 400 KB limit. One aggregation;
run reports and plans share it."""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

SIZE_BOUNDS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 409600)


def percentiles(size: Column) -> Column:
    """The aggregate [p50, p90, p99] of `size` (approximate, within 0.01 %)."""
    return F.percentile_approx(size, [0.5, 0.9, 0.99], 10000)


def size_columns(size: Column) -> list[Column]:
    """Aggregate columns (q, max, b<bound>...) over `size`; NULL sizes are not counted."""
    lower = (0, *SIZE_BOUNDS[:-1])
    bands = [F.count(F.when((size > low) & (size <= high), 1)).alias(f"b{high}")
             for low, high in zip(lower, SIZE_BOUNDS, strict=True)]
    return [percentiles(size).alias("q"), F.max(size).alias("max"), *bands]


def size_figures(row: Row) -> dict[str, Any] | None:
    """p50, p90, p99 (approximate, within 0.01 %), max and the bands up to the largest item's."""
    if row["max"] is None:
        return None
    top = next((bound for bound in SIZE_BOUNDS if bound >= row["max"]), SIZE_BOUNDS[-1])
    return {"p50": row.q[0], "p90": row.q[1], "p99": row.q[2], "max": row["max"],
            "histogram": [{"up_to": bound, "items": row[f"b{bound}"]} for bound in SIZE_BOUNDS if bound <= top]}


def item_sizes(items: DataFrame) -> dict[str, Any] | None:
    return size_figures(items.agg(*size_columns(F.col("size"))).first())
