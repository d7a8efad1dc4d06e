"""Reading a mapping's sources over JDBC: each table once, only the columns used, without losing digits.

The type traps of a plain Spark JDBC read (DESIGN.md) are avoided in the SELECT itself, by the
engine's dialect: numerics, money and floats travel as text (exact), JSON as text, types Spark
does not know as text; timestamps are read in UTC and marked instant or wall clock in the column
metadata, so the transforms know how to print them.

Catalogue queries (describe, row counts for partitioning, changes) run over the driver's own
JDBC connection through py4j: no Spark job; a long answer crosses in one piece (jdbc_rows).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.runtimes.gateway import session_threads
from jobs.sources.connections import Connection
from jobs.sources.dialect import ColumnInfo, TableSchema
from jobs.sources.exact import parse
from transforms.context import ROW_PROBLEM, filter_column
from transforms.errors import SourceError
from transforms.mapping import Mapping, source_id, table_filters
from transforms.values import KIND, combine_problems

ROWS_PER_PARTITION = 200_000
# A catalogue answer comes row by row over py4j (a call per value, ~0.1 ms each); beyond this
# many rows the rest comes in one piece (a local Spark frame, ~30 ms whatever its size).
ROWS_ONE_BY_ONE = 100
OPENING_THREADS = 4  # source tables opened at once (jobs.sources.jdbc.read_sources)


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


def _connect(spark: SparkSession, conn: Connection) -> Any:
    """A JDBC connection of the driver's own (the caller closes it)."""
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
    return connection


def jdbc_rows(spark: SparkSession, conn: Connection, sql: str, session: bool = False) -> list[tuple]:
    """Every row of `sql`, each value as text (or None); with `session`, in a session set up as
    the reader's are (UTC), for values the reader will compare with."""
    connection = _connect(spark, conn)
    try:
        with jdbc_errors(conn):
            if session:
                connection.createStatement().execute(conn.dialect.session_sql())
            result = connection.createStatement().executeQuery(sql)
            width = result.getMetaData().getColumnCount()
            rows = []
            while len(rows) < ROWS_ONE_BY_ONE and result.next():
                rows.append(tuple(result.getString(i + 1) for i in range(width)))
            if len(rows) == ROWS_ONE_BY_ONE:
                rows += _remaining_rows(spark, result, width)
            return rows
    finally:
        connection.close()


def _remaining_rows(spark: SparkSession, result: Any, width: int) -> list[tuple]:
    """The rest of a JDBC result set in one piece: Spark's own JDBC reader takes each value with
    getString (as jdbc_rows does) into a local frame, which crosses to Python in one transfer
    instead of a py4j call per value."""
    jvm = spark.sparkContext._jvm
    schema = spark._jsparkSession.parseDataType(
        StructType([StructField(f"c{i}", StringType()) for i in range(width)]).json())
    rows = jvm.org.apache.spark.sql.execution.datasources.jdbc.JdbcUtils.resultSetToRows(result, schema)
    frame = spark._jsparkSession.createDataFrame(jvm.scala.collection.JavaConverters.seqAsJavaList(rows.toList()),
                                                 schema)
    return [tuple(row) for row in DataFrame(frame, spark).collect()]


def local_answers(spark: SparkSession, conn: Connection, queries: Iterable[str]) -> DataFrame:
    """The answers of `queries`, one after another, in one local frame: each in the order its
    query gives it, typed exactly as a Spark JDBC read of it (Spark's own schema and value
    getters, JdbcUtils, with the engine's Spark dialect), in a session set up as the reader's
    are (UTC). For many small answers of one shape (the access patterns' per-sample SQL): one
    driver connection and one frame, where a read_query per answer costs a schema round trip,
    a Spark job and a branch of a union each."""
    jvm = spark.sparkContext._jvm
    utils = jvm.org.apache.spark.sql.execution.datasources.jdbc.JdbcUtils
    dialect = jvm.org.apache.spark.sql.jdbc.JdbcDialects.get(conn.spark_url)
    as_list = jvm.scala.collection.JavaConverters.seqAsJavaList
    rows, schema = jvm.java.util.ArrayList(), None
    connection = _connect(spark, conn)
    try:
        with jdbc_errors(conn, "the query does not run: "):
            connection.createStatement().execute(conn.dialect.session_sql())
            for sql in queries:
                result = connection.createStatement().executeQuery(sql)
                # As Spark's reader resolves a query's schema: every column nullable, no TIMESTAMP_NTZ.
                shape = utils.getSchema(result, dialect, True, False)
                if schema is None:
                    schema = shape
                elif shape.simpleString() != schema.simpleString():
                    raise SourceError(f"connection '{conn.name}': the answers differ in their columns: "
                                      f"{schema.simpleString()}, then {shape.simpleString()} for {sql}")
                rows.addAll(as_list(utils.resultSetToRows(result, schema, dialect).toList()))
                result.close()
    finally:
        connection.close()
    if schema is None:
        raise ValueError("local_answers needs at least one query")
    return DataFrame(spark._jsparkSession.createDataFrame(rows, schema), spark)


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
    """How one source table is read: its columns, its consumers' filters, a pushed-down WHERE, partitioning."""

    table: str
    columns: tuple[ColumnInfo, ...]
    filters: tuple[str, ...] = ()  # each is evaluated by the database into its own column
    where: str | None = None
    partition_column: str | None = None


def filter_verdicts(conn: Connection, filters: Iterable[str]) -> list[str]:
    """`CASE WHEN (filter) THEN 1 ELSE 0 END AS <its column>` per filter: the database's verdict."""
    return [f"CASE WHEN ({f}) THEN 1 ELSE 0 END AS {conn.dialect.quote(filter_column(f))}" for f in filters]


def read_table(spark: SparkSession, conn: Connection, read: TableRead) -> DataFrame:
    dialect = conn.dialect
    selects = [dialect.select_expression(c) for c in read.columns]
    select_list = ", ".join([f"{expr} AS {dialect.quote(c.name)}" for (expr, _), c in zip(selects, read.columns, strict=True)]
                            + filter_verdicts(conn, read.filters))
    where = f" WHERE {read.where}" if read.where else ""
    # A subquery in dbtable, not the query option: `query` cannot be combined with partitionColumn.
    subquery = f"(SELECT {select_list} FROM {qualified(conn, read.table)}{where}) carve_src"
    options = conn.options() | {"dbtable": subquery}
    if read.partition_column:
        options |= _partitioning(spark, conn, read)
    with jdbc_errors(conn, f"cannot read {read.table}: "):
        df = spark.read.format("jdbc").options(**options).load()
    columns, problems = [], []
    for (_, kind), c in zip(selects, read.columns, strict=True):
        parsed = parse(df[c.name], kind, f"{read.table}.{c.name}")
        metadata = {KIND: parsed.kind} if parsed.kind else {}
        columns.append(parsed.column.alias(c.name, metadata=metadata))
        if parsed.problem is not None:
            problems.append(parsed.problem)
    verdicts = [df[filter_column(f)] for f in read.filters]
    return df.select(*columns, *verdicts, *([combine_problems(problems).alias(ROW_PROBLEM)] if problems else []))


def read_query(spark: SparkSession, conn: Connection, query: str, filters: tuple[str, ...] = ()) -> DataFrame:
    select_list = ", ".join(["carve_query.*", *filter_verdicts(conn, filters)])
    dbtable = f"(SELECT {select_list} FROM ({query}) carve_query) carve_src"
    with jdbc_errors(conn, "the query does not run: "):
        return spark.read.format("jdbc").options(**(conn.options() | {"dbtable": dbtable})).load()


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


def plan_read(conn: Connection, table: str, described: TableSchema, filters: list[str | None],
              wanted: set[str], partitioned: bool) -> TableRead:
    """How to read one source table: the columns the mapping uses, its filters, a partition key
    (none unless `partitioned`)."""
    columns = tuple(c for c in described.columns if c.name in wanted) or described.columns[:1]
    # Rows no reader wants stay in the database: only when every reader of the table filters.
    where = " OR ".join(f"({f})" for f in filters) if all(filters) else None
    key = described.column(described.primary_key[0]) if described.primary_key and partitioned else None
    partition = key if key is not None and key.data_type in conn.dialect.integer_types else None
    if partition is not None and partition not in columns:
        columns += (partition,)
    return TableRead(table, columns, _distinct(filters), where, partition.name if partition else None)


def _distinct(filters: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f for f in filters if f))


@dataclass(frozen=True)
class SchemaFrames:
    """What compiling a mapping needs from its source, without reading a row."""

    frames: dict[str, DataFrame]  # every table and query, all columns
    missing: dict[str, str]  # source id -> why it cannot be read
    bad_filters: dict[str, str]  # filter -> the database's error


def full_schema_frames(spark: SparkSession, conn: Connection, mapping: Mapping) -> SchemaFrames:
    """Lazy frames of every table with all its columns (compiling against them reads no rows).

    Each filter is tried on its own first (in a statement that returns no rows), so that a
    mistake in one is reported on its line with the database's own words.
    """
    frames, missing, bad = {}, {}, {}
    for table, filters in table_filters(mapping).items():
        try:
            described = describe_table(spark, conn, table)
        except MissingTableError as exc:
            missing[table] = exc.detail
            continue
        good = _try_filters(spark, conn, qualified(conn, table), _distinct(filters), bad)
        frames[table] = read_table(spark, conn, TableRead(table, described.columns, good))
    for name, entity in mapping.entities.items():
        if not entity.query:
            continue
        try:
            jdbc_rows(spark, conn, f"SELECT * FROM ({entity.query}) carve_query WHERE 1 = 0")
        except SourceError as exc:
            missing[source_id(name, entity)] = f"the query does not run: {_database_words(exc)}"
            continue
        good = _try_filters(spark, conn, f"({entity.query}) carve_query", _distinct([entity.filter]), bad)
        frames[source_id(name, entity)] = read_query(spark, conn, entity.query, good)
    return SchemaFrames(frames, missing, bad)


def _try_filters(spark: SparkSession, conn: Connection, source: str, filters: tuple[str, ...],
                 bad: dict[str, str]) -> tuple[str, ...]:
    good = []
    for condition in filters:
        try:
            jdbc_rows(spark, conn, f"SELECT {filter_verdicts(conn, [condition])[0]} FROM {source} WHERE 1 = 0")
            good.append(condition)
        except SourceError as exc:
            bad[condition] = _database_words(exc)
    return tuple(good)


def _database_words(exc: SourceError) -> str:
    return str(exc).split(": ", 1)[-1]


def read_sources(spark: SparkSession, conn: Connection, mapping: Mapping, needed: dict[str, set[str]],
                 cache: bool = True, partitioned: bool = True) -> dict[str, DataFrame]:
    """Each source table once (projected, filtered where possible), cached for every consumer
    (not cached: each consumer reads it again). A table with an integer primary key is read in
    partitions, after a query for the key's bounds and the row count; not `partitioned`, each
    table is one partition, for reads known to be small (a plan's sample, whose bounds query
    would evaluate the sample's condition over the whole table once more).

    The tables are opened together: opening one is a few catalogue queries, the bounds query and
    Spark's schema query, each on a new connection and waiting on the database."""
    def open_table(table: str, filters: list[str | None]) -> DataFrame:
        described = describe_table(spark, conn, table)
        return read_table(spark, conn, plan_read(conn, table, described, filters, needed.get(table, set()), partitioned))

    with session_threads(spark, OPENING_THREADS, "carve-open") as pool:
        opening = {table: pool.submit(open_table, table, filters) for table, filters in table_filters(mapping).items()}
        frames = {table: frame.result() for table, frame in opening.items()}
    frames |= {source_id(name, entity): read_query(spark, conn, entity.query, _distinct([entity.filter]))
               for name, entity in mapping.entities.items() if entity.query}
    return {name: df.persist(StorageLevel.MEMORY_AND_DISK) if cache else df for name, df in frames.items()}


def fill(frames: Iterable[DataFrame]) -> None:
    """Read cached frames into their caches in one Spark job: for small tables a job each costs
    more in scheduling than the reading."""
    reduce(DataFrame.unionAll, [df.select(F.lit(1).alias("row")) for df in frames]).count()


def unpersist(frames: Iterable[DataFrame]) -> None:
    for df in frames:
        df.unpersist()
