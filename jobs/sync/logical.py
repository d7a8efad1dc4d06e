"""Changes read from PostgreSQL logical decoding: a replication slot carve creates and owns.

The slot (output plugin wal2json, format 2) keeps every change committed after its position
until carve moves it. A cycle peeks at the changes up to the server's WAL position read when it
starts, without consuming them; the slot moves there only after the items are written, read back
and the positions saved in the control table (a crash before that leaves the changes in the slot,
and the next cycle applies them again, to the same items).

Each change carries images of its row: the new one (insert, update) and the old one's replica
identity (update, delete). Both feed the walk up the join graph, as literal rows, since a deleted
row is no longer in its table: the old image finds the parent that lost a child, and the item
keys an entity's old rows had, which the cycle deletes unless the rebuild writes them again (a
deleted root, a key that changed). The old image must hold the columns that walk and those keys
need: the primary key carries them, or the table's replica identity must be FULL; carve checks
it and says which ALTER TABLE to run. A truncate cannot be followed row by row: the sync stops
and asks for a full load.

A full load takes the server's WAL position before it reads (creating the slot if needed) and,
once proven, saves it and moves the slot there: changes committed meanwhile are applied again
by the first sync, harmlessly.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import SparkSession

from jobs.sources.connections import Connection
from jobs.sources.dialect import sql_literal
from jobs.sources.jdbc import describe_table, jdbc_rows, split_table
from jobs.sync import images
from jobs.sync.changes import FullLoadNeededError, TableChanges, saved_positions, truncated
from jobs.sync.images import Image, key_list, relation
from jobs.sync.state import Position, fingerprint
from transforms.errors import SourceError
from transforms.mapping import Mapping, PostgresLogical

KIND = "postgres_logical"
PLUGIN = "wal2json"
OPERATIONS = {"I": "insert", "U": "update", "D": "delete"}


@dataclass(frozen=True)
class Followed:
    """A table the slot follows, as the server names it, with the columns a change must carry."""

    table: str  # as the mapping names it
    schema: str
    name: str
    key: tuple[str, ...]  # primary key
    needed: tuple[str, ...]  # primary key, key template columns, embed join columns: what the walk reads


def tables(mapping: Mapping) -> dict[str, str]:
    """The mapping's tables followed by logical decoding, with their slot."""
    if mapping.sync is None:
        return {}
    return {t: s.postgres_logical for t, s in mapping.sync.tables.items() if isinstance(s, PostgresLogical)}


def marks(spark: SparkSession, conn: Connection, mapping: Mapping) -> list[Position]:
    """Before a full load reads: the slot (created if missing) and the server's WAL position now,
    for every table the slot follows."""
    followed = tables(mapping)
    if not followed:
        return []
    slot = _one_slot(followed)
    _require_postgres(conn)
    check_identity(spark, conn, mapping, followed)
    if _slot(spark, conn, slot) is None:
        _sql(spark, conn, f"SELECT 1 FROM pg_create_logical_replication_slot({sql_literal(slot)}, '{PLUGIN}')")
    [(lsn,)] = _sql(spark, conn, "SELECT pg_current_wal_lsn()::text")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    shape = fingerprint(mapping)
    return [Position(t, KIND, {"slot": slot, "lsn": lsn}, shape, now) for t in followed]


def committed(spark: SparkSession, conn: Connection, positions: Iterable[Position]) -> None:
    """After the positions are saved: the slot moves to them, releasing the WAL it kept."""
    lsns = {p.value["slot"]: p.value["lsn"] for p in positions if p.kind == KIND}
    for slot, lsn in lsns.items():
        [(behind,)] = _sql(spark, conn, f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = {sql_literal(slot)} "
                                        f"AND confirmed_flush_lsn < {sql_literal(lsn)}::pg_lsn")
        if behind != "0":  # a slot never moves back: advancing to where it is already is an error
            _sql(spark, conn, f"SELECT 1 FROM pg_replication_slot_advance({sql_literal(slot)}, {sql_literal(lsn)}::pg_lsn)")


def changes(spark: SparkSession, conn: Connection, mapping: Mapping, saved: dict[str, Position],
            limit: int) -> list[TableChanges]:
    """Per followed table, the rows changed since the saved position, as a key list on the table
    and as literal images (new and old) for the walk: the transactions committed before the WAL
    position now, or those up to the one that reaches `limit` rows (then the position moves to
    the end of that transaction's commit, and `more` says that others wait)."""
    followed = tables(mapping)
    if not followed:
        return []
    slot = _one_slot(followed)
    _require_postgres(conn)
    info = check_identity(spark, conn, mapping, followed)
    before = saved_positions(KIND, followed, saved, shared=True)
    lsn = before[next(iter(followed))].value["lsn"]
    current = _slot(spark, conn, slot)
    if current is None:
        raise FullLoadNeededError(
            f"replication slot {slot} is not on the server any more (dropped, or the server was rebuilt): the "
            "changes since the last sync are lost to carve. Run a full load (`carve run`), which creates the slot")
    plugin, confirmed = current
    if plugin != PLUGIN:
        raise SourceError(f"replication slot {slot} decodes with {plugin}, not {PLUGIN}: it is not carve's. Name "
                          "another slot in sync.tables, or drop this one if nothing else uses it")
    [(upto, ahead)] = _sql(spark, conn, f"SELECT pg_current_wal_lsn()::text, "
                                        f"{sql_literal(confirmed)}::pg_lsn > {sql_literal(lsn)}::pg_lsn")
    if ahead == "t":
        raise FullLoadNeededError(
            f"replication slot {slot} has moved to {confirmed}, past the position the last sync saved ({lsn}): "
            "something else consumed changes carve had not applied. Run a full load (`carve run`)")
    found: dict[str, list[Image]] = {t: [] for t in followed}
    counts: dict[str, Counter] = {t: Counter() for t in followed}
    by_name = {(f.schema, f.name): f.table for f in info.values()}
    decoded = _peek(spark, conn, slot, upto, info.values(), limit)
    more = len(decoded) >= limit
    for at, data in decoded:
        change = _parse(data, slot)
        table = by_name.get((change.get("schema"), change.get("table")))
        action = change.get("action")
        if action == "C" and more:
            upto = at  # the end of this commit: where the slot moves, past this transaction and no further
        if table is None or action not in (*OPERATIONS, "T"):
            continue  # the slot decodes only the mapping's tables (add-tables), and only these actions
        if action == "T":
            raise truncated(table, f"at {change.get('lsn', 'a position after ' + lsn)}")
        counts[table][OPERATIONS[action]] += 1
        if "columns" in change:
            found[table].append(Image(False, _values(change["columns"])))
        if "identity" in change:  # an update's or a delete's old image (its replica identity)
            found[table].append(Image(True, _values(change["identity"])))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    after = {t: Position(t, KIND, {"slot": slot, "lsn": upto}, fingerprint(mapping), now) for t in followed}
    out = []
    for table in followed:
        rows, f = found[table], info[table]
        if not rows:
            out.append(TableChanges(table, before[table], after[table], None, 0, {}, more=more))
            continue
        out.append(TableChanges(table, before[table], after[table], key_list(conn, f.key, rows),
                                sum(counts[table].values()), dict(counts[table]), relation(conn, list(f.needed), rows),
                                more))
    return out


def release(spark: SparkSession, conn: Connection, mapping: Mapping) -> list[str]:
    """When the mapping stops syncing: its slot dropped, which keeps WAL on the server until then."""
    followed = tables(mapping)
    if not followed:
        return []
    slot = _one_slot(followed)
    _require_postgres(conn)
    if _slot(spark, conn, slot) is None:
        return [f"replication slot {slot}: not on the server (nothing to drop)"]
    _sql(spark, conn, f"SELECT 1 FROM pg_drop_replication_slot({sql_literal(slot)})")
    return [f"replication slot {slot}: dropped (the server no longer keeps WAL for it)"]


# --- the server ---------------------------------------------------------------------------------

def _sql(spark: SparkSession, conn: Connection, sql: str) -> list[tuple]:
    return jdbc_rows(spark, conn, sql, session=True)


def _slot(spark: SparkSession, conn: Connection, slot: str) -> tuple[str, str] | None:
    """(plugin, confirmed position) of the slot in this database, None when there is none."""
    rows = _sql(spark, conn, f"SELECT plugin, confirmed_flush_lsn::text, database = current_database() "
                             f"FROM pg_replication_slots WHERE slot_name = {sql_literal(slot)}")
    if not rows:
        return None
    plugin, confirmed, here = rows[0]
    if here != "t":
        raise SourceError(f"replication slot {slot} belongs to another database: a slot decodes one database. "
                          "Name another slot in sync.tables")
    return plugin, confirmed


def _peek(spark: SparkSession, conn: Connection, slot: str, upto: str, followed: Iterable[Followed],
          limit: int) -> list[tuple]:
    """(position, change) of the slot's changes committed before `upto`, left in the slot; whole
    transactions (with their B and C records, a C's position the end of its commit), stopping
    after the one that reaches `limit` rows."""
    names = ",".join(f"{_escape(f.schema)}.{_escape(f.name)}" for f in followed)
    return _sql(spark, conn, (
        f"SELECT lsn::text, data FROM pg_logical_slot_peek_changes({sql_literal(slot)}, {sql_literal(upto)}::pg_lsn, "
        f"{int(limit)}, 'format-version', '2', 'include-types', 'true', 'include-transaction', 'true', "
        f"'include-lsn', 'true', 'actions', 'insert,update,delete,truncate', 'add-tables', {sql_literal(names)})"))


def _escape(name: str) -> str:
    """A name in wal2json's add-tables list, where space, quote, comma, dot and star are syntax."""
    return "".join("\\" + c if c in " ',.*\\" else c for c in name)


def _parse(data: str, slot: str) -> dict[str, Any]:
    try:
        # Numbers stay as the server wrote them: a float would lose a numeric's digits.
        change = json.loads(data, parse_float=str, parse_int=str)
    except ValueError as exc:
        raise SourceError(f"replication slot {slot} gave a change carve cannot read ({exc}): {data[:200]!r}. "
                          "The slot was not moved; check that it decodes with wal2json format 2") from None
    if not isinstance(change, dict):
        raise SourceError(f"replication slot {slot} gave a change carve cannot read: {data[:200]!r}")
    return change


def _values(columns: list[dict[str, Any]]) -> dict[str, str]:
    """An image's values as SQL, each cast to its column's type as wal2json names it."""
    return {c["name"]: f"CAST({_literal(c['value'])} AS {c['type']})" for c in columns}


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return sql_literal(str(value))  # standard_conforming_strings: a backslash is itself


# --- what a change must carry -------------------------------------------------------------------

def check_identity(spark: SparkSession, conn: Connection, mapping: Mapping,
                    followed: dict[str, str]) -> dict[str, Followed]:
    """Each followed table as the server knows it; refuses one whose deletes would not say which
    items they touch (the replica identity lacks a column the walk needs)."""
    out = {}
    roots = {e.from_ for e in mapping.entities.values()}
    for table in followed:
        schema, name = split_table(table)
        regclass = ".".join(conn.dialect.quote(part) for part in (schema, name) if part)
        rows = _sql(spark, conn, (
            "SELECT n.nspname, c.relname, c.relreplident, (SELECT json_agg(a.attname)::text FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid "
            "AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.oid = to_regclass({sql_literal(regclass)})"))
        if not rows:
            raise SourceError(f"sync.tables.{table}: no such table in the source")
        real_schema, real_name, identity, columns = rows[0]
        key = describe_table(spark, conn, table).primary_key
        needed = images.needed(mapping, table) | set(key)
        if table in roots and not key:
            raise SourceError(f"sync.tables.{table}: an entity's items are rebuilt by their rows' primary key, and "
                              f"{table} has none. Add one, or follow the table with a watermark")
        carried = set(json.loads(columns or "[]"))
        missing = sorted(needed - carried)
        if identity != "f" and missing:
            what = {"d": "its primary key", "i": "an index", "n": "nothing"}.get(identity, identity)
            raise SourceError(
                f"sync.tables.{table}: a delete or a key change must carry {', '.join(missing)} (item keys and "
                f"joins read them), but the table's replica identity is {what}. Run: ALTER TABLE "
                f"{conn.dialect.quote(real_schema)}.{conn.dialect.quote(real_name)} REPLICA IDENTITY FULL")
        out[table] = Followed(table, real_schema, real_name, tuple(key), tuple(sorted(needed)))
    return out


def _one_slot(followed: dict[str, str]) -> str:
    return next(iter(followed.values()))  # the mapping's loader allows one slot per mapping


def _require_postgres(conn: Connection) -> None:
    if conn.dialect.name != "postgres":
        raise SourceError(f"connection '{conn.name}' is {conn.dialect.name}: postgres_logical follows PostgreSQL "
                          "only. Use a watermark for this source")
