"""JDBC sources: PostgreSQL and MySQL/MariaDB, read once per table, without losing digits.

The type traps of a plain Spark JDBC read (DESIGN.md) are avoided in the SELECT itself:
numerics, money and floats travel as text (exact), JSON as text, types Spark does not
know as text; timestamps are read in UTC and marked instant or wall-clock in the column
metadata, so the transforms know how to print them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from ruamel.yaml import YAML

from transforms.errors import SourceError
from transforms.items import source_id
from transforms.mapping import EmbedMany, EmbedOne, Mapping
from transforms.values import INSTANT, JSON_TEXT, KIND, LOCAL_TIMESTAMP, NUMBER_TEXT, NUMBER_TEXT_ARRAY

DRIVERS = {"postgres": "org.postgresql.Driver", "mysql": "org.mariadb.jdbc.Driver"}
ROWS_PER_PARTITION = 200_000
FETCH_SIZE = "10000"


@dataclass(frozen=True)
class Connection:
    name: str
    url: str
    user: str | None = None
    password: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)

    @property
    def engine(self) -> str:
        if self.url.startswith("jdbc:postgresql:"):
            return "postgres"
        if self.url.startswith(("jdbc:mysql:", "jdbc:mariadb:")):
            return "mysql"
        raise SourceError(f"connection '{self.name}': unsupported JDBC URL scheme; use jdbc:postgresql: or jdbc:mysql:")

    @property
    def spark_url(self) -> str:
        # Spark picks its MySQL dialect (backtick quoting) only for jdbc:mysql URLs;
        # MariaDB Connector/J 2.x accepts them.
        return re.sub(r"^jdbc:mariadb:", "jdbc:mysql:", self.url)

    def options(self) -> dict[str, str]:
        init = (
            "SET TIME ZONE 'UTC'; SET intervalstyle = 'iso_8601'"
            if self.engine == "postgres"
            else "SET time_zone = '+00:00'"
        )
        options = {"url": self.spark_url, "driver": DRIVERS[self.engine], "sessionInitStatement": init,
                   "fetchsize": FETCH_SIZE}
        if self.user:
            options["user"] = self.user
        if self.password.get_secret_value():
            options["password"] = self.password.get_secret_value()
        return options


def profiles_path() -> Path:
    return Path(os.environ.get("CARVE_PROFILES", Path.home() / ".carve" / "connections.yaml"))


def connection_env_prefix(name: str) -> str:
    """CARVE_CONNECTION_<NAME>: the environment variables that configure connection `name`."""
    return "CARVE_CONNECTION_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


AwsClientFactory = Callable[[str], Any]


def aws_client(service: str) -> Any:
    """A boto3 client in the default region; AWS_ENDPOINT_URL_<SERVICE> points it at a local stand-in."""
    import boto3

    return boto3.client(service)


def resolve_connection(name: str, client_factory: AwsClientFactory = aws_client) -> Connection:
    """Connection `name`, from the first of these that is set:

    - CARVE_CONNECTION_<NAME>_URL (with _USER, _PASSWORD),
    - CARVE_CONNECTION_<NAME>_SECRET_ID: a Secrets Manager secret (RDS-style JSON),
    - CARVE_CONNECTION_<NAME>_GLUE_CONNECTION: a Glue JDBC connection,
    - `name` under `connections:` in the profile file (CARVE_PROFILES).
    """
    prefix = connection_env_prefix(name)
    url = os.environ.get(prefix + "_URL")
    if url:
        return Connection(name, url, os.environ.get(prefix + "_USER"), SecretStr(os.environ.get(prefix + "_PASSWORD", "")))
    secret_id = os.environ.get(prefix + "_SECRET_ID")
    if secret_id:
        return connection_from_secret(name, secret_id, client_factory)
    glue_connection = os.environ.get(prefix + "_GLUE_CONNECTION")
    if glue_connection:
        return connection_from_glue(name, glue_connection, client_factory)
    path = profiles_path()
    if path.exists():
        profile = (YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}).get("connections", {}).get(name)
        if profile:
            return Connection(name, profile["url"], profile.get("user"), SecretStr(str(profile.get("password", ""))))
    raise SourceError(
        f"connection '{name}' is not configured: set {prefix}_URL (and {prefix}_USER, {prefix}_PASSWORD), "
        f"{prefix}_SECRET_ID (a Secrets Manager secret) or {prefix}_GLUE_CONNECTION (a Glue connection), "
        f"or add it under 'connections:' in {path}"
    )


# --- credentials from AWS: Secrets Manager and Glue connections --------------------------------

# RDS secrets name the engine; carve reads PostgreSQL and MySQL/MariaDB.
SECRET_ENGINES = {
    "postgres": "postgresql", "postgresql": "postgresql", "aurora-postgresql": "postgresql",
    "mysql": "mysql", "mariadb": "mysql", "aurora": "mysql", "aurora-mysql": "mysql",
}
DEFAULT_JDBC_PORTS = {"postgresql": 5432, "mysql": 3306}


@contextmanager
def _quiet_botocore() -> Iterator[None]:
    """botocore logs response bodies at DEBUG: a secret's value must not reach any log."""
    logger = logging.getLogger("botocore")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _aws_error(exc: Exception) -> str:
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
    return code or type(exc).__name__


def _secret_document(name: str, secret_id: str, client_factory: AwsClientFactory) -> dict[str, Any]:
    where = f"connection '{name}': secret '{secret_id}'"
    try:
        with _quiet_botocore():
            response = client_factory("secretsmanager").get_secret_value(SecretId=secret_id)
    except Exception as exc:  # botocore's ClientError, NoCredentialsError, EndpointConnectionError, ...
        raise SourceError(f"{where} cannot be read from Secrets Manager: {_aws_error(exc)}") from None
    text = response.get("SecretString")
    if text is None:
        raise SourceError(f"{where} is binary; carve reads JSON secrets (SecretString)")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        # Never quote the text: it is the secret.
        raise SourceError(f"{where} is not a JSON object; store username, password, engine, host, port, dbname "
                          f"(as RDS does) or url, username, password")
    return document


def _first(document: dict[str, Any], *keys: str) -> Any:
    return next((document[k] for k in keys if document.get(k) not in (None, "")), None)


def jdbc_url_from_secret(name: str, secret_id: str, document: dict[str, Any]) -> str:
    """The JDBC URL an RDS-style secret describes, or its `url` field."""
    url = _first(document, "url", "jdbc_url", "JDBC_CONNECTION_URL")
    if url:
        return str(url)
    missing = [k for k in ("engine", "host") if not document.get(k)]
    if missing:
        raise SourceError(f"connection '{name}': secret '{secret_id}' lacks {', '.join(missing)}; store username, "
                          f"password, engine, host, port, dbname (as RDS does) or url, username, password")
    engine = str(document["engine"]).lower()
    scheme = SECRET_ENGINES.get(engine)
    if scheme is None:
        raise SourceError(f"connection '{name}': secret '{secret_id}' has engine '{engine}'; carve reads "
                          f"{', '.join(sorted(SECRET_ENGINES))}")
    port = document.get("port") or DEFAULT_JDBC_PORTS[scheme]
    database = _first(document, "dbname", "database") or ""
    return f"jdbc:{scheme}://{document['host']}:{port}/{database}"


def connection_from_secret(name: str, secret_id: str, client_factory: AwsClientFactory = aws_client) -> Connection:
    document = _secret_document(name, secret_id, client_factory)
    url = jdbc_url_from_secret(name, secret_id, document)
    user = _first(document, "username", "user")
    password = document.get("password")  # "" is a password (trust authentication), a missing one is not
    if user is None or password is None:
        missing = [k for k, v in (("username", user), ("password", password)) if v is None]
        raise SourceError(f"connection '{name}': secret '{secret_id}' lacks {', '.join(missing)}")
    return Connection(name, url, str(user), SecretStr(str(password)))


def connection_from_glue(name: str, glue_name: str, client_factory: AwsClientFactory = aws_client) -> Connection:
    """A Glue JDBC connection: JDBC_CONNECTION_URL with USERNAME/PASSWORD, or with a secret
    (SECRET_ID, or AuthenticationConfiguration.SecretArn) holding the credentials."""
    where = f"connection '{name}': Glue connection '{glue_name}'"
    try:
        with _quiet_botocore():
            response = client_factory("glue").get_connection(Name=glue_name, HidePassword=False)
    except Exception as exc:
        raise SourceError(f"{where} cannot be read: {_aws_error(exc)}") from None
    connection = response.get("Connection", {})
    properties = connection.get("ConnectionProperties", {})
    url = properties.get("JDBC_CONNECTION_URL")
    if not url:
        kind = connection.get("ConnectionType", "unknown")
        raise SourceError(f"{where} has no JDBC_CONNECTION_URL (type {kind}); carve reads JDBC connections")
    secret_id = properties.get("SECRET_ID") or connection.get("AuthenticationConfiguration", {}).get("SecretArn")
    if secret_id:
        document = _secret_document(name, secret_id, client_factory)
        user, password = _first(document, "username", "user"), document.get("password")
    else:
        user, password = properties.get("USERNAME"), properties.get("PASSWORD")
    if not user or password is None:
        raise SourceError(f"{where} has no credentials: set USERNAME and PASSWORD, or SECRET_ID")
    return Connection(name, url, str(user), SecretStr(str(password)))


# --- metadata over the driver's own JDBC connection (no Spark job) -----------------------------


def jdbc_rows(spark: SparkSession, conn: Connection, sql: str) -> list[tuple]:
    jvm = spark.sparkContext._jvm
    driver = reduce(getattr, DRIVERS[conn.engine].split("."), jvm)()
    props = jvm.java.util.Properties()
    for key in ("user", "password"):
        value = conn.options().get(key)
        if value:
            props.setProperty(key, value)
    try:
        connection = driver.connect(conn.spark_url, props)
    except Exception as exc:  # py4j wraps the SQLException; say what failed, never the password
        raise SourceError(f"connection '{conn.name}': cannot connect to {_safe_url(conn.url)}: {_java_message(exc)}") from None
    if connection is None:
        raise SourceError(f"connection '{conn.name}': the driver does not accept {_safe_url(conn.url)}")
    try:
        result = connection.createStatement().executeQuery(sql)
        width = result.getMetaData().getColumnCount()
        rows = []
        while result.next():
            rows.append(tuple(result.getString(i + 1) for i in range(width)))
        return rows
    except Exception as exc:
        raise SourceError(f"connection '{conn.name}': {_java_message(exc)}") from None
    finally:
        connection.close()


def _java_message(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"(?:SQLException|Exception): (.+)", text)
    return (match.group(1) if match else text).strip().splitlines()[0]


def _safe_url(url: str) -> str:
    return re.sub(r"(password=)[^&;]*", r"\1***", url, flags=re.IGNORECASE)


class MissingTableError(SourceError):
    def __init__(self, connection: str, detail: str):
        self.detail = detail
        super().__init__(f"connection '{connection}': {detail}")


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str
    udt: str
    is_json: bool = False


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def split_table(conn: Connection, table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def describe_table(spark: SparkSession, conn: Connection, table: str) -> TableInfo:
    schema, name = split_table(conn, table)
    if conn.engine == "postgres":
        schema_sql = _literal(schema or "public")
        columns = jdbc_rows(spark, conn, f"""
            select column_name, data_type, udt_name from information_schema.columns
            where table_schema = {schema_sql} and table_name = {_literal(name)} order by ordinal_position""")
        keys = jdbc_rows(spark, conn, f"""
            select kcu.column_name from information_schema.table_constraints tc
            join information_schema.key_column_usage kcu
              on kcu.constraint_schema = tc.constraint_schema and kcu.constraint_name = tc.constraint_name
            where tc.constraint_type = 'PRIMARY KEY' and tc.table_schema = {schema_sql}
              and tc.table_name = {_literal(name)} order by kcu.ordinal_position""")
        infos = tuple(ColumnInfo(c, t, u) for c, t, u in columns)
    else:
        schema_sql = _literal(schema) if schema else "database()"
        columns = jdbc_rows(spark, conn, f"""
            select column_name, data_type, column_type from information_schema.columns
            where table_schema = {schema_sql} and table_name = {_literal(name)} order by ordinal_position""")
        keys = jdbc_rows(spark, conn, f"""
            select column_name from information_schema.key_column_usage
            where constraint_name = 'PRIMARY' and table_schema = {schema_sql} and table_name = {_literal(name)}
            order by ordinal_position""")
        checks = jdbc_rows(spark, conn, f"""
            select check_clause from information_schema.check_constraints
            where constraint_schema = {schema_sql} and table_name = {_literal(name)}""")
        json_columns = {m for (clause,) in checks for m in re.findall(r"json_valid\(`([^`]+)`\)", clause or "")}
        infos = tuple(ColumnInfo(c, t.lower(), u.lower(), c in json_columns) for c, t, u in columns)
    if not infos:
        tables = jdbc_rows(spark, conn, f"""
            select table_name from information_schema.tables where table_schema = {schema_sql} order by 1""")
        known = ", ".join(t for (t,) in tables) or "(none visible to this user)"
        raise MissingTableError(conn.name, f"table '{table}' does not exist; tables in that schema are: {known}")
    return TableInfo(schema or "", name, infos, tuple(k for (k,) in keys))


def quote(conn: Connection, identifier: str) -> str:
    if conn.engine == "postgres":
        return '"' + identifier.replace('"', '""') + '"'
    return "`" + identifier.replace("`", "``") + "`"


def qualified(conn: Connection, table: str) -> str:
    return ".".join(quote(conn, part) for part in table.split("."))


# --- the select list: where each trap is defused ---------------------------------------------

PG_NUMBER = {"numeric", "money", "real", "double precision"}
PG_NATIVE = {"smallint", "integer", "bigint", "boolean", "text", "character varying", "character", "bytea", "date",
             "timestamp with time zone", "timestamp without time zone"}
PG_NATIVE_ARRAYS = {"_int2", "_int4", "_int8", "_text", "_varchar", "_bpchar", "_bool"}
PG_NUMBER_ARRAYS = {"_numeric", "_float4", "_float8", "_money"}
MY_NUMBER = {"decimal", "float", "double", "real"}
MY_NATIVE = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "char", "varchar", "text", "tinytext",
             "mediumtext", "longtext", "date", "datetime", "timestamp", "blob", "tinyblob", "mediumblob", "longblob",
             "binary", "varbinary", "bit"}


def select_expression(conn: Connection, column: ColumnInfo) -> tuple[str, str | None]:
    """(SQL expression, kind) for one column."""
    q = quote(conn, column.name)
    if conn.engine == "postgres":
        if column.data_type in PG_NUMBER:
            cast = f"{q}::numeric::text" if column.data_type == "money" else f"{q}::text"
            return cast, NUMBER_TEXT
        if column.data_type in ("json", "jsonb"):
            return f"{q}::text", JSON_TEXT
        if column.data_type == "ARRAY":
            if column.udt in PG_NUMBER_ARRAYS:
                return f"{q}::text[]", NUMBER_TEXT_ARRAY
            return (q if column.udt in PG_NATIVE_ARRAYS else f"{q}::text[]"), None
        if column.data_type == "timestamp with time zone":
            return q, INSTANT
        if column.data_type == "timestamp without time zone":
            return q, LOCAL_TIMESTAMP
        return (q if column.data_type in PG_NATIVE else f"{q}::text"), None
    if column.is_json or column.data_type == "json":
        return q, JSON_TEXT
    if column.data_type in MY_NUMBER:
        return f"CAST({q} AS CHAR)", NUMBER_TEXT
    if column.data_type == "timestamp":
        return q, INSTANT
    if column.data_type == "datetime":
        return q, LOCAL_TIMESTAMP
    if column.data_type in MY_NATIVE:
        return q, None  # BOOLEAN is tinyint(1): the driver reports it as BIT, Spark as boolean
    return f"CAST({q} AS CHAR)", None


@dataclass(frozen=True)
class TableRead:
    """How one source table is read: its columns, optional pushed-down filter, partitioning."""

    table: str
    columns: tuple[ColumnInfo, ...]
    where: str | None = None
    partition_column: str | None = None


def read_table(spark: SparkSession, conn: Connection, read: TableRead) -> DataFrame:
    selects = [select_expression(conn, c) for c in read.columns]
    select_list = ", ".join(f"{expr} AS {quote(conn, c.name)}" for (expr, _), c in zip(selects, read.columns))
    where = f" WHERE {read.where}" if read.where else ""
    subquery = f"(SELECT {select_list} FROM {qualified(conn, read.table)}{where}) carve_src"
    options = conn.options() | {"dbtable": subquery}
    if read.partition_column:
        options |= _partitioning(spark, conn, read)
    df = spark.read.format("jdbc").options(**options).load()
    return df.select(*[
        F.col(c.name).alias(c.name, metadata={KIND: kind}) if kind else F.col(c.name)
        for (_, kind), c in zip(selects, read.columns)
    ])


def read_query(spark: SparkSession, conn: Connection, query: str) -> DataFrame:
    return spark.read.format("jdbc").options(**(conn.options() | {"dbtable": f"({query}) carve_query"})).load()


def _partitioning(spark: SparkSession, conn: Connection, read: TableRead) -> dict[str, str]:
    where = f" WHERE {read.where}" if read.where else ""
    column = quote(conn, read.partition_column)
    [(low, high, count)] = jdbc_rows(
        spark, conn, f"SELECT min({column}), max({column}), count(*) FROM {qualified(conn, read.table)}{where}"
    )
    if low is None or int(count) <= ROWS_PER_PARTITION:
        return {}
    partitions = min(int(count) // ROWS_PER_PARTITION + 1, 4 * spark.sparkContext.defaultParallelism)
    # Bounds only set the stride; rows outside them still land in the first or last partition.
    return {"partitionColumn": read.partition_column, "lowerBound": low, "upperBound": high,
            "numPartitions": str(partitions)}


# --- a mapping's reads ------------------------------------------------------------------------


def table_filters(mapping: Mapping) -> dict[str, list[str | None]]:
    """Every consumer's filter per table: entities and embeds reading it."""
    filters: dict[str, list[str | None]] = {}

    def walk(attributes) -> None:
        for spec in attributes.values():
            if isinstance(spec, (EmbedOne, EmbedMany)):
                filters.setdefault(spec.from_, []).append(spec.filter)
                walk(spec.one if isinstance(spec, EmbedOne) else spec.many)

    for entity in mapping.entities.values():
        if entity.from_:
            filters.setdefault(entity.from_, []).append(entity.filter)
        walk(entity.attributes)
    return filters


def plan_reads(spark: SparkSession, conn: Connection, mapping: Mapping, needed: dict[str, set[str]]) -> dict[str, TableRead]:
    reads = {}
    for table, filters in table_filters(mapping).items():
        info = describe_table(spark, conn, table)
        wanted = needed.get(table, set())
        columns = tuple(c for c in info.columns if c.name in wanted) or info.columns[:1]
        # Push the filters down only when every reader of the table filters: it is read once for all.
        where = " OR ".join(f"({f})" for f in filters) if all(filters) else None
        key = info.primary_key[0] if len(info.primary_key) >= 1 else None
        integer_key = key and next(c for c in info.columns if c.name == key).data_type in (
            "smallint", "integer", "bigint", "int", "mediumint", "tinyint")
        if integer_key and key not in {c.name for c in columns}:
            columns += tuple(c for c in info.columns if c.name == key)
        reads[table] = TableRead(table, columns, where, key if integer_key else None)
    return reads


def full_schema_frames(
    spark: SparkSession, conn: Connection, mapping: Mapping
) -> tuple[dict[str, DataFrame], dict[str, str]]:
    """Lazy frames of every table with all its columns (compiling against them reads no rows),
    and why each table that is not there could not be described."""
    frames, missing = {}, {}
    for table in table_filters(mapping):
        try:
            info = describe_table(spark, conn, table)
        except MissingTableError as exc:
            missing[table] = exc.detail
            continue
        frames[table] = read_table(spark, conn, TableRead(table, info.columns))
    for name, entity in mapping.entities.items():
        if entity.query:
            frames[source_id(name, entity)] = read_query(spark, conn, entity.query)
    return frames, missing


def read_sources(spark: SparkSession, conn: Connection, mapping: Mapping, needed: dict[str, set[str]]) -> dict[str, DataFrame]:
    """Each source table once (projected, filtered where possible), cached for every consumer."""
    frames = {table: read_table(spark, conn, read) for table, read in plan_reads(spark, conn, mapping, needed).items()}
    for name, entity in mapping.entities.items():
        if entity.query:
            frames[source_id(name, entity)] = read_query(spark, conn, entity.query)
    return {name: df.persist(StorageLevel.MEMORY_AND_DISK) for name, df in frames.items()}


def unpersist(frames: Iterable[DataFrame]) -> None:
    for df in frames:
        df.unpersist()
