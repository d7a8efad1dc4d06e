"""Changes read from the files an AWS DMS task writes to an S3 target: DMS captures, carve transforms.

DMS writes each table to its own folder (BUCKET/[BucketFolder/]SCHEMA/TABLE/): full-load files
named by a hexadecimal counter (LOAD00000001.csv) and CDC files named by the time they were
written (20261207-1010230000.csv), under date folders when DatePartitionEnabled is set, as CSV
(gzip when CompressionType=GZIP) or Parquet. Every CDC row starts with the Op column: I, U
(the row after the update) or D (the row before the delete); full-load rows carry it only with
IncludeOpForFullLoad, and are inserts either way.

carve reads the files in the order DMS names them, full load first, and keeps the last one it
applied as the table's position: a cycle reads the files after it (whole files, until the cycle's
limit of changes), rebuilds the items their rows touch from the database as it is now, and the
position moves once those items are in DynamoDB. A full load takes each folder's last file before
it reads, so what DMS writes meanwhile is applied again by the first sync, harmlessly.

What carve needs from the task, and checks in every file: the column names (AddColumnName=true:
a CSV file's first row names its columns; a Parquet file always does), deletes (CdcInsertsOnly
and CdcInsertsAndUpdates left false: a CDC file without Op is refused), and on updates the
values before them of the columns the item keys and joins read, as the before-image columns of
the task's add-before-image-columns rule (their prefix is the mapping's before_image_prefix): a
key that changed leaves an old item behind otherwise, and an update cannot tell.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import SparkSession

from jobs.aws import aws_errors, client
from jobs.sources.connections import Connection
from jobs.sources.dialect import sql_literal
from jobs.sources.jdbc import describe_table
from jobs.storage import S3Location, parse_s3
from jobs.sync import images, logical
from jobs.sync.changes import FullLoadNeededError, TableChanges, saved_positions
from jobs.sync.images import Image, key_list, relation
from jobs.sync.state import Position, fingerprint
from transforms.errors import SourceError
from transforms.mapping import DmsS3, Mapping

KIND = "dms_s3"
OPERATIONS = {"I": "insert", "U": "update", "D": "delete"}
LOAD = re.compile(r"^LOAD[0-9A-F]+\.(csv|csv\.gz|parquet)$")
CDC = re.compile(r"^\d{8}-\d+\.(csv|csv\.gz|parquet)$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
START = "0/"  # before every file: the position of a folder DMS has not written to yet


@dataclass(frozen=True)
class Followed:
    """A table DMS writes, with the columns its rows must carry."""

    table: str  # as the mapping names it
    spec: DmsS3
    key: tuple[str, ...]  # primary key
    needed: tuple[str, ...]  # primary key, key template columns, embed join columns: what the walk reads
    types: dict[str, str]  # column -> the engine's type name, to write a value as SQL of its type


@dataclass(frozen=True)
class DmsFile:
    key: str  # the object's S3 key
    order: str  # where it comes among the folder's files: 0/LOAD... (full load), then 1/<time>... (CDC)

    @property
    def load(self) -> bool:
        return self.order.startswith("0/")


def tables(mapping: Mapping) -> dict[str, DmsS3]:
    """The mapping's tables followed through DMS files, with their folder and settings."""
    if mapping.sync is None:
        return {}
    return {t: s for t, s in mapping.sync.tables.items() if isinstance(s, DmsS3)}


def marks(spark: SparkSession, conn: Connection, mapping: Mapping) -> list[Position]:
    """Every followed folder's last file now: a full load starting now has what they hold."""
    followed = tables(mapping)
    _check_source(spark, conn, mapping, followed)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    shape = fingerprint(mapping)
    out = []
    for table, spec in followed.items():
        files = _files(spec)
        out.append(Position(table, KIND, _value(files[-1] if files else None), shape, now))
    return out


def changes(spark: SparkSession, conn: Connection, mapping: Mapping, saved: dict[str, Position],
            limit: int) -> list[TableChanges]:
    """Per followed table, the rows of the files DMS wrote after the saved one, as a key list on the
    table and as images (before and after) for the walk: whole files, in DMS's order, until
    `limit` rows (then `more` says that files wait)."""
    followed = tables(mapping)
    if not followed:
        return []
    _check_source(spark, conn, mapping, followed)
    before = saved_positions(KIND, followed, saved)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    shape = fingerprint(mapping)
    out = []
    total = 0
    for table, spec in followed.items():
        described = describe_table(spark, conn, table)
        info = Followed(table, spec, tuple(described.primary_key),
                        tuple(sorted(images.needed(mapping, table) | set(described.primary_key))),
                        {c.name: c.udt for c in described.columns})
        last = before[table].value["file"]
        files = _files(spec)
        if last != START and all(f.order != last for f in files):
            raise FullLoadNeededError(
                f"{table}: the last DMS file the sync applied ({before[table].value.get('key')}) is not in "
                f"{spec.dms_s3} any more (an S3 lifecycle rule "
                "or a person removed it, and maybe files after it): changes may be lost to carve. Run a full load "
                "(`carve run`), and keep DMS files longer than the syncs' interval")
        found: list[Image] = []
        counts: Counter = Counter()
        more = False
        applied = None
        for file in (f for f in files if f.order > last):
            if total >= limit:
                more = True
                break
            for operation, row_images in _records(conn, info, file, _body(spec, file)):
                counts[operation] += 1
                total += 1
                found.extend(row_images)
            applied = file
        after = Position(table, KIND, _value(applied), shape, now) if applied else before[table]
        condition = key_list(conn, info.key, found) if found else None
        out.append(TableChanges(table, before[table], after, condition, sum(counts.values()), dict(counts),
                                relation(conn, list(info.needed), found) if found else None, more))
    return out


def _check_source(spark: SparkSession, conn: Connection, mapping: Mapping, followed: dict[str, DmsS3]) -> None:
    """DMS reads a PostgreSQL source by logical replication too: a delete's row, and an update's
    before-image, carry only the table's replica identity, which must hold what the walk reads."""
    if followed and conn.dialect.name == "postgres":
        logical.check_identity(spark, conn, mapping, followed)


# --- the folder ---------------------------------------------------------------------------------

def _files(spec: DmsS3) -> list[DmsFile]:
    """The folder's DMS files (date folders included), in the order DMS wrote them."""
    folder = _folder(spec)
    s3 = client("s3")
    out = []
    with aws_errors(f"listing {spec.dms_s3}", SourceError):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=folder.bucket, Prefix=folder.key):
            for item in page.get("Contents", []):
                order = order_of(item["Key"].rsplit("/", 1)[-1])
                if order is not None:
                    out.append(DmsFile(item["Key"], order))
    return sorted(out, key=lambda f: f.order)


def _folder(spec: DmsS3) -> S3Location:
    return parse_s3(spec.dms_s3.rstrip("/") + "/")


def _value(file: DmsFile | None) -> dict[str, str | None]:
    """A position: the last file applied, as carve orders it and as S3 names it (None: none yet)."""
    return {"file": file.order, "key": file.key} if file else {"file": START, "key": None}


def order_of(name: str) -> str | None:
    """Where a file comes among a folder's files, as a string that sorts so: the full load's files
    by their hexadecimal counter, then the CDC files by the time in their names (date folders
    aside). None: not a file DMS writes."""
    if LOAD.match(name):
        return f"0/{name.split('.')[0][4:].rjust(16, '0')}"
    if CDC.match(name):
        return f"1/{name.split('.')[0]}"
    return None


def _body(spec: DmsS3, file: DmsFile) -> bytes:
    bucket = _folder(spec).bucket
    with aws_errors(f"reading s3://{bucket}/{file.key}", SourceError):
        return client("s3").get_object(Bucket=bucket, Key=file.key)["Body"].read()


# --- the rows -----------------------------------------------------------------------------------

def _records(conn: Connection, info: Followed, file: DmsFile, body: bytes) -> Iterator[tuple[str, list[Image]]]:
    """(operation, images) of every row of the file; a row without Op in a full-load file is an insert."""
    where = f"s3://{_folder(info.spec).bucket}/{file.key}"
    header, rows = _table(body, file, info.spec.csv_null_value, where)
    _check_header(info, file, header, where)
    has_op = header[0].lower() == "op"
    prefix = info.spec.before_image_prefix
    for line, row in rows:
        if len(row) != len(header):
            raise SourceError(f"{where} row {line}: {len(row)} fields under a header of {len(header)}; the file is "
                              "not as DMS writes it. The position stays before this file")
        values = dict(zip(header, row, strict=True))
        op = values[header[0]] if has_op else "I"
        if op not in OPERATIONS:
            raise SourceError(f"{where} row {line}: Op is {op!r}, not I, U or D. The position stays before this file")
        new = _sql(conn, info, {c: values[c] for c in info.needed})
        if op == "I":
            yield "insert", [Image(False, new)]
        elif op == "U":
            old = _sql(conn, info, {c: values[prefix + c] for c in info.needed})
            yield "update", [Image(True, old), Image(False, new)]
        else:
            yield "delete", [Image(True, new)]  # a delete's row is the row as it was


def _table(body: bytes, file: DmsFile, null: str | None, where: str) -> tuple[list[str], Iterator[tuple[int, list]]]:
    """The file's column names and its rows (row number, the header being row 1; values as text or None)."""
    if file.key.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(body))
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a file it cannot read are many
            raise SourceError(f"{where}: not a Parquet file DMS writes ({exc}). The position stays before this "
                              "file") from None
        columns = table.column_names
        data = table.to_pylist()
        return columns, ((n, [_text(r[c]) for c in columns]) for n, r in enumerate(data, start=1))
    try:
        text = (gzip.decompress(body) if file.key.endswith(".gz") else body).decode("utf-8")
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{where}: not a CSV file DMS writes ({exc}). The position stays before this file") from None
    if not lines:
        return [], iter(())
    header = lines[0]

    def value(text: str) -> str | None:
        return None if text == (null if null is not None else "") else text

    return header, ((n, [value(v) for v in row]) for n, row in enumerate(lines[1:], start=2))


def _check_header(info: Followed, file: DmsFile, header: list[str], where: str) -> None:
    if not header:
        return
    has_op = header[0].lower() == "op"
    missing = [c for c in info.needed if c not in header]
    if missing:
        raise SourceError(
            f"{where}: the file does not name the columns {', '.join(missing)} of {info.table} (its first row is "
            f"{', '.join(header[:6])}{', ...' if len(header) > 6 else ''}). carve reads DMS files by column name: set "
            "AddColumnName=true on the DMS endpoint (CSV; Parquet names them always) and run a full load")
    if not file.load and not has_op:
        raise SourceError(
            f"{where}: a CDC file without the Op column: the DMS endpoint writes inserts only (CdcInsertsOnly), so "
            "deletes and updates would be lost. Set CdcInsertsOnly and CdcInsertsAndUpdates to false and run a full load")
    before = [info.spec.before_image_prefix + c for c in info.needed]
    if has_op and not file.load and any(c not in header for c in before):
        lacking = ", ".join(c for c in before if c not in header)
        raise SourceError(
            f"{where}: updates of {info.table} must carry the values before them of {', '.join(info.needed)} (item keys "
            f"and joins read them), and the file has no {lacking}. Add to the DMS task's table mapping a "
            "transformation rule with rule-action add-before-image-columns for this table, column-prefix "
            f"'{info.spec.before_image_prefix}' and column-filter non-lob, then run a full load")


def _text(value: Any) -> str | None:
    """A Parquet value as the text DMS would write in CSV."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def _sql(conn: Connection, info: Followed, values: dict[str, str | None]) -> dict[str, str]:
    """Text values as SQL of their column's type."""
    out = {}
    for column, value in values.items():
        if value is None:
            out[column] = "NULL"
        elif conn.dialect.name == "postgres":
            out[column] = f"CAST({sql_literal(value)} AS {info.types[column]})"
        elif NUMBER.match(value) and _numeric(info.types[column]):
            out[column] = value  # an exact numeric literal
        else:
            out[column] = "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return out


def _numeric(udt: str) -> bool:
    return udt.lower().split("(")[0].split()[0] in {"tinyint", "smallint", "mediumint", "int", "integer", "bigint",
                                                    "decimal", "numeric"}
