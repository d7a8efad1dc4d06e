"""The demo database generator against the real PostgreSQL and MariaDB on loopback."""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from jobs.devtools.demo_data import (
    BAD_ORDER_NULL_CUSTOMER,
    DUPLICATE_SKU,
    DUPLICATE_SKU_PRODUCT_IDS,
    EMOJI_CUSTOMER_ID,
    ENGINES,
    HUGE_ORDER_ID,
    HUGE_ORDER_LINES,
    META_TABLE,
    TABLES,
    TYPE_TRAP,
    TYPE_TRAP_ROWS,
    WHALE_CUSTOMER_IDS,
    DemoDatabase,
    create_demo_database,
    sizes_for,
)
from tests.support.databases import connect, drop_database, query

pytestmark = pytest.mark.integration

SCALE = 0.05
SEED = 42
DYNAMODB_ITEM_LIMIT = 400 * 1024
# Tables whose contents prove determinism: every generator stream is covered.
CHECKSUM_TABLES = {
    "address": "address_id",
    "customer": "customer_id",
    "product": "product_id",
    "employee": "employee_id",
    "orders": "order_id",
    "order_line": "order_id, line_no",
    "payment": "payment_id",
    "review": "review_id",
}


def target_for(engine: str, suffix: str = "") -> DemoDatabase:
    return DemoDatabase(engine=engine, database=f"carve_demo_test_{engine}{suffix}")


def checksum(target: DemoDatabase, table: str, order_by: str) -> str:
    if target.engine == "postgres":
        # Server-side: the text form of every row, in key order.
        statement = f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY {order_by})) FROM {table} t"
        return query(target, statement)[0][0]
    digest = hashlib.sha256()
    for row in query(target, f"SELECT * FROM {table} ORDER BY {order_by}"):
        digest.update(repr(row).encode())
    return digest.hexdigest()


def checksums(target: DemoDatabase) -> dict[str, str]:
    return {table: checksum(target, table, order_by) for table, order_by in CHECKSUM_TABLES.items()}


@pytest.fixture(scope="module", params=ENGINES)
def demo(request: pytest.FixtureRequest) -> Iterator[tuple[DemoDatabase, dict[str, int]]]:
    target = target_for(request.param)
    drop_database(target)
    counts = create_demo_database(target, scale=SCALE, seed=SEED)
    yield target, counts
    drop_database(target)


def test_counts_are_the_rows_in_the_tables(demo: tuple[DemoDatabase, dict[str, int]]) -> None:
    target, counts = demo
    actual = {table.name: query(target, f"SELECT count(*) FROM {table.name}")[0][0] for table in TABLES}

    assert counts == actual
    sizes = sizes_for(SCALE)
    assert counts["customer"] == sizes.customers
    assert counts["orders"] == sizes.regular_orders + 2
    assert counts["order_line"] > HUGE_ORDER_LINES + 2 * sizes.regular_orders
    assert counts["type_trap"] == len(TYPE_TRAP_ROWS)


def test_same_seed_same_rows_other_seed_other_rows(demo: tuple[DemoDatabase, dict[str, int]]) -> None:
    target, counts = demo
    original = checksums(target)
    again = target_for(target.engine, "_again")
    drop_database(again)
    try:
        assert create_demo_database(again, scale=SCALE, seed=SEED) == counts
        assert checksums(again) == original

        create_demo_database(again, scale=SCALE, seed=SEED + 1)
        differing = {table for table, digest in checksums(again).items() if digest != original[table]}
        assert differing >= {"customer", "orders", "order_line", "review"}
    finally:
        drop_database(again)


def test_second_call_keeps_the_database(demo: tuple[DemoDatabase, dict[str, int]]) -> None:
    target, counts = demo
    # A table the generator never creates: it survives only if nothing was rebuilt.
    query(target, "CREATE TABLE idempotence_marker (id int)")
    oid_before = database_oid(target)
    try:
        messages: list[str] = []
        assert create_demo_database(target, scale=SCALE, seed=SEED, progress=messages.append) == counts

        assert query(target, "SELECT count(*) FROM idempotence_marker")[0][0] == 0
        assert database_oid(target) == oid_before
        assert messages == [f"{target.engine} database {target.database} already holds scale {SCALE}, seed {SEED}"]
        meta = dict(query(target, f"SELECT name, value FROM {META_TABLE}"))
        assert (meta["scale"], meta["seed"]) == (repr(SCALE), str(SEED))
    finally:
        query(target, "DROP TABLE idempotence_marker")


def database_oid(target: DemoDatabase) -> Any:
    if target.engine == "postgres":
        return query(target, "SELECT oid FROM pg_database WHERE datname = current_database()")[0][0]
    statement = "SELECT create_time FROM information_schema.tables WHERE table_schema = %s AND table_name = 'orders'"
    return query(target, statement, [target.database])[0][0]


def test_bad_rows_are_there(demo: tuple[DemoDatabase, dict[str, int]]) -> None:
    target, _ = demo

    null_customer = query(target, "SELECT order_id FROM orders WHERE customer_id IS NULL")
    assert null_customer == [(BAD_ORDER_NULL_CUSTOMER,)]

    status, lines = query(
        target,
        "SELECT o.status, count(*) FROM orders o JOIN order_line l ON l.order_id = o.order_id "
        "WHERE o.order_id = %s GROUP BY o.status",
        [HUGE_ORDER_ID],
    )[0]
    assert (status, lines) == ("open", HUGE_ORDER_LINES)
    name_bytes = query(
        target,
        "SELECT sum(octet_length(p.name)) FROM order_line l JOIN product p ON p.product_id = l.product_id "
        "WHERE l.order_id = %s",
        [HUGE_ORDER_ID],
    )[0][0]
    # The product names alone, embedded in the order item, pass DynamoDB's item limit.
    assert name_bytes > DYNAMODB_ITEM_LIMIT

    duplicates = query(target, "SELECT product_id FROM product WHERE sku = %s ORDER BY product_id", [DUPLICATE_SKU])
    assert tuple(product_id for (product_id,) in duplicates) == DUPLICATE_SKU_PRODUCT_IDS
    assert query(target, "SELECT count(*) FROM (SELECT sku FROM product GROUP BY sku HAVING count(*) > 1) d")[0][0] == 1


def test_realistic_skew_and_awkward_values(demo: tuple[DemoDatabase, dict[str, int]]) -> None:
    target, _ = demo

    busiest = query(target, "SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC LIMIT 3")
    assert sorted(customer_id for (customer_id,) in busiest) == sorted(WHALE_CUSTOMER_IDS)
    first_name = query(target, "SELECT first_name FROM customer WHERE customer_id = %s", [EMOJI_CUSTOMER_ID])[0][0]
    assert any(ord(char) > 0xFFFF for char in first_name)  # outside the BMP: needs utf8mb4
    balances = [balance for (balance,) in query(target, "SELECT balance FROM customer")]
    assert any(-balance.as_tuple().exponent >= 25 for balance in balances)
    assert any(balance.adjusted() >= 20 for balance in balances)  # 21+ integer digits
    lifetime = [value for (value,) in query(target, "SELECT lifetime_value FROM customer")]
    assert any(len(value.as_tuple().digits) > 38 for value in lifetime)
    bosses = query(target, "SELECT employee_id FROM employee WHERE reports_to IS NULL")
    assert bosses == [(1,)]
    orphans = query(
        target,
        "SELECT count(*) FROM employee e LEFT JOIN employee m ON m.employee_id = e.reports_to "
        "WHERE e.reports_to IS NOT NULL AND (m.employee_id IS NULL OR m.employee_id >= e.employee_id)",
    )
    assert orphans == [(0,)]


# --- type_trap: read back through the drivers, compared with TYPE_TRAP_ROWS ---


def as_float32(value: float | None) -> float | None:
    # real is float4: compare what float4 can hold, on both sides.
    return None if value is None else struct.unpack("<f", struct.pack("<f", value))[0]


def parse_json(text: str | None) -> Any:
    return None if text is None else json.loads(text, parse_float=Decimal)


def expected_trap_rows(engine: str) -> list[dict[str, Any]]:
    rows = []
    for row in TYPE_TRAP_ROWS:
        row = {**row, "real_value": as_float32(row["real_value"])}
        if engine == "postgres":
            # jsonb stores parsed JSON and prints it normalized: compare values, not text.
            row["jsonb_value"] = parse_json(row["jsonb_value"])
        rows.append(row)
    return rows


def trap_select(engine: str) -> str:
    # Casts where the driver has no exact Python form for the type.
    casts = {
        "postgres": {"money_value": "money_value::numeric", "interval_value": "interval_value::text",
                     "json_value": "json_value::text"},
        "mariadb": {"real_value": "CAST(real_value AS DOUBLE)"},
    }[engine]  # fmt: skip
    columns = ", ".join(f"{casts.get(name, name)} AS {name}" for name in TYPE_TRAP.column_names)
    return f"SELECT {columns} FROM type_trap ORDER BY id"


def read_postgres_traps(target: DemoDatabase) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row
    from psycopg.types.json import set_json_loads

    with connect(target) as conn:
        conn.execute("SET intervalstyle = 'iso_8601'")
        set_json_loads(partial(json.loads, parse_float=Decimal), conn)
        rows = conn.cursor(row_factory=dict_row).execute(trap_select("postgres")).fetchall()
    return [{**row, "real_value": as_float32(row["real_value"])} for row in rows]


def read_mariadb_traps(target: DemoDatabase) -> list[dict[str, Any]]:
    import pymysql.cursors

    conn = connect(target)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(trap_select("mariadb"))
            return [mariadb_trap_row(row) for row in cursor.fetchall()]
    finally:
        conn.close()


def mariadb_trap_row(row: dict[str, Any]) -> dict[str, Any]:
    def when_set(convert: Any, value: Any) -> Any:
        return None if value is None else convert(value)

    return {
        **row,
        "int_array": parse_json(row["int_array"]),
        "text_array": parse_json(row["text_array"]),
        "numeric_array": parse_json(row["numeric_array"]),
        "uuid_value": when_set(uuid.UUID, row["uuid_value"]),
        # TIMESTAMP comes back as naive wall-clock time of the +00:00 session.
        "timestamptz_value": when_set(lambda v: v.replace(tzinfo=UTC), row["timestamptz_value"]),
        "boolean_value": when_set(bool, row["boolean_value"]),
        "real_value": as_float32(row["real_value"]),
    }


@pytest.mark.parametrize("column", TYPE_TRAP.column_names[1:])
def test_type_trap_reads_back_exactly(demo: tuple[DemoDatabase, dict[str, int]], column: str) -> None:
    target, _ = demo
    actual = read_postgres_traps(target) if target.engine == "postgres" else read_mariadb_traps(target)
    expected = expected_trap_rows(target.engine)

    assert [(row["id"], row[column]) for row in actual] == [(row["id"], row[column]) for row in expected]
