"""Third-party sample databases (Chinook, Northwind) loaded into PostgreSQL or MariaDB, for
`carve scaffold` to be tried on schemas carve did not design.

Each sample is a folder under tests/data/samples/: `tables.yaml` (columns with portable types,
primary and foreign keys), one `<Table>.jsonl` per table (a header line of column names, then one
JSON array per row) and `LICENSE.md` (where the data comes from and on what terms). The database
is dropped and created again on every load; names are kept exactly as the sample spells them, so
mixed case and reserved words (Northwind's "Order") reach the catalogue as they would in the wild.

Usage: python -m jobs.devtools.samples chinook --engine postgres [--database carve_chinook]
The password, if any, comes from CARVE_DEMO_PASSWORD, never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from jobs.devtools.demo_data import ENGINES, PASSWORD_ENV, DemoDatabase, driver_errors, open_loader

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "samples"
SAMPLES = ("chinook", "northwind")

# Portable type -> MariaDB type where the spelling differs. MariaDB's TIMESTAMP converts through
# the session zone and REAL means DOUBLE, so the closest types are DATETIME and FLOAT.
_MARIADB_TYPES = {"timestamp": "DATETIME", "real": "FLOAT"}
_TYPE = re.compile(r"(?P<type>[a-z]+(?:\(\d+(?:,\d+)?\))?)(?P<not_null> not null)?")


@dataclass(frozen=True)
class SampleColumn:
    name: str
    type: str  # portable: integer, smallint, varchar(n), text, numeric(p,s), timestamp, date, real
    nullable: bool

    def value(self, raw: Any) -> Any:
        """The Python value the drivers bind for a JSON value of this column."""
        if raw is None:
            return None
        if self.type == "timestamp":
            return datetime.fromisoformat(raw)
        if self.type == "date":
            return date.fromisoformat(raw)
        if self.type == "real":
            return float(raw)
        return raw  # numbers arrive as Decimal (parse_float) or int, text as str


@dataclass(frozen=True)
class SampleTable:
    name: str
    columns: tuple[SampleColumn, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[tuple[str, str, str], ...]  # (column, parent table, parent column)


def read_tables(sample: str) -> tuple[SampleTable, ...]:
    spec = YAML(typ="safe").load((SAMPLES_DIR / sample / "tables.yaml").read_text(encoding="utf-8"))
    tables = []
    for name, table in spec["tables"].items():
        columns = []
        for column, text in table["columns"].items():
            match = _TYPE.fullmatch(text)
            if match is None:
                raise ValueError(f"{sample}/tables.yaml: {name}.{column}: cannot read type {text!r}")
            columns.append(SampleColumn(column, match["type"], nullable=match["not_null"] is None))
        tables.append(SampleTable(name, tuple(columns), tuple(table["primary_key"]),
                                  tuple(tuple(fk) for fk in table.get("foreign_keys", ()))))
    return tuple(tables)


def read_rows(sample: str, table: SampleTable) -> Iterator[tuple[Any, ...]]:
    with (SAMPLES_DIR / sample / f"{table.name}.jsonl").open(encoding="utf-8") as lines:
        header = json.loads(next(lines))
        if header != [c.name for c in table.columns]:
            raise ValueError(f"{sample}/{table.name}.jsonl: header {header} differs from tables.yaml")
        for line in lines:
            raw = json.loads(line, parse_float=Decimal)
            yield tuple(column.value(value) for column, value in zip(table.columns, raw, strict=True))


def _mariadb_type(portable: str) -> str:
    return _MARIADB_TYPES.get(portable, portable.upper())


def _load_postgres(conn: Any, sample: str, tables: Sequence[SampleTable]) -> dict[str, int]:
    from psycopg import sql

    counts = {}
    for table in tables:
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}{}").format(sql.Identifier(c.name), sql.SQL(c.type),
                                      sql.SQL("" if c.nullable else " NOT NULL"))
            for c in table.columns)
        key = sql.SQL(", ").join(map(sql.Identifier, table.primary_key))
        conn.execute(sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(sql.Identifier(table.name), columns, key))
        copy_into = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns))
        counts[table.name] = 0
        with conn.cursor() as cursor, cursor.copy(copy_into) as copy:
            for row in read_rows(sample, table):
                copy.write_row(row)
                counts[table.name] += 1
    for table in tables:  # checked: the samples' rows keep their references
        for column, parent, parent_column in table.foreign_keys:
            conn.execute(sql.SQL("ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({})").format(
                sql.Identifier(table.name), sql.Identifier(column), sql.Identifier(parent),
                sql.Identifier(parent_column)))
    conn.commit()
    conn.autocommit = True
    conn.execute("ANALYZE")
    return counts


def _backquoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _load_mariadb(conn: Any, sample: str, tables: Sequence[SampleTable]) -> dict[str, int]:
    counts = {}
    with conn.cursor() as cursor:
        for table in tables:
            columns = ", ".join(f"{_backquoted(c.name)} {_mariadb_type(c.type)}{'' if c.nullable else ' NOT NULL'}"
                                for c in table.columns)
            key = ", ".join(map(_backquoted, table.primary_key))
            cursor.execute(f"CREATE TABLE {_backquoted(table.name)} ({columns}, PRIMARY KEY ({key})) ENGINE=InnoDB")
            rows = list(read_rows(sample, table))
            cursor.executemany(
                f"INSERT INTO {_backquoted(table.name)} ({', '.join(_backquoted(c.name) for c in table.columns)}) "
                f"VALUES ({', '.join(['%s'] * len(table.columns))})", rows)
            counts[table.name] = len(rows)
        cursor.execute("SET foreign_key_checks = 1")  # checked: the samples' rows keep their references
        for table in tables:
            for column, parent, parent_column in table.foreign_keys:
                cursor.execute(f"ALTER TABLE {_backquoted(table.name)} ADD FOREIGN KEY ({_backquoted(column)}) "
                               f"REFERENCES {_backquoted(parent)} ({_backquoted(parent_column)})")
        conn.commit()
        cursor.execute("ANALYZE TABLE " + ", ".join(_backquoted(t.name) for t in tables))
        cursor.fetchall()
    return counts


def load_sample(sample: str, target: DemoDatabase) -> dict[str, int]:
    """Drops and creates target's database with the sample in it; returns rows per table."""
    if sample not in SAMPLES:
        raise ValueError(f"unknown sample {sample!r}; use one of {', '.join(SAMPLES)}")
    tables = read_tables(sample)
    loader = open_loader(target)  # the demo's loaders make the database: UTF-8, bytewise collation, UTC
    try:
        loader.recreate_database()
        if target.engine == "postgres":
            return _load_postgres(loader.conn, sample, tables)  # type: ignore[attr-defined]
        return _load_mariadb(loader.conn, sample, tables)  # type: ignore[attr-defined]
    finally:
        loader.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.devtools.samples", description=__doc__.split("\n\n")[0])
    parser.add_argument("sample", choices=SAMPLES)
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--database", help="default: carve_<sample>")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--user", default=None)
    args = parser.parse_args(argv)
    target = DemoDatabase(args.engine, host=args.host, port=args.port, user=args.user,
                          password=os.environ.get(PASSWORD_ENV, ""), database=args.database or f"carve_{args.sample}")
    started = time.monotonic()
    try:
        counts = load_sample(args.sample, target)
    except (ValueError, *driver_errors(args.engine)) as error:
        print(f"samples: error: {error}", file=sys.stderr)
        return 1
    for name, count in counts.items():
        print(f"{name:<14} {count:>8,}")
    print(f"{args.sample} loaded into {args.engine} database {target.database} in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
