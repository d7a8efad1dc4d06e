#!/usr/bin/env python
"""Benchmark: a `carve sync` cycle against the full load it follows, on the demo schema.

    scripts/with-dynalite .venv/bin/python scripts/sync_benchmark.py [--scale 15] [--engine postgres]
        [--source watermark|postgres_logical]

Creates the demo database at the scale and runs the full load of the demo mapping with a sync
section (no access patterns: both sides do the same work), then changes the source: 1% of the
order lines (a quantity), 0.1% of the products (a name, embedded in every order line of them)
and, with postgres_logical, 0.5% of the orders deleted with their lines and payments. Then one
sync cycle in the same process, and a second with nothing to do, as the later cycles of
`carve sync --follow` run (the mapping compiled once): the cycle's fixed cost. Last, the whole
table is reconciled against a fresh build of every item: the synced table must be exactly what
a full load would write.

--source watermark (the default): every table the mapping reads gets a watermark column
(carve_version, indexed); the database is kept between runs. A watermark cannot see deletes, so
no orders are deleted. --source postgres_logical: a database of its own, made afresh and dropped
at the end (the deletes change it), with REPLICA IDENTITY FULL where the item keys and joins
need more than the primary key; the replication slot is dropped at the end.

Prints per side the source rows read, the items written and deleted, and the seconds per stage.
Expected: rows read and items written in proportion to the change, not to the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TABLES = ("customer", "address", "orders", "order_line", "product", "payment", "review")
CHANGES = {
    "order_line": "UPDATE order_line SET quantity = quantity + 1{version} WHERE mod(order_id * 7 + line_no, 100) = 0",
    "product": "UPDATE product SET name = concat(name, ' (new)'){version} WHERE mod(product_id, 1000) = 0",
}
DELETED_ORDERS = "SELECT order_id FROM orders WHERE mod(order_id, 200) = 0"  # 0.5%
DELETES = {  # children first: the demo declares its foreign keys
    "order_line (of deleted orders)": f"DELETE FROM order_line WHERE order_id IN ({DELETED_ORDERS})",
    "payment (of deleted orders)": f"DELETE FROM payment WHERE order_id IN ({DELETED_ORDERS})",
    "orders (deleted)": f"DELETE FROM orders WHERE order_id IN ({DELETED_ORDERS})",
}
FULL_IDENTITY = ("orders", "product", "payment", "review")  # keys or joins on columns outside the primary key


def prepare(target, source: str) -> None:
    """The watermark column on every table the demo mapping reads, all at 0, and its index; or the
    replica identity logical decoding needs."""
    from tests.support.databases import connect

    conn = connect(target)
    try:
        cursor = conn.cursor()
        if source == "postgres_logical":
            for table in FULL_IDENTITY:
                cursor.execute(f"ALTER TABLE {table} REPLICA IDENTITY FULL")
            return
        for table in TABLES:
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS carve_version bigint NOT NULL DEFAULT 0")
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {table}_carve_version ON {table} (carve_version)")
            cursor.execute(f"UPDATE {table} SET carve_version = 0 WHERE carve_version <> 0")
    finally:
        conn.close()


def change(target, source: str) -> dict[str, int]:
    from tests.support.databases import connect

    conn = connect(target)
    try:
        cursor = conn.cursor()
        changed = {}
        version = ", carve_version = 1" if source == "watermark" else ""
        for table, sql in CHANGES.items():
            cursor.execute(sql.format(version=version))
            changed[table] = cursor.rowcount
        if source == "postgres_logical":
            for what, sql in DELETES.items():
                cursor.execute(sql)
                changed[what] = cursor.rowcount
        return changed
    finally:
        conn.close()


def drop_slot(target, slot: str) -> None:
    from tests.support.databases import connect

    conn = connect(target)
    try:
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    finally:
        conn.close()


def mapping_file(engine: str, folder: Path, table: str, control: str, source: str, slot: str) -> Path:
    from jobs.cli import DEMO_MAPPINGS, packaged_mapping

    text = Path(packaged_mapping(DEMO_MAPPINGS[engine])).read_text()
    text = text[:text.index("\npatterns:")].rstrip() + "\n"
    text = text.replace("table: CarveDemo", f"table: {table}").replace("max_rejected_share: 0.01", "max_rejected_share: 0.05")
    schema = "public." if engine == "postgres" else ""
    follow = "{watermark: carve_version}" if source == "watermark" else f"{{postgres_logical: {slot}}}"
    tables = "\n".join(f"    {schema}{t}: {follow}" for t in TABLES)
    text += f"\nsync:\n  control_table: {control}\n  tables:\n{tables}\n"
    path = folder / "mapping.yaml"
    path.write_text(text)
    return path


def side(report: dict) -> dict:
    stages = {name: s["seconds"] for name, s in report["stages"].items()}
    return {
        "source_rows_read": sum((report.get("source_rows") or {}).values()),
        "items_written": report["items_written"],
        "items_deleted": (report.get("sync") or {}).get("items_deleted", 0),
        "seconds": report["seconds"],
        "stages": stages,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=15.0)
    parser.add_argument("--engine", choices=["postgres", "mariadb"], default="postgres")
    parser.add_argument("--source", choices=["watermark", "postgres_logical"], default="watermark")
    parser.add_argument("--endpoint-url", default=os.environ.get("CARVE_ENDPOINT_URL"))
    args = parser.parse_args()
    if not args.endpoint_url:
        parser.error("no DynamoDB endpoint: run under scripts/with-dynalite or give --endpoint-url")
    if args.source == "postgres_logical" and args.engine != "postgres":
        parser.error("postgres_logical follows PostgreSQL only")


    from jobs.devtools.demo_data import DemoDatabase, create_demo_database

    run_id = uuid.uuid4().hex[:6]
    scale = str(args.scale).replace(".", "_")
    logical = args.source == "postgres_logical"
    target = DemoDatabase(args.engine, database=f"carve_syncbench_{'lg_' + run_id if logical else scale}")
    create_demo_database(target, scale=args.scale)
    slot = f"carve_syncbench_{run_id}"
    try:
        return measure(args, target, run_id, slot)
    finally:
        if logical:
            from tests.support.databases import drop_database

            drop_slot(target, slot)
            drop_database(target)


def measure(args: argparse.Namespace, target, run_id: str, slot: str) -> int:
    from rich.console import Console

    from jobs.devtools.commands import demo_connection
    from jobs.pipeline import Pipeline, RunOptions
    from jobs.runtimes.local import LocalRuntime
    from jobs.sync.cycle import SyncCycle
    from transforms.mapping import load_mapping

    prepare(target, args.source)
    folder = REPO / "reports" / f"syncbench-{args.engine}-{run_id}"
    folder.mkdir(parents=True)
    path = mapping_file(args.engine, folder, f"CarveSyncBench-{run_id}", f"carve-syncbench-{run_id}", args.source, slot)
    mapping = load_mapping(path)
    conn = demo_connection(target)
    runtime = LocalRuntime()
    spark = runtime.spark("carve-sync-bench")
    console = Console(stderr=True, soft_wrap=True)

    def pipeline(name: str) -> Pipeline:
        return Pipeline(spark, mapping, str(path), conn, RunOptions(folder / name, endpoint_url=args.endpoint_url),
                        console, runtime)

    full = pipeline("full-load").execute()
    if not full.ok:
        print(f"full load failed: {full.error}", file=sys.stderr)
        return 1
    changed = change(target, args.source)
    sync = SyncCycle(pipeline("sync")).execute()
    idle = SyncCycle(pipeline("sync-idle"), compile_mapping=False).execute()  # as --follow's later cycles
    verify = pipeline("verify")
    verify.report.mode = "reconcile"
    proof = verify.execute(write=False).reconcile
    figures = {
        "engine": args.engine,
        "scale": args.scale,
        "change_source": args.source,
        "source_rows_changed": changed,
        "full_load": side(full.as_dict()),
        "sync": side(sync.as_dict()) | {"status": sync.status, "items_rewritten": sync.sync["items_rewritten"]},
        "sync_with_nothing_to_do": side(idle.as_dict()),
        "table_against_a_fresh_build": {"missing": proof.missing, "mismatched": proof.mismatched, "extra": proof.extra},
        "full_load_seconds_per_sync_second": round(full.seconds / sync.seconds, 1),
        "reports": str(folder),
    }
    print(json.dumps(figures, indent=2))
    ok = sync.ok and proof.ok
    return 0 if ok else 1


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    print(f"sync benchmark: {time.monotonic() - started:,.0f} s", file=sys.stderr)
    sys.exit(status)
