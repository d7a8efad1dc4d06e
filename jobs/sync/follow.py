"""`carve sync`: one cycle, or cycles every interval until Ctrl-C (which finishes the cycle it is in)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from rich.console import Console

from jobs import interrupts
from jobs.pipeline import Pipeline, RunOptions
from jobs.runtimes import Runtime
from jobs.sinks.table import TableAddress
from jobs.sources.connections import Connection
from jobs.sync import sources
from jobs.sync.cycle import SyncCycle
from jobs.sync.state import ControlTable
from transforms.mapping import Mapping

INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}


def interval_seconds(text: str) -> float:
    """'30s', '5m', '1h' or a number of seconds."""
    match = INTERVAL.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"'{text}' is not an interval; write 30s, 5m, 1h or a number of seconds")
    return float(match.group(1)) * UNITS[match.group(2)]


@dataclass(frozen=True)
class SyncRequest:
    mapping: Mapping
    mapping_file: str
    conn: Connection
    options: RunOptions  # report_dir: the cycle's, or with follow the folder of the cycles' folders
    verify: str = "affected"
    follow: bool = False
    interval: float = 30.0


def sync(request: SyncRequest, runtime: Runtime, console: Console) -> int:
    """Run the cycles; the exit status (0 when the last cycle is ok)."""
    mapping = request.mapping
    spark = runtime.spark(f"carve-sync-{mapping.name}")
    ok = True
    with interrupts.finish_then_stop(lambda line: console.print(line, markup=False)) as stop:
        cycle, compiled = 0, False
        while True:
            cycle += 1
            folder = request.options.report_dir / f"cycle-{cycle:05d}" if request.follow else request.options.report_dir
            options = replace(request.options, report_dir=folder)
            if request.follow:
                console.print(f"cycle {cycle} ({_now()}; report in {folder})", markup=False)
            pipeline = Pipeline(spark, mapping, request.mapping_file, request.conn, options, console, runtime)
            try:
                report = SyncCycle(pipeline, request.verify, compile_mapping=not compiled).execute()
                compiled = True  # a cycle that returns got past compiling
            finally:
                for line in pipeline.report.summary_lines():
                    console.print(line, markup=False)
            ok = report.ok
            if not request.follow or stop.is_set():
                break
            if ok and not report.sync.get("caught_up", True):
                console.print("more changes wait: next cycle now (Ctrl-C stops)", markup=False)
                continue
            console.print(f"next cycle in {request.interval:,.0f} s (Ctrl-C stops)", markup=False)
            if stop.wait(request.interval):
                break
    return 0 if ok else 1


def stop(mapping: Mapping, conn: Connection, spark: SparkSession, endpoint_url: str | None, region: str,
         say: Callable[[str], None]) -> None:
    """`carve sync --stop`: under the mapping's lease (no sync runs meanwhile), what the sources
    keep for carve is let go (a replication slot dropped), then the mapping's state is removed
    from the control table. The table keeps its items; a full load starts the sync again."""
    control = ControlTable(TableAddress(mapping.sync.control_table, endpoint_url, region))
    control.ensure()  # a slot can outlive a full load that failed before saving any state
    lease = control.acquire(mapping.name, mapping.sync.lease_seconds)
    try:
        for line in sources.release(spark, conn, mapping):
            say(line)
    except BaseException:
        control.release(lease)
        raise
    control.forget(lease)
    say(f"sync state of mapping '{mapping.name}' removed from {control.address.table}")


def status_lines(mapping: Mapping, endpoint_url: str | None, region: str, now: float | None = None) -> list[str]:
    """`carve sync --status`: the lease, each table's position and lag, the last cycle."""
    now = time.time() if now is None else now
    address = TableAddress(mapping.sync.control_table, endpoint_url, region)
    control = ControlTable(address)
    lines = [f"carve sync {mapping.name}: state in {address.table} at {endpoint_url or 'AWS'}"]
    lease = control.lease(mapping.name)
    if lease is None or lease.expires_at < now:
        lines.append("lease: free" + (f" (the last, of {lease.owner}, expired)" if lease else ""))
    else:
        lines.append(f"lease: held by {lease.owner} for {lease.expires_at - now:,.0f} s more")
    positions = control.positions(mapping.name)
    if not positions:
        lines.append("positions: none saved; run a full load (`carve run`) first")
        return lines
    in_step = control.in_step_at(mapping.name)
    if in_step is not None:
        lines.append(f"in step with the source as it was at {_now(in_step)}: {now - in_step:,.0f} s behind it "
                     "at most (changes since then wait for the next cycle)")
    for table in mapping.sync.tables:
        position = positions.get(table)
        if position is None:
            lines.append(f"{table}: no position saved")
        else:
            lines.append(f"{table}: {position.kind} {_value(position.value)} (moved there {position.updated_at})")
    last = control.last_cycle(mapping.name)
    if last is None:
        lines.append("last cycle: none yet")
    elif last["status"] == "ok":
        changed = sum(sum(ops.values()) for ops in last["changes"].values())
        lines.append(f"last cycle: ok at {_now(last['finished_at'])}: {changed:,} changed rows, "
                     f"{last['items_rewritten']:,} items rewritten, {last['items_deleted']:,} deleted, "
                     f"{last['lag_seconds']:,.1f} s behind the source at its end; report {last['report']}")
    else:
        lines.append(f"last cycle: failed at {_now(last['finished_at'])}: {last.get('error')}; report {last['report']}")
    return lines


def _value(value: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in value.items())


def _now(epoch: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if epoch is None else epoch, timezone.utc).isoformat(timespec="seconds")

