#!/usr/bin/env python
"""Benchmark: the demo migration at two scales, rows/s per stage and the driver's peak memory.

    scripts/with-dynalite .venv/bin/python scripts/benchmark.py [--scales 1.5 15] [--engine postgres]

Scale 1 is about 73,000 source rows, so the defaults are about 110,000 and 1,100,000 source
rows. Each scale runs in its own process (peak RSS is per process) against a fresh table.
Expected: 10x the rows in at most 12x the time, and flat driver memory (nothing collected).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STAGES = ("read", "transform", "validate", "write", "reconcile")


def jvm_peak_heap_mb(spark) -> float:
    """Peak used heap of the driver JVM (in local mode the executors share it)."""
    jvm = spark.sparkContext._jvm
    pools = jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
    heap = jvm.java.lang.management.MemoryType.HEAP
    return sum(p.getPeakUsage().getUsed() for p in pools if p.getType().equals(heap)) / 2**20


def single(engine: str, scale: float, endpoint: str) -> dict:
    from rich.console import Console

    from jobs.cli import DEMO_MAPPINGS, packaged_mapping
    from jobs.devtools.commands import demo_connection
    from jobs.devtools.demo_data import DemoDatabase, create_demo_database
    from jobs.pipeline import Pipeline, RunOptions
    from jobs.runtimes.local import build_local_spark
    from transforms.mapping import load_mapping

    database = f"carve_bench_{str(scale).replace('.', '_')}"
    target = DemoDatabase(engine, database=database)
    started = time.monotonic()
    counts = create_demo_database(target, scale=scale)
    generate_seconds = time.monotonic() - started
    mapping_file = packaged_mapping(DEMO_MAPPINGS[engine])
    mapping = load_mapping(mapping_file)
    table = f"CarveBench{int(time.time())}"
    mapping = mapping.model_copy(update={"target": mapping.target.model_copy(update={"table": table}),
                                         "policy": mapping.policy.model_copy(update={"max_rejected_share": 0.05})})
    spark = build_local_spark("carve-bench")
    report_dir = REPO / "reports" / f"bench-{database}"
    run = Pipeline(spark, mapping, mapping_file, demo_connection(target), RunOptions(report_dir, endpoint_url=endpoint),
              Console(stderr=True, soft_wrap=True))
    figures = run.execute().as_dict()
    return {
        "scale": scale,
        "source_rows": sum(v for k, v in counts.items() if k != "type_trap"),
        "generate_seconds": round(generate_seconds, 1),
        "items": figures["items_built"],
        "items_lost": figures["items_lost"],
        "items_mismatched": figures["items_mismatched"],
        "stages": figures["stages"],
        "seconds": figures["seconds"],
        "driver_python_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "driver_jvm_peak_heap_mb": jvm_peak_heap_mb(spark),
        "report": str(report_dir / "report.json"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.5, 15.0])
    parser.add_argument("--engine", choices=["postgres", "mariadb"], default="postgres")
    parser.add_argument("--endpoint-url", default=os.environ.get("CARVE_ENDPOINT_URL"))
    parser.add_argument("--single", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.endpoint_url:
        parser.error("no DynamoDB endpoint: run under scripts/with-dynalite or pass --endpoint-url")
    if args.single is not None:
        print(json.dumps(single(args.engine, args.single, args.endpoint_url)))
        return 0
    results = []
    for scale in args.scales:
        print(f"scale {scale}: running ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--single", str(scale), "--engine", args.engine, "--endpoint-url", args.endpoint_url],
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print_table(results)
    return 0


def print_table(results: list[dict]) -> None:
    print(f"{'':24}" + "".join(f"{'scale ' + str(r['scale']):>22}" for r in results))
    print(f"{'source rows':24}" + "".join(f"{r['source_rows']:>22,}" for r in results))
    print(f"{'items':24}" + "".join(f"{r['items']:>22,}" for r in results))
    for stage in STAGES:
        cells = []
        for r in results:
            s = r["stages"].get(stage, {"rows": 0, "seconds": 0})
            rate = s["rows"] / s["seconds"] if s["seconds"] else 0
            cells.append(f"{rate:>10,.0f} rows/s {s['seconds']:>6.1f}s")
        print(f"{stage:24}" + "".join(f"{c:>22}" for c in cells))
    print(f"{'total seconds':24}" + "".join(f"{r['seconds']:>22,.1f}" for r in results))
    print(f"{'driver python peak RSS':24}" + "".join(f"{r['driver_python_peak_rss_mb']:>19,.0f} MB" for r in results))
    print(f"{'driver JVM peak heap':24}" + "".join(f"{r['driver_jvm_peak_heap_mb']:>19,.0f} MB" for r in results))
    print(f"{'lost / mismatched':24}" + "".join(f"{str(r['items_lost']) + ' / ' + str(r['items_mismatched']):>22}" for r in results))
    if len(results) >= 2:
        small, large = results[0], results[-1]
        rows = large["source_rows"] / small["source_rows"]
        seconds = large["seconds"] / small["seconds"]
        print(f"\n{rows:.1f}x the source rows took {seconds:.1f}x the time "
              f"(linear enough when <= {rows * 1.2:.1f}x); Python driver memory {small['driver_python_peak_rss_mb']:.0f} -> "
              f"{large['driver_python_peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
