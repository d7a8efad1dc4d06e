"""Values a plain JDBC read gets wrong while reporting success, against the real PostgreSQL and
MariaDB: each must arrive exactly, or quarantine its item with a reason naming the column.

- a filter means what the source database says it means (numeric against an integer literal,
  PostgreSQL's integer division), whether it is pushed down as WHERE or not;
- PostgreSQL dates before the Gregorian reform stay as written; 'infinity' and BC dates are
  quarantined;
- PostgreSQL columns `name` and `Name` are two columns;
- MariaDB BIT(64) is an unsigned number, TINYINT(1) outside 0/1 is not a boolean, zero dates
  and zero days are quarantined, never shifted or dropped.

The expected values are written out here from what the tests insert; the expected filter
results are also asked of the database itself.
"""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from jobs.devtools.demo_data import DemoDatabase
from jobs.sources.connections import Connection
from jobs.sources.jdbc import full_schema_frames, read_sources, unpersist
from tests.support.databases import connect, create_database, drop_database, query
from transforms.context import CompileError
from transforms.items import build_items
from transforms.mapping import load_mapping_text, referenced_columns

pytestmark = pytest.mark.integration

ALL_ONES_64 = 2**64 - 1

MONEY_ROWS = [(1, "12.50"), (2, "13.00"), (3, "13.01"), (4, "100.00"), (5, None)]

PG_TABLES = [
    "CREATE TABLE money (id integer PRIMARY KEY, total numeric(10,2))",
    "CREATE TABLE days (id integer PRIMARY KEY, d date, ts timestamp, tz timestamptz)",
    """INSERT INTO days VALUES
        (1, '1582-10-10', '1500-01-01 10:00:00.123', '1582-10-04 23:00:00+00'),
        (2, 'infinity', '2024-01-01 00:00:00', '2024-01-01 00:00:00+00'),
        (3, '2024-02-29', '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.999999+00'),
        (4, '0044-03-15 BC', NULL, NULL),
        (5, '2024-01-01', '-infinity', 'infinity')""",
    'CREATE TABLE people (id integer PRIMARY KEY, name text, "Name" text)',
    "INSERT INTO people VALUES (1, 'lower', 'Upper')",
]

MARIADB_TABLES = [
    "CREATE TABLE money (id integer PRIMARY KEY, total decimal(10,2))",
    "CREATE TABLE days (id integer PRIMARY KEY, d date, dt datetime(6))",
    "SET SESSION sql_mode = ''",  # how old applications stored zero dates
    """INSERT INTO days VALUES
        (1, '2024-02-00', '2024-01-01 10:00:00'),
        (2, '0000-00-00', '2024-01-01 10:00:00'),
        (3, '2024-02-29', '2024-02-29 23:59:59.999999'),
        (4, '1000-01-01', '0000-00-00 00:00:00')""",
    "CREATE TABLE bits (id integer PRIMARY KEY, b bit(64), flag bit(1), t tinyint(1))",
    """INSERT INTO bits VALUES
        (1, b'1111111111111111111111111111111111111111111111111111111111111111', 1, 1),
        (2, b'101', 0, 2), (3, 0, 1, -1), (4, 0, 0, 0)""",
]

MAPPING = """
version: 1
name: traps
source: {connection: t}
target: {table: Traps, key: {partition: PK, sort: SK}}
entities:
  every:
    from: money
    key: {PK: "M#{id}", SK: ALL}
    attributes: {total: total}
  over_13:
    from: money
    filter: "total > 13"
    key: {PK: "M#{id}", SK: OVER13}
  halves:
    from: money
    filter: "id / 2 > 1"
    key: {PK: "M#{id}", SK: HALF}
  day:
    from: days
    key: {PK: "D#{id}", SK: DAY}
    attributes: {ATTRS}
"""

PEOPLE = """
  people:
    from: people
    key: {PK: "P#{id}", SK: PEOPLE}
    attributes: {lower: name, upper: Name}
"""

BITS = """
  bits:
    from: bits
    key: {PK: "B#{id}", SK: BITS}
    attributes: {b: b, flag: flag, t: t}
"""


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def source(request):
    engine = request.param
    target = DemoDatabase(engine, database=f"carve_traps_test_{engine}")
    create_database(target)
    conn = connect(target)
    try:
        cursor = conn.cursor()
        for statement in PG_TABLES if engine == "postgres" else MARIADB_TABLES:
            cursor.execute(statement)
        cursor.executemany("INSERT INTO money VALUES (%s, %s)", MONEY_ROWS)
    finally:
        conn.close()
    if engine == "postgres":
        url, user = f"jdbc:postgresql://127.0.0.1:5432/{target.database}", "postgres"
        attributes, extra = "{d: d, ts: ts, tz: tz}", PEOPLE
    else:
        url, user = f"jdbc:mysql://127.0.0.1:3306/{target.database}", "root"
        attributes, extra = "{d: d, dt: dt}", BITS
    mapping = load_mapping_text(MAPPING.replace("{ATTRS}", attributes) + extra, "traps.yaml")
    yield engine, target, Connection("t", url, user, SecretStr("")), mapping
    drop_database(target)


@pytest.fixture(scope="module")
def items(spark, source):
    _, _, conn, mapping = source
    frames = read_sources(spark, conn, mapping, referenced_columns(mapping))
    rows = build_items(mapping, frames).collect()
    unpersist(frames.values())
    return {(r.pk, r.sk): r for r in rows}


def ids(items, sk: str) -> set[int]:
    return {int(pk.split("#")[1]) for pk, s in items if s == sk}


def attributes(row) -> dict:
    return json.loads(row.item)


def test_a_filter_is_evaluated_by_the_database_alone(source, items):
    engine, target, _, _ = source
    assert ids(items, "ALL") == {1, 2, 3, 4, 5}
    # numeric(10,2) against an integer literal: 13.01 and 100.00, not the rows Spark's casts keep
    assert ids(items, "OVER13") == {3, 4} == {i for (i,) in query(target, "SELECT id FROM money WHERE total > 13")}
    # PostgreSQL divides integers as integers (3 / 2 = 1, not > 1); MariaDB gives 1.5000
    expected = {4, 5} if engine == "postgres" else {3, 4, 5}
    assert ids(items, "HALF") == expected == {i for (i,) in query(target, "SELECT id FROM money WHERE id / 2 > 1")}
    assert all(items[k].problem is None for k in items if k[1] in ("ALL", "OVER13", "HALF"))


def test_a_filter_the_database_refuses_is_reported_on_its_line(spark, source):
    _, _, conn, mapping = source
    bad = load_mapping_text(MAPPING.replace('"total > 13"', '"totl > 13"').replace("{ATTRS}", "{d: d}"), "bad.yaml")
    schema = full_schema_frames(spark, conn, bad)
    assert list(schema.bad_filters) == ["totl > 13"]
    assert "totl" in schema.bad_filters["totl > 13"]  # the database's own words name the column
    with pytest.raises(CompileError) as caught:
        build_items(bad, schema.frames, schema.missing, schema.bad_filters)
    [(loc, message)] = caught.value.errors
    assert loc == ("entities", "over_13", "filter") and message.startswith("filter does not apply: ")


def test_dates_arrive_exactly_or_quarantine_their_item(source, items):
    engine, _, _, _ = source
    day = {int(pk.split("#")[1]): items[(pk, sk)] for pk, sk in items if sk == "DAY"}
    if engine == "postgres":
        assert set(day) == {1, 2, 3, 4, 5}
        first = attributes(day[1])
        assert (first["d"], first["ts"], first["tz"]) == (
            {"S": "1582-10-10"}, {"S": "1500-01-01T10:00:00.123000"}, {"S": "1582-10-04T23:00:00.000000Z"})
        assert day[1].problem is None
        third = attributes(day[3])
        assert (third["d"], third["ts"], third["tz"]) == (
            {"S": "2024-02-29"}, {"S": "2024-02-29T23:59:59.999999"}, {"S": "2024-02-29T23:59:59.999999Z"})
        assert "days.d: 'infinity' is not a date" in day[2].problem
        assert "days.d: '0044-03-15 BC' is not a date" in day[4].problem
        assert "days.ts: '-infinity' is not a timestamp" in day[5].problem
        assert "days.tz: 'infinity' is not a timestamp" in day[5].problem
        assert day[3].problem is None
    else:
        assert set(day) == {1, 2, 3, 4}  # the zero date's row is there, not dropped
        assert "days.d: '2024-02-00' is not a date" in day[1].problem
        assert "days.d: '0000-00-00' is not a date" in day[2].problem
        assert "days.dt: '0000-00-00 00:00:00" in day[4].problem
        third = attributes(day[3])
        assert (third["d"], third["dt"]) == ({"S": "2024-02-29"}, {"S": "2024-02-29T23:59:59.999999"})
        assert day[3].problem is None


@pytest.mark.parametrize("source", ["mariadb"], indirect=True)  # BIT(n) and TINYINT(1) are MariaDB's
def test_mariadb_bits_and_tinyint_booleans(source, items):
    bits = {int(pk.split("#")[1]): items[(pk, sk)] for pk, sk in items if sk == "BITS"}
    assert attributes(bits[1]) == {"PK": {"S": "B#1"}, "SK": {"S": "BITS"}, "b": {"N": str(ALL_ONES_64)},
                                        "flag": {"BOOL": True}, "t": {"BOOL": True}}
    assert bits[1].problem is None
    assert attributes(bits[4])["b"] == {"N": "0"} and attributes(bits[4])["t"] == {"BOOL": False}
    assert bits[4].problem is None
    assert "bits.t: 2 in a TINYINT(1) column is not a boolean" in bits[2].problem
    assert "bits.t: -1 in a TINYINT(1) column is not a boolean" in bits[3].problem


@pytest.mark.parametrize("source", ["postgres"], indirect=True)  # MariaDB's column names ignore case
def test_columns_that_differ_only_in_case_are_two_columns(source, items):
    person = items[("P#1", "PEOPLE")]
    assert attributes(person) == {"PK": {"S": "P#1"}, "SK": {"S": "PEOPLE"}, "lower": {"S": "lower"},
                                  "upper": {"S": "Upper"}}
    assert person.problem is None
