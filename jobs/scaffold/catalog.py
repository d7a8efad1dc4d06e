"""What carve scaffold reads from a live database: tables, columns, keys, references and sizes.

All of it from the catalogue over the driver's JDBC connection, except, for each foreign key, the
children per parent (p99 and maximum: one GROUP BY) and the parent's rows (one count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from jobs.sources.connections import Connection
from jobs.sources.dialect import ForeignKey, TableStats
from jobs.sources.jdbc import jdbc_rows
from transforms.errors import SourceError


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema's data_type, lower case
    udt: str  # the engine's own name (udt_name, column_type)
    nullable: bool


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    uniques: tuple[tuple[str, ...], ...] = ()
    stats: TableStats = TableStats(0, 0)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Reference:
    key: ForeignKey
    children_p99: int = 0  # rows of key.table per parent row, 99th percentile (parents with any)
    children_max: int = 0
    parents: int = 0  # parent rows that have any child
    parent_rows: int = 0  # rows of key.parent, counted


@dataclass(frozen=True)
class Catalog:
    engine: str  # postgres | mysql
    schema: str | None  # as mappings name it in `from: schema.table`; None: the connection's database
    tables: dict[str, Table]
    references: tuple[Reference, ...] = ()
    skipped: tuple[str, ...] = field(default=())  # tables asked for that are not there


def read_catalog(spark: SparkSession, conn: Connection, schema: str | None, only: list[str] | None) -> Catalog:
    dialect = conn.dialect

    def query(sql: str) -> list[tuple]:
        return jdbc_rows(spark, conn, sql)

    where = dialect.in_schema(schema)
    names = dialect.tables(query, schema)
    if not names:
        raise SourceError(f"connection '{conn.name}': no tables in schema {schema or '(the default)'}")
    wanted = [n for n in names if only is None or n in only]
    skipped = tuple(n for n in (only or []) if n not in names)
    nullable = {(t, c) for t, c in query(f"select table_name, column_name from information_schema.columns "
                                         f"where table_schema = {where} and is_nullable = 'YES'")}
    uniques: dict[str, dict[str, list[str]]] = {}
    for table, constraint, column in query(f"""
            select tc.table_name, tc.constraint_name, kcu.column_name
            from information_schema.table_constraints tc
            join information_schema.key_column_usage kcu on kcu.constraint_schema = tc.constraint_schema
             and kcu.constraint_name = tc.constraint_name and kcu.table_name = tc.table_name
            where tc.constraint_type = 'UNIQUE' and tc.table_schema = {where}
            order by 1, 2, kcu.ordinal_position"""):
        uniques.setdefault(table, {}).setdefault(constraint, []).append(column)
    stats = dialect.table_stats(query, schema)
    tables = {}
    for name in wanted:
        described = dialect.describe(query, schema, name)
        columns = tuple(Column(c.name, c.data_type, c.udt, (name, c.name) in nullable) for c in described.columns)
        tables[name] = Table(name, columns, described.primary_key,
                             tuple(tuple(u) for u in uniques.get(name, {}).values()), stats.get(name, TableStats(0, 0)))
    keys = [k for k in dialect.foreign_keys(query, schema) if k.table in tables and k.parent in tables]
    # In the order of the tables and of their columns, not of constraint names (engines name them differently).
    position = {(t.name, c.name): i for t in tables.values() for i, c in enumerate(t.columns)}
    keys.sort(key=lambda k: (k.table, position[(k.table, k.columns[0])]))
    references = tuple(_measured(query, conn, schema, key) for key in keys)
    return Catalog(dialect.name, schema or dialect.default_schema, tables, references, skipped)


def _measured(query, conn: Connection, schema: str | None, key: ForeignKey) -> Reference:
    """The children per parent of one reference (p99 and maximum over the parents that have any),
    and how many of the parent's rows have none."""
    quote = conn.dialect.quote
    table, parent = (f"{quote(schema)}.{quote(name)}" if schema else quote(name) for name in (key.table, key.parent))
    columns = ", ".join(quote(c) for c in key.columns)
    not_null = " and ".join(f"{quote(c)} is not null" for c in key.columns)
    rows = query(f"select n, count(*) from (select count(*) as n from {table} where {not_null} "
                 f"group by {columns}) per_parent group by n order by n")
    counts = [(int(n), int(parents)) for n, parents in rows]
    total = sum(parents for _, parents in counts)
    parent_rows = int(query(f"select count(*) from {parent}")[0][0])
    if not total:
        return Reference(key, parent_rows=parent_rows)
    rank, seen, p99 = math.ceil(0.99 * total), 0, 0
    for n, parents in counts:
        seen += parents
        if seen >= rank:
            p99 = n
            break
    return Reference(key, p99, counts[-1][0], total, parent_rows)
