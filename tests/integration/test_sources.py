"""The JDBC reader against the real PostgreSQL and MariaDB: partitions, projection, pushdown, quoting."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from jobs.devtools.demo_data import DemoDatabase
from jobs.sources import jdbc
from jobs.sources.connections import Connection
from jobs.sources.jdbc import TableRead, describe_table, read_sources, read_table
from tests.support.databases import create_database, drop_database, query
from transforms.errors import SourceError
from transforms.mapping import load_mapping_text, referenced_columns

pytestmark = pytest.mark.integration

ROWS = 1000


def _fill(target: DemoDatabase) -> None:
    """An `order` table (a reserved word) of ROWS rows with a reserved-word column and a decimal."""
    create_database(target)
    if target.engine == "postgres":
        query(target, 'CREATE TABLE public."order" (id bigint PRIMARY KEY, "group" text, amount numeric, note text)')
        query(target, 'INSERT INTO public."order" SELECT g, CASE WHEN g %% 2 = 0 THEN \'even\' ELSE \'odd\' END, '
                      "g / 7.0, repeat('x', 10) FROM generate_series(1, %s) g", [ROWS])
        return
    query(target, "CREATE TABLE `order` (id bigint PRIMARY KEY, `group` text, amount decimal(20,10), note text)")
    rows = ", ".join(f"({i}, '{'even' if i % 2 == 0 else 'odd'}', {i}/7, 'xxxxxxxxxx')" for i in range(1, ROWS + 1))
    query(target, f"INSERT INTO `order` VALUES {rows}")


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def source(request):
    target = DemoDatabase(request.param, database=f"carve_sources_test_{request.param}")
    _fill(target)
    if request.param == "postgres":
        conn = Connection("t", f"jdbc:postgresql://127.0.0.1:5432/{target.database}", "postgres", SecretStr(""))
        table = "public.order"
    else:
        conn = Connection("t", f"jdbc:mysql://127.0.0.1:3306/{target.database}", "root", SecretStr(""))
        table = "order"
    yield conn, table
    drop_database(target)


MAPPING = """
version: 1
name: t
source: {{connection: t}}
target: {{table: Tbl, key: {{partition: PK}}}}
entities:
  even:
    from: {table}
    filter: "id <= 500"
    key: {{PK: "O#{{id}}"}}
    attributes: {{amount: amount}}
"""


def test_reserved_word_identifiers_are_quoted_and_read(spark, source):
    conn, table = source
    info = describe_table(spark, conn, table)
    assert [c.name for c in info.columns] == ["id", "group", "amount", "note"]
    assert info.primary_key == ("id",)
    df = read_table(spark, conn, TableRead(table, info.columns))
    assert df.count() == ROWS
    assert df.where("`group` = 'odd'").count() == ROWS // 2


def test_partitioned_read_splits_on_the_key_and_loses_no_row(spark, source, monkeypatch):
    conn, table = source
    monkeypatch.setattr(jdbc, "ROWS_PER_PARTITION", 100)
    info = describe_table(spark, conn, table)
    df = read_table(spark, conn, TableRead(table, info.columns, partition_column="id"))
    assert df.rdd.getNumPartitions() > 1
    ids = sorted(r.id for r in df.select("id").collect())
    assert ids == list(range(1, ROWS + 1))


def test_mapping_reads_only_used_columns_and_pushes_its_filter_down(spark, source):
    conn, table = source
    mapping = load_mapping_text(MAPPING.format(table=table), "t.yaml")
    frames = read_sources(spark, conn, mapping, referenced_columns(mapping))
    df = frames[table]
    assert {c for c in df.columns if not c.startswith("__carve")} == {"id", "amount"}  # group and note are not used
    assert "WHERE (id <= 500)" in df._jdf.queryExecution().executedPlan().toString()
    assert df.count() == 500
    df.unpersist()


def test_exact_numbers_travel_as_text(spark, source):
    conn, table = source
    info = describe_table(spark, conn, table)
    df = read_table(spark, conn, TableRead(table, info.columns))
    amount = df.where("id = 1").first().amount
    assert isinstance(amount, str)
    assert amount.startswith("0.1428571")  # the digits the database holds, as text: no float on the way
    assert df.schema["amount"].metadata == {"carve_kind": "number_text"}


def test_unknown_table_lists_the_tables_there(spark, source):
    conn, table = source
    missing = table.replace("order", "orders")
    with pytest.raises(SourceError, match=r"table '.*orders' does not exist; tables in that schema are: order"):
        describe_table(spark, conn, missing)


def test_a_long_answer_comes_in_one_piece_with_the_same_values(spark, source, monkeypatch):
    conn, table = source
    q = conn.dialect.quote
    sql = (f"SELECT id, {q('group')}, amount, CASE WHEN id % 3 = 0 THEN NULL ELSE concat(note, 'é€😀') END "
           f"FROM {jdbc.qualified(conn, table)} ORDER BY id")
    assert ROWS > jdbc.ROWS_ONE_BY_ONE > 0
    in_one_piece = jdbc.jdbc_rows(spark, conn, sql, session=True)
    monkeypatch.setattr(jdbc, "ROWS_ONE_BY_ONE", ROWS + 1)
    one_by_one = jdbc.jdbc_rows(spark, conn, sql, session=True)
    assert len(in_one_piece) == ROWS
    assert in_one_piece == one_by_one
    third = in_one_piece[2]
    assert third[:2] == ("3", "odd") and third[2].startswith("0.428571") and third[3] is None
    assert in_one_piece[999][3] == "xxxxxxxxxxé€😀"


def test_small_answers_read_on_the_driver_equal_spark_jdbc_reads_of_them(spark, source):
    conn, table = source
    q = conn.dialect.quote
    later = "TIMESTAMP '2026-03-29 01:30:00' + " + (
        "id * INTERVAL '1 hour'" if conn.engine == "postgres" else "INTERVAL id HOUR")
    queries = [f"SELECT id, {q('group')}, amount, CASE WHEN id % 3 = 0 THEN NULL ELSE concat(note, 'é€😀') END AS note, "
               f"DATE '2026-03-29' AS day, {later} AS at FROM {jdbc.qualified(conn, table)} "
               f"WHERE id BETWEEN {low} AND {low + 4} ORDER BY id DESC LIMIT 5" for low in (1, 5000, 500, 996)]
    answers = jdbc.local_answers(spark, conn, queries)
    reads = [jdbc.read_query(spark, conn, sql) for sql in queries]
    # Names and types; not the driver's own metadata (MariaDB's `scale` of a text column is 0
    # for Spark's empty schema query and 39 for a real answer), which carve does not read.
    assert [(f.name, f.dataType) for f in answers.schema] == [(f.name, f.dataType) for f in reads[0].schema]
    assert answers.collect() == [row for read in reads for row in read.collect()]  # one after another, in order
    assert [r.id for r in answers.collect()] == [5, 4, 3, 2, 1, 504, 503, 502, 501, 500, 1000, 999, 998, 997, 996]
    [first] = answers.where("id = 1").collect()
    assert str(first.amount).startswith("0.142857") and first.note == "xxxxxxxxxxé€😀"
    with pytest.raises(SourceError, match=r"the answers differ in their columns: struct<id:.*>, then struct<id:"):
        jdbc.local_answers(spark, conn, [f"SELECT id FROM {jdbc.qualified(conn, table)}",
                                         f"SELECT id, note FROM {jdbc.qualified(conn, table)}"])
