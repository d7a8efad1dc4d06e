"""PostgreSQL (and Aurora PostgreSQL): the dialect."""

from __future__ import annotations

from jobs.sources.dialect import (
    DATE_TEXT,
    INSTANT_TEXT,
    LOCAL_TIMESTAMP_TEXT,
    ColumnInfo,
    ForeignKey,
    Query,
    TableSchema,
    TableStats,
    grouped_keys,
    sql_literal,
)
from transforms.values import JSON_TEXT, NUMBER_TEXT, NUMBER_TEXT_ARRAY

NUMBER = {"numeric", "money", "real", "double precision"}
NATIVE = {"smallint", "integer", "bigint", "boolean", "text", "character varying", "character", "bytea"}
# Dates and timestamps as text: the driver's java.sql.Date is Julian before 1582-10-15 and has no
# 'infinity'; jobs.sources.exact parses the text on the Gregorian calendar or gives the reason.
DATETIME_TEXT = {"date": DATE_TEXT, "timestamp with time zone": INSTANT_TEXT,
                 "timestamp without time zone": LOCAL_TIMESTAMP_TEXT}
NATIVE_ARRAYS = {"_int2", "_int4", "_int8", "_text", "_varchar", "_bpchar", "_bool"}
NUMBER_ARRAYS = {"_numeric", "_float4", "_float8", "_money"}


class PostgresDialect:
    name = "postgres"
    schemes = ("postgresql",)
    rds_engines = ("postgres", "postgresql", "aurora-postgresql")
    driver = "org.postgresql.Driver"
    default_schema: str | None = "public"  # what `from: table` means without a schema
    default_port = 5432
    integer_types = frozenset({"smallint", "integer", "bigint"})

    def spark_url(self, url: str) -> str:
        return url

    def session_sql(self) -> str:
        return "SET TIME ZONE 'UTC'; SET intervalstyle = 'iso_8601'; SET datestyle = 'ISO, YMD'"

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def as_text(self, expression: str) -> str:
        return f"CAST({expression} AS text)"

    def bucket(self, expressions: list[str], buckets: int) -> str:
        text = ", ".join(self.as_text(e) for e in expressions)
        return f"mod(CAST(hashtext(concat_ws('|', {text})) AS bigint) + 2147483648, {buckets})"

    def in_schema(self, schema: str | None) -> str:
        return sql_literal(schema or "public")

    def foreign_keys(self, query: Query, schema: str | None) -> list[ForeignKey]:
        rows = query(f"""
            select cl.relname, c.conname, a.attname, pcl.relname, pa.attname
            from pg_constraint c
            join pg_class cl on cl.oid = c.conrelid
            join pg_namespace ns on ns.oid = cl.relnamespace
            join pg_class pcl on pcl.oid = c.confrelid
            join pg_namespace pns on pns.oid = pcl.relnamespace
            cross join lateral unnest(c.conkey, c.confkey) with ordinality as k(col, pcol, n)
            join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.col
            join pg_attribute pa on pa.attrelid = c.confrelid and pa.attnum = k.pcol
            where c.contype = 'f' and ns.nspname = {self.in_schema(schema)} and pns.nspname = ns.nspname
            order by 1, 2, k.n""")
        return grouped_keys(rows)

    def table_stats(self, query: Query, schema: str | None) -> dict[str, TableStats]:
        rows = query(f"""
            select c.relname, greatest(c.reltuples, 0)::bigint,
                   case when c.reltuples > 0 then (pg_table_size(c.oid) / c.reltuples)::bigint else 0 end
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p') and n.nspname = {self.in_schema(schema)}""")
        return {name: TableStats(int(count), int(size)) for name, count, size in rows}

    def describe(self, query: Query, schema: str | None, table: str) -> TableSchema:
        schema = schema or "public"
        columns = query(f"""
            select column_name, data_type, udt_name from information_schema.columns
            where table_schema = {sql_literal(schema)} and table_name = {sql_literal(table)}
            order by ordinal_position""")
        keys = query(f"""
            select kcu.column_name from information_schema.table_constraints tc
            join information_schema.key_column_usage kcu
              on kcu.constraint_schema = tc.constraint_schema and kcu.constraint_name = tc.constraint_name
            where tc.constraint_type = 'PRIMARY KEY' and tc.table_schema = {sql_literal(schema)}
              and tc.table_name = {sql_literal(table)} order by kcu.ordinal_position""")
        return TableSchema(schema, table, tuple(ColumnInfo(c, t, u) for c, t, u in columns), tuple(k for (k,) in keys))

    def tables(self, query: Query, schema: str | None) -> list[str]:
        rows = query(f"select table_name from information_schema.tables "
                     f"where table_schema = {sql_literal(schema or 'public')} order by 1")
        return [t for (t,) in rows]

    def select_expression(self, column: ColumnInfo) -> tuple[str, str | None]:
        q = self.quote(column.name)
        if column.data_type in NUMBER:
            return (f"{q}::numeric::text" if column.data_type == "money" else f"{q}::text"), NUMBER_TEXT
        if column.data_type in ("json", "jsonb"):
            return f"{q}::text", JSON_TEXT
        if column.data_type == "ARRAY":
            if column.udt in NUMBER_ARRAYS:
                return f"{q}::text[]", NUMBER_TEXT_ARRAY
            return (q if column.udt in NATIVE_ARRAYS else f"{q}::text[]"), None
        if column.data_type in DATETIME_TEXT:
            return f"{q}::text", DATETIME_TEXT[column.data_type]
        return (q if column.data_type in NATIVE else f"{q}::text"), None
