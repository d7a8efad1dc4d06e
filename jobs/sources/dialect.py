"""What differs between source engines, behind one small protocol.

A dialect knows its JDBC driver and URL schemes, the SQL that fixes the session (UTC, ISO
intervals), how to quote an identifier, how to describe a table from the catalogue, and the
SELECT expression that reads each column type without losing digits (numerics as text, JSON as
text, timestamps marked instant or wall clock). The reader (jobs.sources.jdbc) does the rest
the same way for every engine.

Adding an engine: one module with a class satisfying `Dialect`, and its line in
jobs.sources.registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Kinds a dialect gives columns it reads as text for jobs.sources.exact to parse (the reader
# replaces them with the transforms' own kinds).
DATE_TEXT = "date_text"
INSTANT_TEXT = "instant_text"
LOCAL_TIMESTAMP_TEXT = "local_timestamp_text"
BOOL_INTEGER = "bool_integer"  # MySQL's BOOLEAN: TINYINT(1), any of -128..127

# Runs one SQL statement on the source and returns its rows, every value as text (or None).
Query = Callable[[str], list[tuple]]


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str
    udt: str  # the engine's own type name (PostgreSQL's udt_name, MySQL's column_type)
    is_json: bool = False


@dataclass(frozen=True)
class TableSchema:
    """A source table as its catalogue describes it."""

    schema: str
    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class ForeignKey:
    """A reference from `table` (columns) to `parent` (parent_columns), in one schema."""

    table: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableStats:
    rows: int  # the catalogue's estimate (exact after ANALYZE)
    row_bytes: int  # average bytes per row on disk, 0 when unknown


class Dialect(Protocol):
    name: str  # "postgres", "mysql": what run lines and errors call the engine
    schemes: tuple[str, ...]  # JDBC URL schemes: jdbc:<scheme>:
    rds_engines: tuple[str, ...]  # `engine` values of RDS-style secrets
    driver: str  # JDBC driver class
    default_port: int
    default_schema: str | None  # the schema a table name without one is in (None: the connection's database)
    integer_types: frozenset[str]  # data types a read may be partitioned on

    def spark_url(self, url: str) -> str:
        """The URL handed to Spark (and to the driver for metadata)."""

    def session_sql(self) -> str:
        """Statements run when every session opens: UTC, and ISO-8601 intervals where they exist."""

    def quote(self, identifier: str) -> str:
        """One identifier, quoted for this engine."""

    def describe(self, query: Query, schema: str | None, table: str) -> TableSchema:
        """The table's columns (in order) and primary key; no columns when the table does not exist."""

    def tables(self, query: Query, schema: str | None) -> list[str]:
        """The tables in `schema` (the connection's default when None), for error messages."""

    def select_expression(self, column: ColumnInfo) -> tuple[str, str | None]:
        """(SQL expression, kind) that reads `column` exactly; kind goes into the column metadata."""

    def as_text(self, expression: str) -> str:
        """The value of `expression` as the engine spells it in text, which it reads back the same."""

    def bucket(self, expressions: list[str], buckets: int) -> str:
        """An integer in [0, buckets) from a hash of the values' text: the same values, the same
        bucket, in every table (carve plan samples whole partitions with it)."""

    def in_schema(self, schema: str | None) -> str:
        """An SQL expression for `schema` in information_schema's table_schema (the connection's default when None)."""

    def foreign_keys(self, query: Query, schema: str | None) -> list[ForeignKey]:
        """Every foreign key between tables of `schema` (carve scaffold)."""

    def table_stats(self, query: Query, schema: str | None) -> dict[str, TableStats]:
        """Rows and average row bytes per table of `schema`, from the catalogue (carve scaffold)."""


def grouped_keys(rows: list[tuple]) -> list[ForeignKey]:
    """(table, constraint, column, parent, parent column) rows, in column order, as ForeignKeys."""
    keys: dict[tuple[str, str], tuple[list[str], str, list[str]]] = {}
    for table, constraint, column, parent, parent_column in rows:
        columns, _, parent_columns = keys.setdefault((table, constraint), ([], parent, []))
        columns.append(column)
        parent_columns.append(parent_column)
    return [ForeignKey(table, tuple(c), parent, tuple(p)) for (table, _), (c, parent, p) in keys.items()]


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
