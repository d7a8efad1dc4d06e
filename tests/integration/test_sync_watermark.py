"""`carve sync` with watermarks on the real PostgreSQL and MariaDB, into dynalite.

A small store whose tables carry a watermark (a version counter; the customers a timestamp):
a full load, then a scripted sequence of inserts, updates, a child-only change, a product rename
and a row the entity's filter newly leaves out, with a sync after each step. After every step
the synced table holds exactly what a fresh full load into a second table holds (item digests,
key by key). A delete, which a watermark cannot see, is caught by --verify full. A sync killed
after writing and before saving its position, run again, ends at the same table.
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
from rich.console import Console

from jobs.devtools.commands import demo_connection
from jobs.devtools.demo_data import DemoDatabase
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.pipeline import Pipeline, RunOptions
from jobs.sinks.table import TableAddress
from jobs.sync.cycle import SyncCycle
from jobs.sync.follow import status_lines
from jobs.sync.state import ControlTable, LeaseHeldError
from tests.support.databases import drop_database
from tests.support.dynamodb import dynamodb_client
from tests.support.sync import Store, digests, new_store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SCHEMA = {
    "postgres": """
        CREATE TABLE customer (customer_id int PRIMARY KEY, name text NOT NULL, tier text NOT NULL,
                               changed_at timestamptz NOT NULL);
        CREATE TABLE product (product_id int PRIMARY KEY, sku text NOT NULL, name text NOT NULL, version bigint NOT NULL);
        CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                             version bigint NOT NULL);
        CREATE TABLE order_line (order_id int, line_no int, product_id int NOT NULL, qty int NOT NULL,
                                 version bigint NOT NULL, PRIMARY KEY (order_id, line_no));
    """,
    "mariadb": """
        CREATE TABLE customer (customer_id int PRIMARY KEY, name varchar(100) NOT NULL, tier varchar(20) NOT NULL,
                               changed_at datetime(6) NOT NULL);
        CREATE TABLE product (product_id int PRIMARY KEY, sku varchar(20) NOT NULL, name varchar(100) NOT NULL,
                              version bigint NOT NULL);
        CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int NOT NULL, status varchar(20) NOT NULL,
                             version bigint NOT NULL);
        CREATE TABLE order_line (order_id int, line_no int, product_id int NOT NULL, qty int NOT NULL,
                                 version bigint NOT NULL, PRIMARY KEY (order_id, line_no));
    """,
}

FIRST_ROWS = """
    INSERT INTO customer VALUES (1, 'Ada', 'gold', '2026-01-01 10:00:00.000001'), (2, 'Bo', 'basic', '2026-01-01 10:00:00.000002'),
                                (3, 'Cy', 'closed', '2026-01-01 10:00:00.000003');
    INSERT INTO product VALUES (1, 'P-1', 'Kettle', 1), (2, 'P-2', 'Teapot', 1), (3, 'P-3', 'Cup', 1);
    INSERT INTO orders VALUES (10, 1, 'paid', 1), (11, 1, 'new', 1), (12, 2, 'paid', 1);
    INSERT INTO order_line VALUES (10, 1, 1, 1, 1), (10, 2, 2, 2, 1), (11, 1, 2, 1, 1), (12, 1, 3, 6, 1);
"""

# Each step as the application would write it: every changed row gets a new watermark.
STEPS = {
    "an insert of a customer and an order with its lines; an update of an order's status": """
        INSERT INTO customer VALUES (4, 'Di', 'basic', '2026-01-02 09:00:00.5');
        INSERT INTO orders VALUES (13, 4, 'new', 2);
        INSERT INTO order_line VALUES (13, 1, 1, 3, 2), (13, 2, 3, 1, 2);
        UPDATE orders SET status = 'shipped', version = 3 WHERE order_id = 10
    """,
    "a child-only change (one line's quantity); a product rename, embedded in two orders": """
        UPDATE order_line SET qty = 9, version = 4 WHERE order_id = 12;
        UPDATE product SET name = 'Teapot XL', version = 5 WHERE product_id = 2
    """,
    "a customer the filter now leaves out; a line moved to another product and a new line": """
        UPDATE customer SET tier = 'closed', changed_at = '2026-01-03 08:00:00' WHERE customer_id = 2;
        UPDATE order_line SET product_id = 3, version = 6 WHERE order_id = 11 AND line_no = 1;
        INSERT INTO order_line VALUES (11, 2, 1, 4, 6);
    """,
}


@pytest.fixture(scope="module", params=("postgres", "mariadb"))
def store(request, spark, dynamodb_endpoint, tmp_path_factory) -> Iterator[Store]:
    engine = request.param
    store = new_store(spark, engine, "wmstore", dynamodb_endpoint, tmp_path_factory.mktemp(f"sync-{engine}"),
                      uuid.uuid4().hex[:6], {"customer": "{watermark: changed_at}", "product": "{watermark: version}",
                                             "orders": "{watermark: version}", "order_line": "{watermark: version}"},
                      SCHEMA[engine], FIRST_ROWS)
    report = store.pipeline(spark).execute()
    assert report.ok, report.error
    yield store
    drop_database(store.target)


def test_each_sync_leaves_the_table_equal_to_a_fresh_full_load(aws_spark, store):
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    assert store.sync(aws_spark).sync["items_rewritten"] == 0  # nothing changed since the full load
    for step, sql in STEPS.items():
        store.execute(sql)
        report = store.sync(aws_spark)
        assert report.ok, f"{step}: {report.error}"
        assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark), step
        if step.startswith("a child-only change"):
            # order 12 (its line), the product and every order holding a line of it: 10, 11 and none else
            assert report.sync["items_rewritten"] == 4, report.sync
            assert report.sync["changes"][f"{'public.' if store.engine == 'postgres' else ''}product"] == {"upsert": 1}
        if step.startswith("a customer the filter"):
            assert report.sync["items_deleted"] == 1
    assert digests(store.endpoint, store.mapping.target.table) == store.fresh_full_load(aws_spark)
    last = control.last_cycle(store.mapping.name)
    assert last["status"] == "ok" and last["items_rewritten"] == 1  # order 11, rebuilt from its lines; customer 2 gone
    assert control.lease(store.mapping.name) is None  # released
    status = "\n".join(status_lines(store.mapping, store.endpoint, "us-east-1"))
    assert "lease: free" in status and "in step with the source as it was at" in status
    assert "order_line: watermark upto 6 (moved there" in status
    assert "last cycle: ok at" in status and "1 items rewritten, 1 deleted" in status


# What follows depends on no engine: PostgreSQL only, for the suite's time.
ONE_ENGINE = pytest.mark.parametrize("store", ["postgres"], indirect=True)


@ONE_ENGINE
def test_a_delete_is_not_seen_by_a_watermark_and_verify_full_says_so(aws_spark, store):
    store.execute("DELETE FROM order_line WHERE order_id = 13; DELETE FROM orders WHERE order_id = 13")
    report = store.sync(aws_spark, verify="full")
    assert report.status == "failed"
    assert report.sync["verify_full"]["extra"] == 1, report.sync
    assert "a watermark does not see deletes" in report.error
    # What the person who reads that does: delete the item the source no longer has.
    dynamodb_client(store.endpoint).delete_item(TableName=store.mapping.target.table,
                                                Key={"PK": {"S": "CUSTOMER#4"}, "SK": {"S": "ORDER#13"}})


@ONE_ENGINE
def test_a_second_sync_is_told_who_holds_the_lease(aws_spark, store):
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    lease = control.acquire(store.mapping.name, 60, owner="the other sync (host x pid 1)")
    try:
        with pytest.raises(LeaseHeldError, match=r"leased by the other sync \(host x pid 1\)"):
            store.sync(aws_spark)
    finally:
        control.release(lease)


CRASH = """
import os, sys
print("crash test pid", os.getpid(), flush=True)
from jobs.sync.state import ControlTable
from tests.integration.test_sync_watermark import crash_cycle
ControlTable.advance = lambda *args, **kwargs: os._exit(9)  # killed after the writes, before any position moves
crash_cycle(*sys.argv[1:])
"""


def crashed_pid(done: subprocess.CompletedProcess) -> int:
    return int(done.stdout.split("crash test pid ", 1)[1].split()[0])


def crash_cycle(engine: str, database: str, mapping_file: str, endpoint: str, report_dir: str) -> None:
    from jobs.runtimes.local import LocalRuntime
    from transforms.mapping import load_mapping

    pipeline = Pipeline(LocalRuntime().spark("carve-crash-test", short=True), load_mapping(mapping_file), mapping_file,
                        demo_connection(DemoDatabase(engine, database=database)),
                        RunOptions(Path(report_dir), endpoint_url=endpoint), Console())
    SyncCycle(pipeline).execute()
    sys.exit(0)  # not reached: the position is never saved


@ONE_ENGINE
def test_a_sync_killed_before_saving_its_position_is_applied_again_to_the_same_table(aws_spark, store):
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    before = control.positions(store.mapping.name)
    store.execute("UPDATE product SET name = 'Cup II', version = 7 WHERE product_id = 3; "
                  "UPDATE orders SET status = 'paid', version = 7 WHERE order_id = 11")
    env = {**os.environ, **LOCAL_AWS_ENV, "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run([sys.executable, "-c", CRASH, store.engine, store.target.database, str(store.mapping_file),
                              store.endpoint, str(store.tmp / "crashed")], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert crashed.returncode == 9, crashed.stdout[-2000:] + crashed.stderr[-2000:]
    assert not (store.tmp / "crashed" / "report.json").exists()  # it died in the cycle: no report
    assert control.positions(store.mapping.name) == before
    table_after_crash = digests(store.endpoint, store.mapping.target.table)
    expected = store.built(aws_spark)
    assert table_after_crash == expected  # the writes had landed
    # The dead sync's lease is still there (never released); whether it has expired yet depends on
    # how slow this machine is, so the refusal while it holds is test_a_second_sync_is_told_....
    lease = control.lease(store.mapping.name)
    assert lease is not None and lease.owner.endswith(f"pid {crashed_pid(crashed)}")
    time.sleep(max(0.0, lease.expires_at - time.time()) + 1)
    report = store.sync(aws_spark)  # takes the stale lease over
    assert report.ok, report.error
    assert report.sync["items_rewritten"] == 3  # the same changes applied again: product 3, orders 11 and 12
    assert digests(store.endpoint, store.mapping.target.table) == expected
    assert control.positions(store.mapping.name) != before


@ONE_ENGINE
def test_a_cycle_stops_at_its_limit_of_rows_with_every_row_of_the_last_value(aws_spark, store):
    # Three orders; five lines, the two of order 20 written by one statement with one version.
    store.execute("INSERT INTO orders VALUES (20, 4, 'new', 20), (21, 4, 'new', 21), (22, 4, 'new', 22); "
                  "INSERT INTO order_line VALUES (20, 1, 2, 1, 20), (20, 2, 2, 2, 20), (21, 1, 2, 1, 21), "
                  "(21, 2, 1, 1, 22), (22, 1, 3, 1, 23)")
    reports = []
    while not reports or not reports[-1].sync["caught_up"]:
        reports.append(SyncCycle(store.pipeline(aws_spark, name="sync"), max_changes=2).execute())
        assert reports[-1].ok, reports[-1].error
        assert len(reports) < 5
        if len(reports) == 1:  # orders up to 21, then the room left reaches one value: both lines of order 20
            assert digests(store.endpoint, store.mapping.target.table) != store.built(aws_spark)
    moved = [(r.sync["positions_after"]["public.orders"]["upto"], r.sync["positions_after"]["public.order_line"]["upto"])
             for r in reports]
    assert moved == [("21", "20"), ("22", "21"), ("22", "23")]
    assert [r.sync["changes"]["public.order_line"] for r in reports] == [{"upsert": 2}, {"upsert": 1}, {"upsert": 2}]
    assert "more changes wait" in "\n".join(reports[0].summary_lines())
    assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark)
