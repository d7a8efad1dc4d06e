#!/usr/bin/env python
"""Benchmark: a `carve sync` cycle against the full load it follows, on the demo schema.

    scripts/with-dynalite .venv/bin/python scripts/sync_benchmark.py [--scale 15] [--engine postgres]

Creates the demo database at the scale (kept between runs), gives every table the mapping reads
a watermark column (carve_version, indexed), runs the full load of the demo mapping with a sync
section (no access patterns: both sides do the same work), then changes the source: 1% of the
order lines (a quantity) and 0.1% of the products (a name, embedded in every order line of
them), and runs one sync cycle in the same process, and a second with nothing to do, as the
later cycles of `carve sync --follow` run (the mapping compiled once): the cycle's fixed cost. Last, the whole table is reconciled against a fresh
build of every item: the synced table must be exactly what a full load would write.

Prints per side the source rows read, the items written and deleted, and the seconds per stage.
Expected: rows read and items written in proportion to the change, not to the table.
The 0.5% of orders deleted that the issue's benchmark asks for is not applied: a watermark
cannot see deletes (the logical-decoding change source, which can, is not built yet).
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
    "order_line": "UPDATE order_line SET quantity = quantity + 1, carve_version = 1 WHERE mod(order_id * 7 + line_no, 100) = 0",
    "product": "UPDATE product SET name = concat(name, ' (new)'), carve_version = 1 WHERE mod(product_id, 1000) = 0",
}


def prepare(target) -> None:
    """The watermark column on every table the demo mapping reads, all at 0, and its index."""
    from tests.support.databases import connect

    conn = connect(target)
    try:
        cursor = conn.cursor()
        for table in TABLES:
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS carve_version bigint NOT NULL DEFAULT 0")
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {table}_carve_version ON {table} (carve_version)")
            cursor.execute(f"UPDATE {table} SET carve_version = 0 WHERE carve_version <> 0")
    finally:
        conn.close()


def change(target) -> dict[str, int]:
    from tests.support.databases import connect

    conn = connect(target)
    try:
        cursor = conn.cursor()
        changed = {}
        for table, sql in CHANGES.items():
            cursor.execute(sql)
            changed[table] = cursor.rowcount
        return changed
    finally:
        conn.close()


def mapping_file(engine: str, folder: Path, table: str, control: str) -> Path:
    from jobs.cli import DEMO_MAPPINGS, packaged_mapping

    text = Path(packaged_mapping(DEMO_MAPPINGS[engine])).read_text()
    text = text[:text.index("\npatterns:")].rstrip() + "\n"
    text = text.replace("table: CarveDemo", f"table: {table}").replace("max_rejected_share: 0.01", "max_rejected_share: 0.05")
    schema = "public." if engine == "postgres" else ""
    tables = "\n".join(f"    {schema}{t}: {{watermark: carve_version}}" for t in TABLES)
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
    parser.add_argument("--endpoint-url", default=os.environ.get("CARVE_ENDPOINT_URL"))
    args = parser.parse_args()
    if not args.endpoint_url:
        parser.error("no DynamoDB endpoint: run under scripts/with-dynalite or give --endpoint-url")

    from rich.console import Console

    from jobs.devtools.commands import demo_connection
    from jobs.devtools.demo_data import DemoDatabase, create_demo_database
    from jobs.pipeline import Pipeline, RunOptions
    from jobs.runtimes.local import LocalRuntime
    from jobs.sync.cycle import SyncCycle
    from transforms.mapping import load_mapping

    target = DemoDatabase(args.engine, database=f"carve_syncbench_{str(args.scale).replace('.', '_')}")
    create_demo_database(target, scale=args.scale)
    prepare(target)
    run_id = uuid.uuid4().hex[:6]
    folder = REPO / "reports" / f"syncbench-{args.engine}-{run_id}"
    folder.mkdir(parents=True)
    path = mapping_file(args.engine, folder, f"CarveSyncBench-{run_id}", f"carve-syncbench-{run_id}")
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
    changed = change(target)
    sync = SyncCycle(pipeline("sync")).execute()
    idle = SyncCycle(pipeline("sync-idle"), compile_mapping=False).execute()  # as --follow's later cycles
    verify = pipeline("verify")
    verify.report.mode = "reconcile"
    proof = verify.execute(write=False).reconcile
    figures = {
        "engine": args.engine,
        "scale": args.scale,
        "source_rows_changed": changed,
        "orders_deleted": "not applied: a watermark cannot see deletes",
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
