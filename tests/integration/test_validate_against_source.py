"""`carve validate --against-source` against the real PostgreSQL: wrong columns and tables found
before any row is read, each reported as `file:line field: message`.

Each `carve` process starts its own Spark (several seconds), so the invalid files go through one
process and the correct one through another, and the two run side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DATABASE = "carve_validate_test"
CARVE = str(Path(sys.executable).with_name("carve"))

HEADER = """\
version: 1
name: validate_test
source: {connection: validate_test}
target:
  table: ValidateTest
  key: {partition: PK, sort: SK}
entities:
  order:
"""

MAPPINGS = {
    # Line 10: a column that is not there; 12: a date format on a numeric column; 13: another.
    "columns.yaml": HEADER + """\
    from: shop.orders
    key: {PK: "ORDER#{order_id}", SK: "PLACED#{placed:%Y-%m-%d}"}
    attributes:
      day: "{total:%Y-%m-%d}"
      amount: amount
""",
    "table.yaml": HEADER + """\
    from: shop.order
    key: {PK: "ORDER#{order_id}", SK: DETAILS}
""",
    # Line 12: an embed joined on a child column that is not there.
    "join.yaml": HEADER + """\
    from: shop.orders
    key: {PK: "ORDER#{order_id}", SK: DETAILS}
    attributes:
      lines: {from: shop.orders, join: {order_id: no_such_column}, many: {total: total}}
""",
    # Line 10: a filter PostgreSQL refuses; 13: a query that does not run.
    "sql.yaml": HEADER + """\
    from: shop.orders
    filter: "totl > 13"
    key: {PK: "ORDER#{order_id}", SK: DETAILS}
  broken:
    query: "SELEC order_id FROM shop.orders"
    key: {PK: "ORDER#{order_id}", SK: BROKEN}
""",
    "good.yaml": HEADER + """\
    from: shop.orders
    key: {PK: "ORDER#{order_id:08d}", SK: "PLACED#{placed_at:%Y-%m-%d}"}
    attributes:
      total: total
      placed: {column: placed_at, as: iso8601}
""",
}

COLUMNS = "its columns are: order_id, placed_at, total"


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str

    def problems(self, file: str) -> list[str]:
        """The lines about FILE; Spark's own start-up chatter on stderr is not carve's."""
        return [line for line in self.stderr.splitlines() if line.startswith(file)]


def _psql(database: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def source_database():
    _psql("postgres", f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", f"CREATE DATABASE {DATABASE}")
    try:
        _psql(DATABASE, "CREATE SCHEMA shop",
              "CREATE TABLE shop.orders (order_id bigint PRIMARY KEY, placed_at timestamptz, total numeric)")
        yield f"jdbc:postgresql://127.0.0.1:5432/{DATABASE}"
    finally:
        _psql("postgres", f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


@pytest.fixture(scope="module")
def results(source_database, tmp_path_factory) -> dict[str, Result]:
    """Both `carve validate --against-source` runs, keyed by the files each was given."""
    workdir = tmp_path_factory.mktemp("validate")
    for name, text in MAPPINGS.items():
        (workdir / name).write_text(text, encoding="utf-8")
    runs = {"invalid": ["columns.yaml", "table.yaml", "join.yaml", "sql.yaml"], "good": ["good.yaml"]}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CARVE_CONNECTION_VALIDATE_TEST_URL", source_database)
        env.setenv("CARVE_CONNECTION_VALIDATE_TEST_USER", "postgres")
        env.delenv("CARVE_CONNECTION_VALIDATE_TEST_PASSWORD", raising=False)
        env.setenv("CARVE_SPARK_MASTER", "local[1]")
        processes = {
            run: subprocess.Popen([CARVE, "validate", "--against-source", *files], cwd=workdir, env=dict(os.environ),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for run, files in runs.items()
        }
        outputs = {run: process.communicate(timeout=120) for run, process in processes.items()}
    return {run: Result(processes[run].returncode, *outputs[run]) for run in runs}


def test_unknown_columns_and_date_formats_are_reported_on_their_lines(results):
    invalid = results["invalid"]
    problems = invalid.problems("columns.yaml")

    assert invalid.status == 1
    assert f"columns.yaml:10 entities.order.key.SK: unknown column 'placed' in shop.orders; {COLUMNS}" in problems
    assert ("columns.yaml:12 entities.order.attributes.day: '{total:%Y-%m-%d}': "
            "a date format needs a date or timestamp column") in problems
    assert f"columns.yaml:13 entities.order.attributes.amount: unknown column 'amount' in shop.orders; {COLUMNS}" in problems


def test_each_mistake_is_reported_once(results):
    assert results["invalid"].problems("columns.yaml") == [
        f"columns.yaml:10 entities.order.key.SK: unknown column 'placed' in shop.orders; {COLUMNS}",
        "columns.yaml:12 entities.order.attributes.day: '{total:%Y-%m-%d}': a date format needs a date or timestamp column",
        f"columns.yaml:13 entities.order.attributes.amount: unknown column 'amount' in shop.orders; {COLUMNS}",
    ]


def test_unknown_table_names_the_tables_there(results):
    invalid = results["invalid"]

    assert invalid.status == 1
    assert invalid.problems("table.yaml") == [
        "table.yaml:9 entities.order.from: table 'shop.order' does not exist; tables in that schema are: orders",
    ]


def test_unknown_table_is_located_at_its_from(results):
    assert [line.split(": ")[0] for line in results["invalid"].problems("table.yaml")] == [
        "table.yaml:9 entities.order.from",
    ]


def test_a_join_on_an_unknown_child_column_is_reported_on_its_line(results):
    assert results["invalid"].problems("join.yaml") == [
        f"join.yaml:12 entities.order.attributes.lines.join: unknown column 'no_such_column' in shop.orders; {COLUMNS}",
    ]


def test_filters_and_queries_the_database_refuses_are_reported_in_its_words(results):
    assert results["invalid"].problems("sql.yaml") == [
        'sql.yaml:10 entities.order.filter: filter does not apply: ERROR: column "totl" does not exist',
        'sql.yaml:13 entities.broken.query: the query does not run: ERROR: syntax error at or near "FROM"',
    ]


def test_correct_mapping_passes(results):
    good = results["good"]

    assert (good.status, good.problems("good.yaml")) == (0, [])
    assert good.stdout == "good.yaml: ok (1 entities into ValidateTest)\n"


def test_no_traceback(results):
    for result in results.values():
        assert "Traceback" not in result.stdout + result.stderr
