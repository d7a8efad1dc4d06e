"""`carve demo` and `carve proxy`: development commands, registered through the `carve.commands` entry points."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from typing import Any

import click
from pydantic import SecretStr

from jobs.cli import DEMO_MAPPINGS, console, errors, packaged_mapping, run_mapping, run_options
from jobs.devtools.capacity_proxy import ProxyConfig, ProxyConfigError, second_summary, start_proxy
from jobs.devtools.demo_data import DemoDatabase, create_demo_database
from jobs.sources.connections import Connection


def demo_connection(target: DemoDatabase) -> Connection:
    """The connection to a demo database (the demo's own, never from the environment's profiles)."""
    scheme = "postgresql" if target.engine == "postgres" else "mysql"
    port = target.port or (5432 if target.engine == "postgres" else 3306)
    user = target.user or ("postgres" if target.engine == "postgres" else "root")
    return Connection(f"demo_{target.engine}", f"jdbc:{scheme}://{target.host}:{port}/{target.database}", user,
                      SecretStr(target.password))


@click.command()
@click.option("--engine", type=click.Choice(["postgres", "mariadb"]), default="postgres", show_default=True)
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="1 is about 50,000 source rows; 30 passes a million order lines.")
@click.option("--seed", type=int, default=42, show_default=True)
@run_options
def demo(engine: str, scale: float, seed: int, **options: Any) -> None:
    """Create the demo store database and migrate it with the packaged demo mapping."""
    target = DemoDatabase(engine)
    console.print(f"demo database: {engine} carve_demo at 127.0.0.1, scale {scale}, seed {seed}")
    counts = create_demo_database(target, scale=scale, seed=seed, progress=lambda m: console.print(f"  {m}"))
    console.print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    sys.exit(run_mapping(packaged_mapping(DEMO_MAPPINGS[engine]), connection=demo_connection(target), **options))


_RATE = click.FloatRange(0, 1)


@click.command()
@click.option("--upstream", required=True, help="The local DynamoDB emulator, e.g. http://127.0.0.1:8000.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default="a free port", help="Port on 127.0.0.1.")
@click.option("--write-capacity", type=click.FloatRange(min=0, min_open=True),
              help="WCU per second for every table (default: the table's provisioned WCU; on-demand: unlimited).")
@click.option("--burst-seconds", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Unused capacity kept, in seconds (0: the bucket holds one second's capacity).")
@click.option("--partition-limit", type=click.FloatRange(min=0, min_open=True), default=1000.0, show_default=True,
              help="WCU per second one partition key value takes.")
@click.option("--throttle-rate", type=_RATE, default=0.0, help="Share of requests answered with a throttling error.")
@click.option("--unprocessed-rate", type=_RATE, default=0.0,
              help="Share of BatchWriteItem calls that write only a random part and return the rest unprocessed.")
@click.option("--error-500-rate", type=_RATE, default=0.0, help="Share of requests answered with HTTP 500.")
@click.option("--error-503-rate", type=_RATE, default=0.0, help="Share of requests answered with HTTP 503.")
@click.option("--drop-rate", type=_RATE, default=0.0,
              help="Share of connections closed without an answer (half of them after the write happened).")
@click.option("--slow-rate", type=_RATE, default=0.0, help="Share of answers delayed by --slow-seconds.")
@click.option("--slow-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--fault-operations", help="Comma-separated operations the faults apply to (default: every data "
                                         "operation, e.g. PutItem,BatchWriteItem).")
@click.option("--seed", type=int, help="Seed of the fault draws, for a repeatable run.")
def proxy(upstream: str, port: int, fault_operations: str | None, **settings: Any) -> None:
    """Serve a DynamoDB endpoint on 127.0.0.1 that enforces write capacity and injects faults.

    It forwards to UPSTREAM (dynalite) what the table's capacity allows, answers the rest as
    DynamoDB does (ProvisionedThroughputExceededException, UnprocessedItems), and prints each
    second's accepted WCU against the capacity. Ctrl-C stops it.
    """
    if fault_operations is not None:
        settings["fault_operations"] = frozenset(op.strip() for op in fault_operations.split(",") if op.strip())
    try:
        server = start_proxy(upstream, ProxyConfig(**settings), port)
    except ProxyConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
    try:
        urllib.request.urlopen(upstream, timeout=2)
    except urllib.error.HTTPError:
        pass  # any HTTP answer means it is listening
    except OSError:
        errors.print(f"warning: the upstream {upstream} does not answer (yet)", markup=False)
    console.print(f"carve proxy on {server.url} -> {upstream}")
    console.print(f"point --endpoint-url at {server.url}   (Ctrl-C stops)", markup=False)
    shown = int(time.time())
    try:
        while True:
            time.sleep(1.05 - time.time() % 1)  # just after each second is complete
            now = int(time.time())
            snapshot = server.stats(since=shown)
            for second in range(shown, now):
                line = second_summary(snapshot, second)
                if line:
                    console.print(line, markup=False)
            shown = now
    except KeyboardInterrupt:
        for table, record in sorted(server.stats(since=time.time())["tables"].items()):
            totals = record["totals"]
            console.print(f"total {table}: {totals['accepted_wcu']:g} WCU, {totals['accepted_items']} items, "
                          f"{totals['requests']} requests, {totals['throttled_requests']} throttled", markup=False)
    finally:
        server.stop()
