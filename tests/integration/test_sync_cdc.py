"""`carve sync` with the change sources that see deletes, on the real servers, into dynalite:
PostgreSQL logical decoding (a wal2json slot) and the MariaDB row-based binlog.

The store of test_sync_watermark, without watermark columns: a full load, then a scripted
sequence of inserts, updates, a child-only change, deletes of a child, of a root and of an
embedded row, key changes (an order moved to another customer, a product's SKU, a customer
renumbered) with a sync after each step. After every step the synced table holds exactly what a
fresh full load holds, key by key, with the exact number of items rewritten and deleted. A
truncate stops the sync and asks for a full load; so do a dropped slot and a purged binlog file.
Stopping a sync (`carve sync --stop`) refuses while another sync holds the lease, else drops the
slot and the saved state; a full load starts the sync again.
Needs the servers' settings that scripts/setup makes (wal_level = logical and wal2json; a binlog
in row format with whole rows and column names).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.devtools.commands import demo_connection
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.sinks.table import TableAddress
from jobs.sync.changes import FullLoadNeededError
from jobs.sync.cycle import SyncCycle
from jobs.sync.follow import stop
from jobs.sync.state import ControlTable, LeaseHeldError
from tests.support.databases import connect, drop_database
from tests.support.sync import Store, digests, new_store
from transforms.errors import SourceError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SCHEMA = """
    CREATE TABLE customer (customer_id int PRIMARY KEY, name varchar(100) NOT NULL, tier varchar(20) NOT NULL);
    CREATE TABLE product (product_id int PRIMARY KEY, sku varchar(20) NOT NULL, name varchar(100) NOT NULL);
    CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int NOT NULL, status varchar(20) NOT NULL);
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


def slot_position(store: Store, slot: str) -> str | None:
    conn = connect(store.target)
    try:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


@pytest.fixture(scope="module", params=("postgres", "mariadb"))
def store(request, spark, dynamodb_endpoint, tmp_path_factory) -> Iterator[Store]:
    engine = request.param
    suffix = uuid.uuid4().hex[:6]
    slot = f"carve_test_{suffix}"
    source = f"{{postgres_logical: {slot}}}" if engine == "postgres" else f"{{mysql_binlog: {1000 + int(suffix, 16)}}}"
    store = new_store(spark, engine, "cdcstore", dynamodb_endpoint, tmp_path_factory.mktemp(f"sync-cdc-{engine}"), suffix,
                      dict.fromkeys(("customer", "product", "orders", "order_line"), source), SCHEMA, FIRST_ROWS)
    try:
        yield store
    finally:
        if engine == "postgres":
            store.execute(f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                          f"WHERE slot_name = '{slot}'")
        drop_database(store.target)


POSTGRES = pytest.mark.parametrize("store", ["postgres"], indirect=True)
MARIADB = pytest.mark.parametrize("store", ["mariadb"], indirect=True)


def followed(store: Store, table: str) -> str:
    return f"public.{table}" if store.engine == "postgres" else table


@POSTGRES
def test_a_table_whose_deletes_lack_a_key_column_is_refused_with_the_alter_table_to_run(aws_spark, store):
    with pytest.raises(SourceError) as refused:
        store.pipeline(aws_spark).execute()  # before reading anything
    assert str(refused.value) == (
        "sync.tables.public.product: a delete or a key change must carry sku (item keys and joins read them), "
        "but the table's replica identity is its primary key. "
        'Run: ALTER TABLE "public"."product" REPLICA IDENTITY FULL')


def test_each_sync_leaves_the_table_equal_to_a_fresh_full_load(aws_spark, store):
    postgres = store.engine == "postgres"
    if postgres:  # what the refusal above asks for
        store.execute("ALTER TABLE product REPLICA IDENTITY FULL; ALTER TABLE orders REPLICA IDENTITY FULL")
    report = store.pipeline(aws_spark).execute()
    assert report.ok, report.error
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    orders = followed(store, "orders")

    def slot_at_saved_position() -> bool:  # the slot moved to where the positions were saved
        if not postgres:
            return True  # a binlog is not consumed
        saved = control.positions(store.mapping.name)[orders].value
        return slot_position(store, saved["slot"]) == saved["lsn"]

    assert slot_at_saved_position()
    assert store.sync(aws_spark).sync["items_rewritten"] == 0
    for step, (sql, (rewritten, deleted)) in STEPS.items():
        store.execute(sql)
        report = store.sync(aws_spark)
        assert report.ok, f"{step}: {report.error}"
        assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark), step
        assert (report.sync["items_rewritten"], report.sync["items_deleted"]) == (rewritten, deleted), (step, report.sync)
        assert slot_at_saved_position(), step
    assert report.sync["changes"][followed(store, "product")] == {"update": 1, "delete": 1}
    assert digests(store.endpoint, store.mapping.target.table) == store.fresh_full_load(aws_spark)


def test_a_cycle_stops_at_its_limit_of_changes_and_the_next_goes_on(aws_spark, store):
    # Six transactions (each statement commits on its own): three orders, each with two lines.
    store.execute("; ".join(f"INSERT INTO orders VALUES ({order}, 4, 'new'); "
                            f"INSERT INTO order_line VALUES ({order}, 1, 2, 1), ({order}, 2, 2, 2)"
                            for order in (20, 21, 22)))
    # The slot counts its begin and commit records too; the binlog counts rows.
    limit = 8 if store.engine == "postgres" else 3
    reports = []
    while not reports or not reports[-1].sync["caught_up"]:
        reports.append(SyncCycle(store.pipeline(aws_spark, name="sync"), max_changes=limit).execute())
        assert reports[-1].ok, reports[-1].error
        assert len(reports) < 6
        if len(reports) == 1:  # stopped after a whole transaction, short of the rest
            assert digests(store.endpoint, store.mapping.target.table) != store.built(aws_spark)
    assert len(reports) >= 2
    assert "more changes wait" in "\n".join(reports[0].summary_lines())
    assert sum(r.sync["items_rewritten"] for r in reports) >= 3
    assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark)


def test_a_truncate_stops_the_sync_until_a_full_load(aws_spark, store):
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    before = control.positions(store.mapping.name)
    store.execute("TRUNCATE order_line")
    with pytest.raises(FullLoadNeededError, match=r"order_line was truncated .*Run a full load \(`carve run`\)"):
        store.sync(aws_spark)
    assert control.positions(store.mapping.name) == before
    assert store.pipeline(aws_spark).execute().ok
    assert store.sync(aws_spark).ok
    assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark)


CRASH = """
import os, sys
print("crash test pid", os.getpid(), flush=True)
from jobs.sync import logical
from tests.integration.test_sync_watermark import crash_cycle
logical.committed = lambda *args, **kwargs: os._exit(9)  # killed after saving the positions, before the slot moves
crash_cycle(*sys.argv[1:])
"""


@POSTGRES
def test_a_sync_killed_before_its_slot_moves_applies_the_same_changes_again(aws_spark, store):
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    store.execute("UPDATE product SET name = 'Kettle II' WHERE product_id = 1; DELETE FROM orders WHERE order_id = 13")
    env = {**os.environ, **LOCAL_AWS_ENV, "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run([sys.executable, "-c", CRASH, store.engine, store.target.database, str(store.mapping_file),
                              store.endpoint, str(store.tmp / "crashed")], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert crashed.returncode == 9, crashed.stdout[-2000:] + crashed.stderr[-2000:]
    saved = control.positions(store.mapping.name)["public.orders"].value
    behind = slot_position(store, saved["slot"])
    assert behind != saved["lsn"]  # the positions moved, the slot did not: its changes are still there
    expected = store.built(aws_spark)
    assert digests(store.endpoint, store.mapping.target.table) == expected  # the writes had landed
    lease = control.lease(store.mapping.name)
    assert lease is not None
    time.sleep(max(0.0, lease.expires_at - time.time()) + 1)
    report = store.sync(aws_spark)  # takes the stale lease over, peeks from where the slot still is
    assert report.ok, report.error
    assert (report.sync["items_rewritten"], report.sync["items_deleted"]) == (1, 1)  # product 1, order 13 again
    assert digests(store.endpoint, store.mapping.target.table) == expected
    saved = control.positions(store.mapping.name)["public.orders"].value
    assert slot_position(store, saved["slot"]) == saved["lsn"]


@POSTGRES
def test_a_dropped_slot_asks_for_a_full_load(aws_spark, store):
    slot = store.mapping.sync.tables["public.orders"].postgres_logical
    store.execute(f"SELECT pg_drop_replication_slot('{slot}')")
    with pytest.raises(FullLoadNeededError, match=f"replication slot {slot} is not on the server any more"):
        store.sync(aws_spark)
    assert store.pipeline(aws_spark).execute().ok  # creates it again
    assert slot_position(store, slot) is not None


@MARIADB
def test_a_purged_binlog_file_asks_for_a_full_load(aws_spark, store):
    saved = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1")).positions(
        store.mapping.name)["orders"].value
    store.execute("FLUSH BINARY LOGS")
    conn = connect(store.target)
    try:
        cursor = conn.cursor()
        cursor.execute("SHOW MASTER STATUS")
        current = cursor.fetchone()[0]
        cursor.execute(f"PURGE BINARY LOGS TO '{current}'")
    finally:
        conn.close()
    with pytest.raises(FullLoadNeededError, match=f"binlog file {saved['file']} is not on the server any more"):
        store.sync(aws_spark)
    assert store.pipeline(aws_spark).execute().ok
    assert store.sync(aws_spark).ok


def test_a_stopped_sync_lets_go_of_its_slot_and_state_and_a_full_load_starts_it_again(aws_spark, store):
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    name = store.mapping.name
    slot = store.mapping.sync.tables[followed(store, "orders")].postgres_logical if store.engine == "postgres" else None
    assert control.positions(name)
    said: list[str] = []

    def stop_syncing() -> None:
        stop(store.mapping, demo_connection(store.target), aws_spark, store.endpoint, "us-east-1", said.append)

    other = control.acquire(name, 60, owner="another sync")
    with pytest.raises(LeaseHeldError, match=f"mapping '{name}' is leased by another sync"):
        stop_syncing()
    assert said == [] and control.positions(name)  # nothing was let go
    if slot:
        assert slot_position(store, slot) is not None
    control.release(other)

    stop_syncing()
    removed = f"sync state of mapping '{name}' removed from {control.address.table}"
    if slot:
        assert said == [f"replication slot {slot}: dropped (the server no longer keeps WAL for it)", removed]
        assert slot_position(store, slot) is None
    else:
        assert said == [removed]  # a binlog position keeps nothing on the server
    assert control.positions(name) == {} and control.lease(name) is None
    with pytest.raises(FullLoadNeededError, match="no saved position for"):
        store.sync(aws_spark)

    said.clear()
    stop_syncing()  # again: nothing left to let go
    assert said == ([f"replication slot {slot}: not on the server (nothing to drop)"] if slot else []) + [removed]

    assert store.pipeline(aws_spark).execute().ok  # the full load starts the sync again
    assert store.sync(aws_spark).ok
    if slot:
        assert slot_position(store, slot) is not None
