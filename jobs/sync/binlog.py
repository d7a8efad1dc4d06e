"""Changes read from the MariaDB/MySQL row-based binlog, as a replica reads it (mysql-replication).

The binlog keeps every committed row change with the whole row before and after it
(binlog_row_image = FULL) and the column names (binlog_row_metadata = FULL). carve connects as
a replica with the server id the mapping names, reads from the saved file and position up to the
server's position read when the cycle starts, and saves that position once the items are in
DynamoDB; nothing is consumed on the server, which purges old binlog files by its own expiry (a
saved file that is gone asks for a full load). Inserts, updates, deletes and key changes are row
events; a TRUNCATE of a followed table is a statement, and stops the sync.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pyspark.sql import SparkSession

from jobs.sources.connections import Connection
from jobs.sources.jdbc import describe_table, jdbc_rows, split_table
from jobs.sync import images
from jobs.sync.changes import FullLoadNeededError, TableChanges, saved_positions, truncated
from jobs.sync.images import Image, key_list, relation
from jobs.sync.state import Position, fingerprint
from transforms.errors import SourceError
from transforms.mapping import Mapping, MysqlBinlog

KIND = "mysql_binlog"
REQUIRED = {"log_bin": "1", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
TRUNCATE = re.compile(r"^\s*TRUNCATE\s+(?:TABLE\s+)?(?P<name>[`\w$.]+)", re.IGNORECASE)


def tables(mapping: Mapping) -> dict[str, int]:
    """The mapping's tables followed by the binlog, with the replica server id carve reads as."""
    if mapping.sync is None:
        return {}
    return {t: s.mysql_binlog for t, s in mapping.sync.tables.items() if isinstance(s, MysqlBinlog)}


def marks(spark: SparkSession, conn: Connection, mapping: Mapping) -> list[Position]:
    """The server's binlog position now, for every table the binlog follows."""
    followed = tables(mapping)
    if not followed:
        return []
    _check_server(spark, conn)
    file, pos = _position(spark, conn)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    shape = fingerprint(mapping)
    return [Position(t, KIND, {"file": file, "pos": pos}, shape, now) for t in followed]


def changes(spark: SparkSession, conn: Connection, mapping: Mapping, saved: dict[str, Position],
            limit: int) -> list[TableChanges]:
    """Per followed table, the row events since the saved position, as a key list on the table and
    as literal images (before and after) for the walk: up to the server's position now, or to the
    end of the transaction that reaches `limit` rows (then `more` says that others wait)."""
    followed = tables(mapping)
    if not followed:
        return []
    _check_server(spark, conn)
    before = saved_positions(KIND, followed, saved, shared=True)
    start = before[next(iter(followed))].value
    files = {row[0] for row in jdbc_rows(spark, conn, "SHOW BINARY LOGS", session=True)}
    if start["file"] not in files:
        raise FullLoadNeededError(
            f"binlog file {start['file']} is not on the server any more (purged by its expiry: expire_logs_days or "
            "binlog_expire_logs_seconds): the changes since the last sync are lost to carve. Run a full load "
            "(`carve run`), and sync more often than the binlog expires")
    upto = _position(spark, conn)
    database = _database(conn)
    names = {_server_name(t, database): t for t in followed}
    found: dict[str, list[Image]] = {t: [] for t in followed}
    counts: dict[str, Counter] = {t: Counter() for t in followed}
    more = False
    if (start["file"], start["pos"]) != upto:
        events, stopped = _events(conn, next(iter(followed.values())), start, upto, names, limit)
        for operation, table, changed, rows in events:
            counts[table][operation] += changed
            found[table].extend(rows)
        if stopped is not None:
            upto, more = stopped, True
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    after = {t: Position(t, KIND, {"file": upto[0], "pos": upto[1]}, fingerprint(mapping), now) for t in followed}
    info = {t: (tuple(describe_table(spark, conn, t).primary_key), sorted(images.needed(mapping, t))) for t in followed}
    out = []
    for table in followed:
        rows = found[table]
        if not rows:
            out.append(TableChanges(table, before[table], after[table], None, 0, {}, more=more))
            continue
        key, needed = info[table]
        columns = sorted(set(needed) | set(key))
        out.append(TableChanges(table, before[table], after[table], key_list(conn, key, rows),
                                sum(counts[table].values()), dict(counts[table]), relation(conn, columns, rows), more))
    return out


# --- the server ---------------------------------------------------------------------------------

def _check_server(spark: SparkSession, conn: Connection) -> None:
    if conn.dialect.name != "mysql":
        raise SourceError(f"connection '{conn.name}' is {conn.dialect.name}: mysql_binlog follows MariaDB and MySQL "
                          "only. Use postgres_logical or a watermark for this source")
    names = ", ".join(f"@@{name}" for name in REQUIRED)
    try:
        [values] = jdbc_rows(spark, conn, f"SELECT {names}", session=True)
    except SourceError as exc:
        raise SourceError(f"{exc}: mysql_binlog needs MariaDB 10.5 or MySQL 8.0.14 and later "
                          "(binlog_row_metadata)") from None
    wrong = [f"{name} = {want} (it is {have})" for (name, want), have in zip(REQUIRED.items(), values, strict=True)
             if str(have).upper() not in (want, "ON" if want == "1" else want)]
    if wrong:
        raise SourceError(
            f"connection '{conn.name}': mysql_binlog reads a row-based binlog with whole rows and column names; "
            f"the server needs {', '.join(wrong)}. Set them in the server's configuration ([mysqld]; log_bin needs a "
            "restart; on RDS and Aurora in the parameter group, see the README) and run a full load")


def _position(spark: SparkSession, conn: Connection) -> tuple[str, int]:
    rows = jdbc_rows(spark, conn, "SHOW MASTER STATUS", session=True)
    if not rows:
        raise SourceError(f"connection '{conn.name}': SHOW MASTER STATUS is empty: the binlog is off, or the user "
                          "lacks REPLICATION CLIENT (MariaDB: BINLOG MONITOR)")
    return rows[0][0], int(rows[0][1])


def _settings(conn: Connection) -> dict[str, Any]:
    """Where the replica connection goes: the JDBC URL's host, port and user, and the password."""
    parts = urlsplit(conn.url.removeprefix("jdbc:"))
    query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    return {"host": parts.hostname or "localhost", "port": parts.port or 3306,
            "user": conn.user or query.get("user", ""),
            "passwd": conn.password.get_secret_value() or query.get("password", "")}


def _database(conn: Connection) -> str:
    return urlsplit(conn.url.removeprefix("jdbc:")).path.strip("/")


def _server_name(table: str, database: str) -> tuple[str, str]:
    schema, name = split_table(table)
    return (schema or database, name)


def _events(conn: Connection, server_id: int, start: dict[str, Any], upto: tuple[str, int],
            names: dict[tuple[str, str], str], limit: int) -> tuple[list[tuple[str, str, int, list[Image]]],
                                                                  tuple[str, int] | None]:
    """(operation, table, rows changed, their images) of every row event of the followed tables from
    `start` to `upto`, and where it stopped short of `upto` (the end of the transaction that
    reached `limit` rows), None when it did not."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import QueryEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    schemas = sorted({schema for schema, _ in names})
    stream = BinLogStreamReader(
        _settings(conn), server_id=server_id, log_file=start["file"], log_pos=int(start["pos"]), resume_stream=True,
        blocking=False, only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, QueryEvent, XidEvent],
        only_schemas=schemas, only_tables=sorted({name for _, name in names}), enable_logging=False)
    out: list[tuple[str, str, int, list[Image]]] = []
    counted = 0
    try:
        for event in stream:
            if _order(stream.log_file, stream.log_pos) > _order(*upto):
                break  # committed after the cycle started: the next cycle's
            where = f"{stream.log_file}:{stream.log_pos}"
            if isinstance(event, XidEvent) or (isinstance(event, QueryEvent) and event.query.strip().upper() == "COMMIT"):
                if counted >= limit:  # the end of the transaction that reached the limit
                    return out, (stream.log_file, stream.log_pos)
                continue
            if isinstance(event, QueryEvent):
                _check_truncate(event, names, where)
                continue
            table = names.get((event.schema, event.table))
            if table is None:
                continue
            try:
                rows = event.rows
            except Exception as exc:  # noqa: BLE001 - any decoding failure stops the cycle where it is
                raise SourceError(f"the binlog event at {where} ({table}) cannot be read ({exc}); the position was "
                                  "not moved past it") from None
            counted += len(rows)
            if isinstance(event, WriteRowsEvent):
                out.append(("insert", table, len(rows), [Image(False, _values(r["values"])) for r in rows]))
            elif isinstance(event, UpdateRowsEvent):
                out.append(("update", table, len(rows), [Image(old, _values(r[k])) for r in rows for old, k in
                                                         ((True, "before_values"), (False, "after_values"))]))
            else:
                out.append(("delete", table, len(rows), [Image(True, _values(r["values"])) for r in rows]))
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - the replica protocol's own errors, with where it stopped
        raise SourceError(f"connection '{conn.name}': reading the binlog from {start['file']}:{start['pos']} failed "
                          f"({type(exc).__name__}: {exc}); the positions were not moved") from None
    finally:
        stream.close()
    return out, None


def _check_truncate(event: Any, names: dict[tuple[str, str], str], where: str) -> None:
    match = TRUNCATE.match(event.query or "")
    if not match:
        return
    schema = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
    parts = [p.strip("`") for p in match.group("name").split(".")]
    key = (parts[0], parts[1]) if len(parts) == 2 else (schema, parts[0])
    if key in names:
        raise truncated(names[key], f"binlog {where}")


def _order(file: str, pos: int) -> tuple[int, int]:
    """Binlog positions in order: the file's sequence number, then the offset."""
    return int(file.rsplit(".", 1)[-1]), int(pos)


# --- values as SQL ------------------------------------------------------------------------------

def _values(row: dict[str, Any]) -> dict[str, str]:
    return {name: _literal(value) for name, value in row.items()}


def _literal(value: Any) -> str:
    """A binlog value as a MariaDB/MySQL expression of its column's kind of type."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)  # an exact numeric literal, DECIMAL with its digits
    if isinstance(value, float):
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, dt.datetime):
        return f"CAST({_text(value.isoformat(sep=' ', timespec='microseconds'))} AS DATETIME(6))"
    if isinstance(value, dt.date):
        return f"CAST({_text(value.isoformat())} AS DATE)"
    if isinstance(value, dt.timedelta):
        micro = round(value.total_seconds() * 1_000_000)
        sign, micro = ("-" if micro < 0 else ""), abs(micro)
        hours, micro = divmod(micro, 3_600_000_000)
        minutes, micro = divmod(micro, 60_000_000)
        seconds, micro = divmod(micro, 1_000_000)
        return f"CAST({_text(f'{sign}{hours}:{minutes:02d}:{seconds:02d}.{micro:06d}')} AS TIME(6))"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, (dict, list)):
        return _text(json.dumps(value))
    if isinstance(value, set):
        return _text(",".join(sorted(value)))
    return _text(str(value))


def _text(value: str) -> str:
    """A MariaDB/MySQL string literal: a backslash escapes there, so it is doubled."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


