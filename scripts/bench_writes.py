"""Write benchmarks: rate fidelity against a throttling endpoint, client CPU cost, hot keys, faults.

    .venv/bin/python scripts/bench_writes.py cpu      [--items 200000]
    .venv/bin/python scripts/bench_writes.py rate     [--items 200000] [--budgets 500 2000]
    .venv/bin/python scripts/bench_writes.py hotkeys  [--items 100000] [--budget 2000]
    .venv/bin/python scripts/bench_writes.py faults   (the demo through a faulty endpoint)

Every part starts its own dynalite (and capacity proxy) on free loopback ports and prints its
figures; `rate` also draws bench_rate_<budget>.png into --out. Each writer runs in its own
process so its CPU time is its own. Figures, never assertions: this is a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jobs.devtools.local_stack import LOCAL_AWS_ENV, start_dynalite  # noqa: E402
from transforms.wire import item_size, write_units  # noqa: E402

for _name, _value in LOCAL_AWS_ENV.items():
    os.environ.setdefault(_name, _value)


# --- the workload ------------------------------------------------------------------------------


def make_items(count: int, seed: int, hot_share: float = 0.0, hot_keys: int = 10) -> list[dict]:
    """Items of mixed sizes, 0.2 KB to 6 KB: 75 % up to 1 KB, 20 % 1-3 KB, 5 % 3-6 KB.

    Each is {"pk", "sk", "item" (wire JSON), "wcu"}. With hot_share, that share of the items
    shares `hot_keys` partition keys (one item collection each), the rest have their own.
    """
    rng = random.Random(seed)
    items = []
    for n in range(count):
        roll = rng.random()
        target = rng.randint(200, 1000) if roll < 0.75 else rng.randint(1025, 3072) if roll < 0.95 else rng.randint(3073, 6144)
        pk = f"HOT#{n % hot_keys}" if rng.random() < hot_share else f"ITEM#{n:07d}"
        sk = f"V#{n:07d}"
        price = f"{rng.randint(0, 10**6)}.{rng.randint(0, 99):02d}"
        fixed = {"PK": {"S": pk}, "SK": {"S": sk}, "n": {"N": str(n)}, "price": {"N": price}, "active": {"BOOL": n % 2 == 0}}
        payload = "x" * max(1, target - item_size(fixed) - len("payload"))
        item = {**fixed, "payload": {"S": payload}}
        items.append({"pk": pk, "sk": sk, "item": json.dumps(item, separators=(",", ":")),
                      "wcu": write_units(item_size(item))})
    return items


def to_python(wire: dict) -> dict:
    """The wire item as boto3's Table resource takes it (numbers as Decimal)."""
    out = {}
    for name, value in wire.items():
        ((kind, inner),) = value.items()
        out[name] = Decimal(inner) if kind == "N" else inner
    return out


# --- one writer in its own process -------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    """Write the items file into the table with one writer; print JSON figures."""
    import boto3
    from botocore.config import Config

    items = [json.loads(line) for line in Path(args.items_file).read_text().splitlines()]
    retries = {"carve": None, "carve-spark": None, "boto3-standard": "standard", "boto3-adaptive": "adaptive", "awswrangler": "standard"}[args.writer]
    prepared = None
    if args.writer.startswith("boto3") or args.writer == "awswrangler":
        prepared = [to_python(json.loads(i["item"])) for i in items]
    if args.writer == "awswrangler":
        import awswrangler as wr
        import pandas as pd

        wr.config.dynamodb_endpoint_url = args.endpoint
        frame = pd.DataFrame(prepared)
    if args.writer == "carve-spark":
        spark_worker(args, items)
        return
    error = None
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        if args.writer == "carve":
            from jobs.sinks.pacing import StaticShare
            from jobs.sinks.writer import PendingItem, WriteSettings, write_partition

            settings = WriteSettings(args.table, args.endpoint, "us-east-1", args.rate)
            rows = (PendingItem("bench", i["pk"], i["sk"], i["item"], i["wcu"]) for i in items)
            outcomes = list(write_partition(rows, settings, StaticShare(args.rate) if args.rate else None))
            failed = len(outcomes) - 1
            if failed:
                error = f"{failed} items in the dead letter"
        elif args.writer == "awswrangler":
            session = boto3.session.Session(region_name="us-east-1")
            wr.dynamodb.put_df(frame, args.table, boto3_session=session)
        else:
            config = Config(retries={"mode": retries})
            table = boto3.resource("dynamodb", endpoint_url=args.endpoint, region_name="us-east-1", config=config).Table(args.table)
            with table.batch_writer() as writer:
                for item in prepared:
                    writer.put_item(Item=item)
    except Exception as exc:  # the figure to report: how far it got, and why it stopped
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    print(json.dumps({"writer": args.writer, "items": len(items), "cpu_seconds": cpu, "wall_seconds": wall,
                      "error": error, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def spark_worker(args: argparse.Namespace, items: list[dict]) -> None:
    """carve's writer as a run uses it: Spark tasks, the driver's coordinator, a share of capacity."""
    import boto3
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType

    from jobs.runtimes.local import build_local_spark
    from jobs.sinks.pacing import BudgetSpec, resolve_budget
    from jobs.sinks.writer import WriteSettings, write_items

    spark = build_local_spark("carve-bench-writes")
    schema = StructType([StructField(n, t) for n, t in (("entity", StringType()), ("pk", StringType()),
                                                        ("sk", StringType()), ("item", StringType()),
                                                        ("wcu", IntegerType()))])
    rows = [("bench", i["pk"], i["sk"], i["item"], i["wcu"]) for i in items]
    frame = spark.createDataFrame(rows, schema).cache()
    frame.count()
    client = boto3.client("dynamodb", endpoint_url=args.endpoint, region_name="us-east-1")
    spec = BudgetSpec(units=args.rate) if args.rate else BudgetSpec(share=1.0)
    budget = lambda: resolve_budget(spec, client.describe_table(TableName=args.table)["Table"])  # noqa: E731
    settings = WriteSettings(args.table, args.endpoint, "us-east-1", budget().units_per_second)
    cpu0, wall0 = time.process_time(), time.monotonic()
    result = write_items(frame, settings, budget=budget)
    wall = time.monotonic() - wall0
    print(json.dumps({"writer": args.writer, "items": len(items), "wall_seconds": wall,
                      "driver_cpu_seconds": time.process_time() - cpu0, "written": result.items_written,
                      "failed": result.failed_count, "throttled": result.throttled_requests,
                      "retries": result.retries, "batches": result.batches, "error": None}))
    spark.stop()


def run_worker(writer: str, items_file: Path, endpoint: str, table: str, rate: float | None = None) -> dict:
    command = [sys.executable, __file__, "worker", "--writer", writer, "--items-file", str(items_file),
               "--endpoint", endpoint, "--table", table]
    if rate:
        command += ["--rate", str(rate)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{writer} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def create_table(client, name: str, wcu: int | None = None) -> None:
    from jobs.sinks.table import TableSpec, ensure_table

    ensure_table(client, TableSpec(name, "PK", "SK"), *(("PROVISIONED", wcu) if wcu else ()))


def write_items_file(items: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


# --- the parts ---------------------------------------------------------------------------------


def bench_cpu(args: argparse.Namespace) -> None:
    import boto3

    items = make_items(args.items, seed=1)
    path = write_items_file(items, args.out / "bench_items.jsonl")
    print(f"client cost: {len(items):,} items, {sum(i['wcu'] for i in items):,} WCU, against dynalite (no throttling)")
    print(f"{'writer':<16} {'CPU s':>8} {'CPU µs/item':>12} {'wall s':>8} {'items/s':>8}  note")
    results = {}
    with start_dynalite() as dynalite:
        client = boto3.client("dynamodb", endpoint_url=dynalite.url, region_name="us-east-1")
        for writer in args.writers:
            table = f"bench-cpu-{writer}-{uuid.uuid4().hex[:6]}"
            create_table(client, table)
            r = run_worker(writer, path, dynalite.url, table)
            count = sum(page["Count"] for page in client.get_paginator("scan").paginate(TableName=table, Select="COUNT"))
            results[writer] = r
            print(f"{writer:<16} {r['cpu_seconds']:8.1f} {r['cpu_seconds'] / len(items) * 1e6:12.1f} "
                  f"{r['wall_seconds']:8.1f} {len(items) / r['wall_seconds']:8.0f}  {count:,} in table"
                  + (f"; {r['error']}" if r["error"] else ""))
    if "carve" in results and "boto3-standard" in results:
        ratio = results["carve"]["cpu_seconds"] / results["boto3-standard"]["cpu_seconds"]
        print(f"carve CPU per item / boto3 batch_writer CPU per item: {ratio:.3f} (target <= 0.333)")
    (args.out / "bench_cpu.json").write_text(json.dumps(results, indent=2))


# --- through the capacity proxy ----------------------------------------------------------------


def start_proxy_process(upstream: str, **settings: object) -> object:
    from jobs.devtools.capacity_proxy import ProxyConfig, spawn_proxy

    return spawn_proxy(upstream, ProxyConfig(**settings))


def stats_per_second(stats: dict, table: str) -> dict[int, dict]:
    rows = stats["tables"].get(table, {}).get("seconds", [])
    return {r["second"]: {"wcu": r["accepted_wcu"], "items": r["accepted_items"], "requests": r["requests"],
                          "throttled": r["throttled_requests"], "partial": r["partial_responses"]} for r in rows}


def fault_totals(stats: dict) -> dict[str, int]:
    totals: dict[str, int] = {}
    for table in stats["tables"].values():
        for kind, count in table["totals"]["faults"].items():
            totals[kind] = totals.get(kind, 0) + count
    return totals


def judged(writer_figures: dict, stats: dict, table: str, budget: float) -> dict:
    from jobs.sinks.rate import rate_series, summarize_rate

    per_second = stats_per_second(stats, table)
    timeline = {s: v["wcu"] for s, v in per_second.items()}
    series = rate_series(timeline, [(0, float(budget))])
    summary = summarize_rate(series)
    requests = sum(v["requests"] for v in per_second.values())
    throttled = sum(v["throttled"] + v["partial"] for v in per_second.values())
    return {"writer": writer_figures["writer"], "series": series, "summary": summary, "requests": requests,
            "throttled": throttled, "wall": writer_figures["wall_seconds"], "error": writer_figures.get("error"),
            "accepted_items": sum(v["items"] for v in per_second.values())}


def print_judged(rows: list[dict]) -> None:
    print(f"  {'writer':<16} {'steady util':>11} {'mean util':>9} {'peak s':>7} {'s>110%':>6} {'requests':>9} "
          f"{'throttled':>9} {'thr %':>6} {'time s':>7}  note")
    for r in rows:
        s = r["summary"]
        print(f"  {r['writer']:<16} {s.steady_utilisation:11.3f} {s.mean_utilisation:9.3f} {s.peak_share:7.3f} "
              f"{s.seconds_over_110:6d} {r['requests']:9,} {r['throttled']:9,} "
              f"{100 * r['throttled'] / max(1, r['requests']):6.2f} {r['wall']:7.1f}  "
              f"{r['accepted_items']:,} items accepted" + (f"; {r['error']}" if r["error"] else ""))


def bench_rate(args: argparse.Namespace) -> None:
    import boto3

    from jobs.sinks.rate import plot_rate

    items = make_items(args.items, seed=2)
    path = write_items_file(items, args.out / "bench_rate_items.jsonl")
    total = sum(i["wcu"] for i in items)
    print(f"rate fidelity: {len(items):,} items of 0.2-6 KB, {total:,} WCU; proxy enforces the table's "
          f"provisioned WCU with burst credit 0 and 1,000 WCU/s per partition key")
    with start_dynalite() as dynalite, start_proxy_process(dynalite.url, burst_seconds=0) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1")
        for budget in args.budgets:
            print(f"budget {budget:,} WCU/s (table provisioned at {budget:,} WCU):")
            rows = []
            for writer in args.writers:
                table = f"bench-rate-{budget}-{writer}-{uuid.uuid4().hex[:6]}"
                create_table(client, table, wcu=budget)
                proxy.reset()
                figures = run_worker(writer, path, proxy.url, table)
                rows.append(judged(figures, proxy.stats(), table, budget))
            print_judged(rows)
            plot = plot_rate(rows[0]["series"], args.out / f"bench_rate_{budget}.png",
                             f"{len(items):,} items into a {budget:,} WCU table (burst credit 0)",
                             others={r["writer"]: r["series"] for r in rows[1:]})
            print(f"  plot: {plot}")
            (args.out / f"bench_rate_{budget}.json").write_text(json.dumps(
                [{k: (v.as_report() if k == "summary" else v) for k, v in r.items()} for r in rows], indent=1))


def bench_hotkeys(args: argparse.Namespace) -> None:
    import boto3

    items = make_items(args.items, seed=3, hot_share=0.3, hot_keys=10)
    path = write_items_file(items, args.out / "bench_hot_items.jsonl")
    hot = sum(1 for i in items if i["pk"].startswith("HOT#"))
    print(f"hot keys: {len(items):,} items, {hot:,} ({hot / len(items):.0%}) on 10 partition keys; table and "
          f"budget {args.budget:,} WCU/s, 1,000 WCU/s per partition key enforced")
    with start_dynalite() as dynalite, start_proxy_process(dynalite.url, burst_seconds=0) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1")
        # For contrast: carve's task writer alone (one task, the whole budget) fed in key order, as a
        # script writing rows in source order would: each item collection back to back.
        in_key_order = write_items_file(sorted(items, key=lambda i: (i["pk"], i["sk"])), args.out / "bench_hot_sorted.jsonl")
        rows = []
        for label, writer, source in (("carve-spark", "carve-spark", path), ("key order", "carve", in_key_order)):
            table = f"bench-hot-{writer}-{uuid.uuid4().hex[:6]}"
            create_table(client, table, wcu=args.budget)
            proxy.reset()
            figures = run_worker(writer, source, proxy.url, table, rate=args.budget if writer == "carve" else None)
            figures["writer"] = label
            rows.append(judged(figures, proxy.stats(), table, args.budget))
        print_judged(rows)
        print("  'key order': carve's task writer alone at the whole budget, fed in partition-key order (as a "
              "script writing source rows in order would), for contrast.")


def bench_faults(args: argparse.Namespace) -> None:
    faults = {"throttle_rate": 0.20, "unprocessed_rate": 0.10, "error_500_rate": 0.01, "error_503_rate": 0.01,
              "drop_rate": 0.01}
    print("faults: the demo migration through the proxy with " + ", ".join(f"{k} {v:.0%}" for k, v in faults.items()))
    report_dir = args.out / f"faults-{uuid.uuid4().hex[:6]}"
    with start_dynalite() as dynalite, start_proxy_process(dynalite.url, **faults) as proxy:
        started = time.monotonic()
        done = subprocess.run([str(REPO / ".venv" / "bin" / "carve"), "demo", "--scale", str(args.scale),
                               "--endpoint-url", proxy.url, "--report-dir", str(report_dir)],
                              capture_output=True, text=True, env={**os.environ})
        stats = proxy.stats()
    report = json.loads((report_dir / "report.json").read_text())
    print(done.stdout[-2500:])
    print(f"  exit status {done.returncode} in {time.monotonic() - started:.0f} s; items_expected "
          f"{report['items_expected']:,}, items_written {report['items_written']:,}, items_lost {report['items_lost']}, "
          f"items_mismatched {report['items_mismatched']}, throttled_requests {report['throttled_requests']:,}, "
          f"retries {report['retries']:,}")
    print(f"  injected by the proxy: {json.dumps(fault_totals(stats))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--items", type=int, default=200_000)
    cpu.add_argument("--writers", nargs="+", default=["carve", "boto3-standard", "awswrangler"])
    w = sub.add_parser("worker")
    w.add_argument("--writer", required=True)
    w.add_argument("--items-file", required=True)
    w.add_argument("--endpoint", required=True)
    w.add_argument("--table", required=True)
    w.add_argument("--rate", type=float)
    rate = sub.add_parser("rate")
    rate.add_argument("--items", type=int, default=200_000)
    rate.add_argument("--budgets", type=int, nargs="+", default=[500, 2000])
    rate.add_argument("--writers", nargs="+", default=["carve-spark", "boto3-standard", "boto3-adaptive"])
    hot = sub.add_parser("hotkeys")
    hot.add_argument("--items", type=int, default=100_000)
    hot.add_argument("--budget", type=int, default=2000)
    faults = sub.add_parser("faults")
    faults.add_argument("--scale", type=float, default=1.0)
    for p in (cpu, rate, hot, faults):
        p.add_argument("--out", type=Path, default=REPO / "reports" / "bench")
    args = parser.parse_args()
    if args.part == "worker":
        worker(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    {"cpu": bench_cpu, "rate": bench_rate, "hotkeys": bench_hotkeys, "faults": bench_faults}[args.part](args)


if __name__ == "__main__":
    main()
