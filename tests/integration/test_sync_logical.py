"""`carve sync` with PostgreSQL logical decoding (a wal2json slot) on the real server, into dynalite.

The store of test_sync_watermark, without watermark columns: a full load creates the slot, then a
scripted sequence of inserts, updates, a child-only change, deletes of a child, of a root and of
an embedded row, key changes (an order moved to another customer, a product's SKU, a customer
renumbered) with a sync after each step. After every step the synced table holds exactly what a
fresh full load holds, key by key, and the slot has moved to the saved position. A truncate stops
the sync and asks for a full load; a dropped slot likewise. Needs `wal_level = logical` and
wal2json, which scripts/setup provides.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator

import pytest

from jobs.devtools.demo_data import DemoDatabase
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.sinks.table import TableAddress
from jobs.sync.changes import FullLoadNeededError
from jobs.sync.state import ControlTable
from tests.support.databases import connect, create_database, drop_database
from tests.support.sync import Store, digests
from transforms.errors import SourceError
from transforms.mapping import load_mapping_text

pytestmark = pytest.mark.integration

SCHEMA = """
    CREATE TABLE customer (customer_id int PRIMARY KEY, name text NOT NULL, tier text NOT NULL);
    CREATE TABLE product (product_id int PRIMARY KEY, sku text NOT NULL, name text NOT NULL);
    CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL);
    CREATE TABLE order_line (order_id int, line_no int, product_id int NOT NULL, qty int NOT NULL,
                             PRIMARY KEY (order_id, line_no));
"""

FIRST_ROWS = """
    INSERT INTO customer VALUES (1, 'Ada', 'gold'), (2, 'Bo', 'basic'), (3, 'Cy', 'closed');
    INSERT INTO product VALUES (1, 'P-1', 'Kettle'), (2, 'P-2', 'Teapot'), (3, 'P-3', 'Cup');
    INSERT INTO orders VALUES (10, 1, 'paid'), (11, 1, 'new'), (12, 2, 'paid');
    INSERT INTO order_line VALUES (10, 1, 1, 1), (10, 2, 2, 2), (11, 1, 2, 1), (12, 1, 3, 6);
"""

# Each step with what it must rewrite and delete, as (items rewritten, items deleted).
STEPS = {
    "inserts: a customer and an order with its lines; an order's status updated": ("""
        INSERT INTO customer VALUES (4, 'Di', 'basic');
        INSERT INTO orders VALUES (13, 4, 'new');
        INSERT INTO order_line VALUES (13, 1, 1, 3), (13, 2, 3, 1);
        UPDATE orders SET status = 'shipped' WHERE order_id = 10
    """, (3, 0)),
    "a child-only change and a product rename embedded in two orders": ("""
        UPDATE order_line SET qty = 9 WHERE order_id = 12;
        UPDATE product SET name = 'Teapot XL' WHERE product_id = 2
    """, (4, 0)),  # order 12; product 2 and orders 10, 11
    "a child deleted, a customer the filter now leaves out": ("""
        DELETE FROM order_line WHERE order_id = 10 AND line_no = 2;
        UPDATE customer SET tier = 'closed' WHERE customer_id = 2
    """, (1, 1)),
    "a root deleted with its lines; an order moved to another customer (its key changes)": ("""
        DELETE FROM order_line WHERE order_id = 12;
        DELETE FROM orders WHERE order_id = 12;
        UPDATE orders SET customer_id = 4 WHERE order_id = 11
    """, (1, 2)),
    "a product's SKU (its key) changed, a customer renumbered, an embedded product deleted": ("""
        UPDATE product SET sku = 'P-1b' WHERE product_id = 1;
        UPDATE customer SET customer_id = 5 WHERE customer_id = 1;
        UPDATE order_line SET product_id = 1 WHERE order_id = 13 AND line_no = 2;
        DELETE FROM product WHERE product_id = 3
    """, (4, 3)),  # product 1, orders 10 and 13, customer 5; P-1, P-3, customer 1
}


def mapping_text(table: str, control: str, slot: str) -> str:
    return textwrap.dedent(f"""
        version: 1
        name: lgstore
        source: {{connection: lgstore}}
        target: {{table: {table}, key: {{partition: PK, sort: SK}}}}
        entities:
          customer:
            from: public.customer
            filter: "tier <> 'closed'"
            key: {{PK: "CUSTOMER#{{customer_id}}", SK: PROFILE}}
            attributes: {{name: name, tier: tier}}
          order:
            from: public.orders
            key: {{PK: "CUSTOMER#{{customer_id}}", SK: "ORDER#{{order_id}}"}}
            attributes:
              status: status
              lines:
                from: public.order_line
                join: {{order_id: order_id}}
                order_by: line_no
                many:
                  qty: qty
                  product: {{from: public.product, join: {{product_id: product_id}}, one: {{sku: sku, name: name}}}}
          product:
            from: public.product
            key: {{PK: "PRODUCT#{{sku}}", SK: DETAILS}}
            attributes: {{name: name}}
        sync:
          control_table: {control}
          lease_seconds: 10
          tables:
            public.customer: {{postgres_logical: {slot}}}
            public.product: {{postgres_logical: {slot}}}
            public.orders: {{postgres_logical: {slot}}}
            public.order_line: {{postgres_logical: {slot}}}
    """)


def slot_position(store: Store, slot: str) -> str | None:
    conn = connect(store.target)
    try:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def store(spark, dynamodb_endpoint, tmp_path_factory) -> Iterator[Store]:
    spark.sparkContext.environment.update({name: os.environ[name] for name in LOCAL_AWS_ENV})
    target = DemoDatabase("postgres", database=f"carve_sync_lg_{uuid.uuid4().hex[:8]}")
    create_database(target)
    tmp = tmp_path_factory.mktemp("sync-logical")
    suffix = uuid.uuid4().hex[:6]
    slot = f"carve_test_{suffix}"
    mapping_file = tmp / "lgstore.yaml"
    mapping_file.write_text(mapping_text(f"LgStore-{suffix}", f"carve-sync-{suffix}", slot))
    store = Store("postgres", target, dynamodb_endpoint, load_mapping_text(mapping_file.read_text(), str(mapping_file)),
                  mapping_file, tmp)
    store.execute(SCHEMA)
    store.execute(FIRST_ROWS)
    try:
        yield store
    finally:
        store.execute(f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}'")
        drop_database(target)


def test_a_table_whose_deletes_lack_a_key_column_is_refused_with_the_alter_table_to_run(aws_spark, store):
    with pytest.raises(SourceError) as refused:
        store.pipeline(aws_spark).execute()  # before reading anything
    assert str(refused.value) == (
        "sync.tables.public.product: a delete or a key change must carry sku (item keys and joins read them), "
        "but the table's replica identity is its primary key. "
        'Run: ALTER TABLE "public"."product" REPLICA IDENTITY FULL')


def test_each_sync_leaves_the_table_equal_to_a_fresh_full_load(aws_spark, store):
    store.execute("ALTER TABLE product REPLICA IDENTITY FULL; ALTER TABLE orders REPLICA IDENTITY FULL")
    report = store.pipeline(aws_spark).execute()
    assert report.ok, report.error
    slot = store.mapping.sync.tables["public.orders"].postgres_logical
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    saved = control.positions(store.mapping.name)["public.orders"].value
    assert slot_position(store, slot) == saved["lsn"]  # the slot moved to where the full load's changes start
    assert store.sync(aws_spark).sync["items_rewritten"] == 0
    for step, (sql, (rewritten, deleted)) in STEPS.items():
        store.execute(sql)
        report = store.sync(aws_spark)
        assert report.ok, f"{step}: {report.error}"
        assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark), step
        assert (report.sync["items_rewritten"], report.sync["items_deleted"]) == (rewritten, deleted), (step, report.sync)
        saved = control.positions(store.mapping.name)["public.orders"].value
        assert slot_position(store, slot) == saved["lsn"], step
    assert report.sync["changes"]["public.product"] == {"update": 1, "delete": 1}
    assert digests(store.endpoint, store.mapping.target.table) == store.fresh_full_load(aws_spark)


def test_a_truncate_stops_the_sync_until_a_full_load(aws_spark, store):
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    before = control.positions(store.mapping.name)
    store.execute("TRUNCATE order_line")
    with pytest.raises(FullLoadNeededError, match=r"public.order_line was truncated .*Run a full load \(`carve run`\)"):
        store.sync(aws_spark)
    assert control.positions(store.mapping.name) == before
    assert store.pipeline(aws_spark).execute().ok
    assert store.sync(aws_spark).ok
    assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark)


def test_a_dropped_slot_asks_for_a_full_load(aws_spark, store):
    slot = store.mapping.sync.tables["public.orders"].postgres_logical
    store.execute(f"SELECT pg_drop_replication_slot('{slot}')")
    with pytest.raises(FullLoadNeededError, match=f"replication slot {slot} is not on the server any more"):
        store.sync(aws_spark)
    assert store.pipeline(aws_spark).execute().ok  # creates it again
    assert slot_position(store, slot) is not None
