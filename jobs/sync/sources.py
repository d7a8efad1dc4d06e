"""The change sources a mapping's sync names, each asked about its own tables."""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import SparkSession

from jobs.sources.connections import Connection
from jobs.sync import binlog, dms, logical, watermark
from jobs.sync.changes import MAX_CHANGES, TableChanges
from jobs.sync.state import Position
from transforms.mapping import Mapping


def marks(spark: SparkSession, conn: Connection, mapping: Mapping) -> list[Position]:
    """Every table's position now: where a full load starting now leaves its changes."""
    return (watermark.marks(spark, conn, mapping) + logical.marks(spark, conn, mapping) +
            binlog.marks(spark, conn, mapping) + dms.marks(spark, conn, mapping))


def changes(spark: SparkSession, conn: Connection, mapping: Mapping, saved: dict[str, Position],
            limit: int = MAX_CHANGES) -> list[TableChanges]:
    """Every table's changes since its saved position, in the mapping's order; each source stops
    where `limit` changes are reached, at the end of a transaction, a file or a watermark value
    (and says `more`)."""
    found = {c.table: c for c in watermark.changes(spark, conn, mapping, saved, limit) +
             logical.changes(spark, conn, mapping, saved, limit) + binlog.changes(spark, conn, mapping, saved, limit) +
             dms.changes(spark, conn, mapping, saved, limit)}
    return [found[table] for table in mapping.sync.tables]


def release(spark: SparkSession, conn: Connection, mapping: Mapping) -> list[str]:
    """When the mapping stops syncing: what a source keeps for carve let go (a replication slot
    dropped); a line per thing done. A binlog position, a watermark and DMS files keep nothing."""
    return logical.release(spark, conn, mapping)


def committed(spark: SparkSession, conn: Connection, positions: Iterable[Position]) -> None:
    """Once positions are saved in the control table: sources that keep changes for carve (a
    replication slot) let go of those before them."""
    logical.committed(spark, conn, positions)
