"""Changes found by a watermark: a column that only grows, read as its maximum.

A cycle reads each table's maximum first, then applies the rows above the saved value and up to
that maximum (jobs.sync.affected.watermark_change), or, when more rows than the cycle's limit
wait, up to the value the limit reaches (with every row holding it); that value becomes the saved
one once the items are in DynamoDB, and the next cycle goes on from there. A full load reads the maxima before it reads the tables, so the rows it
loads are at or below them and the first sync starts there. A watermark sees inserts and
updates, never deletes, and trusts that a row committed later never carries a smaller value.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import SparkSession

from jobs.sources.connections import Connection
from jobs.sources.jdbc import describe_table, jdbc_rows, qualified
from jobs.sync.affected import watermark_change
from jobs.sync.changes import TableChanges, saved_positions
from jobs.sync.state import Position, fingerprint
from transforms.errors import SourceError
from transforms.mapping import Mapping, Watermark

KIND = "watermark"


def tables(mapping: Mapping) -> dict[str, str]:
    """The mapping's tables followed by a watermark, with their column."""
    if mapping.sync is None:
        return {}
    return {t: s.watermark for t, s in mapping.sync.tables.items() if isinstance(s, Watermark)}


def marks(spark: SparkSession, conn: Connection, mapping: Mapping) -> list[Position]:
    """Every table's watermark now, as the positions a full load starting now reaches."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    shape = fingerprint(mapping)
    return [Position(table, KIND, {"upto": _maximum(spark, conn, table, column)}, shape, now)
            for table, column in tables(mapping).items()]


def changes(spark: SparkSession, conn: Connection, mapping: Mapping, saved: dict[str, Position],
            limit: int) -> list[TableChanges]:
    """Per table, the rows changed since its saved position (which must exist and be a watermark):
    up to the maximum read now, or, past `limit` rows in the cycle, up to the value that reaches it
    (every row holding that value comes with it; `more` says that others wait)."""
    out = []
    positions = saved_positions(KIND, tables(mapping), saved)
    room = limit
    for after in marks(spark, conn, mapping):
        table, column = after.table, tables(mapping)[after.table]
        before = positions[table]
        low, high = before.value.get("upto"), after.value["upto"]
        if high is None or high == low:
            out.append(TableChanges(table, before, before, None, 0))
            continue
        condition = watermark_change(conn, column, low, high)
        count = _count(spark, conn, table, condition)
        more = count > room
        if more:  # the value of the room-th row: the cycle goes that far
            quoted = conn.dialect.quote(column)
            [(high,)] = jdbc_rows(spark, conn, f"SELECT {conn.dialect.as_text(quoted)} FROM {qualified(conn, table)} "
                                               f"WHERE {condition} ORDER BY {quoted} LIMIT 1 OFFSET {max(room, 1) - 1}",
                                  session=True)
            after = Position(table, KIND, {"upto": high}, after.fingerprint, after.updated_at)
            condition = watermark_change(conn, column, low, high)
            count = _count(spark, conn, table, condition)
        room = max(room - count, 0)
        out.append(TableChanges(table, before, after, condition, count, {"upsert": count}, more=more))
    return out


def _count(spark: SparkSession, conn: Connection, table: str, condition: str) -> int:
    [(count,)] = jdbc_rows(spark, conn, f"SELECT count(*) FROM {qualified(conn, table)} WHERE {condition}", session=True)
    return int(count)


def _maximum(spark: SparkSession, conn: Connection, table: str, column: str) -> str | None:
    described = describe_table(spark, conn, table)
    if described.column(column) is None:
        known = ", ".join(c.name for c in described.columns)
        raise SourceError(f"sync.tables.{table}.watermark: {table} has no column '{column}'; its columns are: {known}")
    quoted = conn.dialect.quote(column)
    [(value,)] = jdbc_rows(spark, conn, f"SELECT {conn.dialect.as_text(f'max({quoted})')} FROM {qualified(conn, table)}",
                           session=True)
    return value
