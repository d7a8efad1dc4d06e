"""Reading a mapping's sources over JDBC: each table once, only the columns used, without losing digits.

The type traps of a plain Spark JDBC read (DESIGN.md) are avoided in the SELECT itself, by the
engine's dialect: numerics, money and floats travel as text (exact), JSON as text, types Spark
does not know as text; timestamps are read in UTC and marked instant or wall clock in the column
metadata, so the transforms know how to print them.

Catalogue queries (describe, row counts for partitioning) run over the driver's own JDBC
connection through py4j: no Spark job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.sources.connections import Connection
from jobs.sources.dialect import ColumnInfo, TableSchema
from transforms.errors import SourceError
from transforms.mapping import Mapping, source_id, table_filters
from transforms.values import KIND

ROWS_PER_PARTITION = 200_000


# --- the catalogue, over the driver's own JDBC connection ----------------------------------------


def _java_message(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"(?:SQLException|Exception): (.+)", text)
    return (match.group(1) if match else text).strip().splitlines()[0]


def _py4j_errors() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JError

    return (Py4JError,)


@contextmanager
def jdbc_errors(conn: Connection, what: str = "") -> Iterator[None]:
    """A failure of the JDBC driver (a Java exception through py4j) as a SourceError; never the password."""
    try:
        yield
    except _py4j_errors() as exc:
        raise SourceError(f"connection '{conn.name}': {what}{_java_message(exc)}") from None


def jdbc_rows(spark: SparkSession, conn: Connection, sql: str) -> list[tuple]:
    """Every row of `sql`, each value as text (or None)."""
    jvm = spark.sparkContext._jvm
    props = jvm.java.util.Properties()
    for key in ("user", "password"):
        value = conn.options().get(key)
        if value:
            props.setProperty(key, value)
    with jdbc_errors(conn, f"cannot connect to {conn.safe_url}: "):
        driver = reduce(getattr, conn.dialect.driver.split("."), jvm)()
        connection = driver.connect(conn.spark_url, props)
    if connection is None:
        raise SourceError(f"connection '{conn.name}': the driver does not accept {conn.safe_url}")
    try:
        with jdbc_errors(conn):
            result = connection.createStatement().executeQuery(sql)
            width = result.getMetaData().getColumnCount()
            rows = []
            while result.next():
                rows.append(tuple(result.getString(i + 1) for i in range(width)))
            return rows
    finally:
        connection.close()


class MissingTableError(SourceError):
    def __init__(self, connection: str, detail: str):
        self.detail = detail
        super().__init__(f"connection '{connection}': {detail}")


def split_table(table: str) -> tuple[str | None, str]:
    """('public', 'orders') of 'public.orders'; (None, 'orders') of 'orders'."""
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def describe_table(spark: SparkSession, conn: Connection, table: str) -> TableSchema:
    schema, name = split_table(table)

    def query(sql: str) -> list[tuple]:
        return jdbc_rows(spark, conn, sql)

    described = conn.dialect.describe(query, schema, name)
    if not described.columns:
        known = ", ".join(conn.dialect.tables(query, schema)) or "(none visible to this user)"
        raise MissingTableError(conn.name, f"table '{table}' does not exist; tables in that schema are: {known}")
    return described


def qualified(conn: Connection, table: str) -> str:
    return ".".join(conn.dialect.quote(part) for part in table.split("."))


# --- reads -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableRead:
    """How one source table is read: its columns, optional pushed-down filter, partitioning."""

    table: str
    columns: tuple[ColumnInfo, ...]
    where: str | None = None
    partition_column: str | None = None


def read_table(spark: SparkSession, conn: Connection, read: TableRead) -> DataFrame:
    dialect = conn.dialect
    selects = [dialect.select_expression(c) for c in read.columns]
    select_list = ", ".join(f"{expr} AS {dialect.quote(c.name)}" for (expr, _), c in zip(selects, read.columns, strict=True))
    where = f" WHERE {read.where}" if read.where else ""
    # A subquery in dbtable, not the query option: `query` cannot be combined with partitionColumn.
    subquery = f"(SELECT {select_list} FROM {qualified(conn, read.table)}{where}) carve_src"
    options = conn.options() | {"dbtable": subquery}
    if read.partition_column:
        options |= _partitioning(spark, conn, read)
    df = spark.read.format("jdbc").options(**options).load()
    return df.select(*[
        F.col(c.name).alias(c.name, metadata={KIND: kind}) if kind else F.col(c.name)
        for (_, kind), c in zip(selects, read.columns, strict=True)
    ])


def read_query(spark: SparkSession, conn: Connection, query: str) -> DataFrame:
    return spark.read.format("jdbc").options(**(conn.options() | {"dbtable": f"({query}) carve_query"})).load()


def _partitioning(spark: SparkSession, conn: Connection, read: TableRead) -> dict[str, str]:
    where = f" WHERE {read.where}" if read.where else ""
    column = conn.dialect.quote(read.partition_column)
    [(low, high, count)] = jdbc_rows(
        spark, conn, f"SELECT min({column}), max({column}), count(*) FROM {qualified(conn, read.table)}{where}"
    )
    if low is None or int(count) <= ROWS_PER_PARTITION:
        return {}
    partitions = min(int(count) // ROWS_PER_PARTITION + 1, 4 * spark.sparkContext.defaultParallelism)
    # Bounds only set the stride; rows outside them still land in the first or last partition.
    return {"partitionColumn": read.partition_column, "lowerBound": low, "upperBound": high,
            "numPartitions": str(partitions)}


def plan_reads(spark: SparkSession, conn: Connection, mapping: Mapping,
               needed: dict[str, set[str]]) -> dict[str, TableRead]:
    """One read per source table: the columns the mapping uses, the filter every reader shares, a partition key."""
    reads = {}
    for table, filters in table_filters(mapping).items():
        described = describe_table(spark, conn, table)
        wanted = needed.get(table, set())
        columns = tuple(c for c in described.columns if c.name in wanted) or described.columns[:1]
        # Push the filters down only when every reader of the table filters: it is read once for all.
        where = " OR ".join(f"({f})" for f in filters) if all(filters) else None
        key = described.column(described.primary_key[0]) if described.primary_key else None
        partition = key if key is not None and key.data_type in conn.dialect.integer_types else None
        if partition is not None and partition not in columns:
            columns += (partition,)
        reads[table] = TableRead(table, columns, where, partition.name if partition else None)
    return reads


def full_schema_frames(
    spark: SparkSession, conn: Connection, mapping: Mapping
) -> tuple[dict[str, DataFrame], dict[str, str]]:
    """Lazy frames of every table with all its columns (compiling against them reads no rows),
    and why each table that is not there could not be described."""
    frames, missing = {}, {}
    for table in table_filters(mapping):
        try:
            described = describe_table(spark, conn, table)
        except MissingTableError as exc:
            missing[table] = exc.detail
            continue
        frames[table] = read_table(spark, conn, TableRead(table, described.columns))
    frames |= _query_frames(spark, conn, mapping)
    return frames, missing


def read_sources(spark: SparkSession, conn: Connection, mapping: Mapping,
                 needed: dict[str, set[str]]) -> dict[str, DataFrame]:
    """Each source table once (projected, filtered where possible), cached for every consumer."""
    frames = {table: read_table(spark, conn, read) for table, read in plan_reads(spark, conn, mapping, needed).items()}
    frames |= _query_frames(spark, conn, mapping)
    return {name: df.persist(StorageLevel.MEMORY_AND_DISK) for name, df in frames.items()}


def _query_frames(spark: SparkSession, conn: Connection, mapping: Mapping) -> dict[str, DataFrame]:
    return {source_id(name, entity): read_query(spark, conn, entity.query)
            for name, entity in mapping.entities.items() if entity.query}


def unpersist(frames: Iterable[DataFrame]) -> None:
    for df in frames:
        df.unpersist()
