"""MySQL and MariaDB (and Aurora MySQL): the dialect."""

from __future__ import annotations

import re

from jobs.sources.dialect import ColumnInfo, Query, TableSchema, sql_literal
from transforms.values import INSTANT, JSON_TEXT, LOCAL_TIMESTAMP, NUMBER_TEXT

NUMBER = {"decimal", "float", "double", "real"}
NATIVE = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "char", "varchar", "text", "tinytext",
          "mediumtext", "longtext", "date", "datetime", "timestamp", "blob", "tinyblob", "mediumblob", "longblob",
          "binary", "varbinary", "bit"}


class MySQLDialect:
    name = "mysql"
    schemes = ("mysql", "mariadb")
    rds_engines = ("mysql", "mariadb", "aurora", "aurora-mysql")
    # MariaDB Connector/J (Debian's libmariadb-java) also speaks to MySQL.
    driver = "org.mariadb.jdbc.Driver"
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

    def describe(self, query: Query, schema: str | None, table: str) -> TableSchema:
        in_schema = sql_literal(schema) if schema else "database()"
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
        if column.data_type == "timestamp":
            return q, INSTANT
        if column.data_type == "datetime":
            return q, LOCAL_TIMESTAMP
        if column.data_type in NATIVE:
            return q, None  # BOOLEAN is tinyint(1): the driver reports it as BIT, Spark as boolean
        return f"CAST({q} AS CHAR)", None
