"""MySQL and MariaDB (and Aurora MySQL): the dialect."""

from __future__ import annotations

import re

from jobs.sources.dialect import (
    BOOL_INTEGER,
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
from transforms.values import JSON_TEXT, NUMBER_TEXT

NUMBER = {"decimal", "float", "double", "real"}
NATIVE = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "char", "varchar", "text", "tinytext",
          "mediumtext", "longtext", "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary"}


class MySQLDialect:
    name = "mysql"
    schemes = ("mysql", "mariadb")
    rds_engines = ("mysql", "mariadb", "aurora", "aurora-mysql")
    # MariaDB Connector/J (Debian's libmariadb-java) also speaks to MySQL.
    driver = "org.mariadb.jdbc.Driver"
    default_schema: str | None = None  # what `from: table` means without a schema
    default_port = 3306
    integer_types = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})

    def spark_url(self, url: str) -> str:
        # Spark picks its MySQL dialect (backtick quoting) only for jdbc:mysql URLs;
        # MariaDB Connector/J 2.x accepts them.
        return re.sub(r"^jdbc:mariadb:", "jdbc:mysql:", url)

    def session_sql(self) -> str:
        return "SET time_zone = '+00:00'"

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"

    def as_text(self, expression: str) -> str:
        return f"CAST({expression} AS CHAR)"

    def bucket(self, expressions: list[str], buckets: int) -> str:
        text = ", ".join(self.as_text(e) for e in expressions)
        return f"MOD(CRC32(CONCAT_WS('|', {text})), {buckets})"

    def in_schema(self, schema: str | None) -> str:
        return sql_literal(schema) if schema else "database()"

    def foreign_keys(self, query: Query, schema: str | None) -> list[ForeignKey]:
        rows = query(f"""
            select table_name, constraint_name, column_name, referenced_table_name, referenced_column_name
            from information_schema.key_column_usage
            where table_schema = {self.in_schema(schema)} and referenced_table_name is not null
              and referenced_table_schema = table_schema
            order by table_name, constraint_name, ordinal_position""")
        return grouped_keys(rows)

    def table_stats(self, query: Query, schema: str | None) -> dict[str, TableStats]:
        rows = query(f"""
            select table_name, coalesce(table_rows, 0), coalesce(avg_row_length, 0) from information_schema.tables
            where table_schema = {self.in_schema(schema)} and table_type = 'BASE TABLE'""")
        return {name: TableStats(int(count), int(size)) for name, count, size in rows}

    def describe(self, query: Query, schema: str | None, table: str) -> TableSchema:
        in_schema = self.in_schema(schema)
        columns = query(f"""
            select column_name, data_type, column_type from information_schema.columns
            where table_schema = {in_schema} and table_name = {sql_literal(table)} order by ordinal_position""")
        keys = query(f"""
            select column_name from information_schema.key_column_usage
            where constraint_name = 'PRIMARY' and table_schema = {in_schema} and table_name = {sql_literal(table)}
            order by ordinal_position""")
        # MariaDB's JSON is LONGTEXT with a json_valid() check constraint.
        checks = query(f"""
            select check_clause from information_schema.check_constraints
            where constraint_schema = {in_schema} and table_name = {sql_literal(table)}""")
        json_columns = {m for (clause,) in checks for m in re.findall(r"json_valid\(`([^`]+)`\)", clause or "")}
        infos = tuple(ColumnInfo(c, t.lower(), u.lower(), c in json_columns) for c, t, u in columns)
        return TableSchema(schema or "", table, infos, tuple(k for (k,) in keys))

    def tables(self, query: Query, schema: str | None) -> list[str]:
        in_schema = sql_literal(schema) if schema else "database()"
        return [t for (t,) in query(f"select table_name from information_schema.tables "
                                    f"where table_schema = {in_schema} order by 1")]

    def select_expression(self, column: ColumnInfo) -> tuple[str, str | None]:
        q = self.quote(column.name)
        if column.is_json or column.data_type == "json":
            return q, JSON_TEXT
        if column.data_type in NUMBER:
            return f"CAST({q} AS CHAR)", NUMBER_TEXT
        # Dates as text: zero dates ('0000-00-00', '2024-02-00') must reach jobs.sources.exact as
        # they are, not shifted or NULLed by the driver.
        if column.data_type == "date":
            return f"CAST({q} AS CHAR)", DATE_TEXT
        if column.data_type in ("timestamp", "datetime"):
            return f"CAST({q} AS CHAR)", INSTANT_TEXT if column.data_type == "timestamp" else LOCAL_TIMESTAMP_TEXT
        if column.data_type == "bit":
            # BIT(1) is a flag; wider BITs are unsigned numbers (BIT(64) all ones is 18446744073709551615).
            return (q, None) if column.udt == "bit(1)" else (f"CAST({q} + 0 AS CHAR)", NUMBER_TEXT)
        if column.udt.startswith("tinyint(1)"):
            # BOOLEAN is TINYINT(1); the driver would call 2 and -1 true.
            return f"CAST({q} AS SIGNED)", BOOL_INTEGER
        if column.data_type in NATIVE:
            return q, None
        return f"CAST({q} AS CHAR)", None
