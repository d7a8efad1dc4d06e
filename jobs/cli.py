"""The `carve` command: validate, run, reconcile, schema, demo.

Mistakes in a user's own files come out as `file:line field: message` lines and exit
status 1, never as a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path

import click
from rich.console import Console

from transforms.errors import CarveError, MappingError
from transforms.loader import load_mapping
from transforms.mapping import json_schema

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

DEMO_MAPPINGS = {"postgres": "demo.yaml", "mariadb": "demo_mariadb.yaml"}


def packaged_mapping(name: str) -> str:
    """A mapping shipped in the package (works from a wheel, where files are zip members)."""
    path = resources.files("mappings") / name
    with resources.as_file(path) as real:
        return str(real)


def _endpoint(option: str | None) -> str | None:
    return option or os.environ.get("CARVE_ENDPOINT_URL")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """carve: carve DynamoDB tables out of a relational database.

    \b
    Typical session:
      carve validate mappings/store.yaml --against-source
      carve run mappings/store.yaml --endpoint-url http://127.0.0.1:8000 --write-rate 500
      carve reconcile mappings/store.yaml --endpoint-url http://127.0.0.1:8000

    Source credentials come from CARVE_CONNECTION_<NAME>_URL / _USER / _PASSWORD,
    CARVE_CONNECTION_<NAME>_SECRET_ID (Secrets Manager), CARVE_CONNECTION_<NAME>_GLUE_CONNECTION
    or ~/.carve/connections.yaml (CARVE_PROFILES), never from the command line.
    """


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--against-source", is_flag=True, help="Also check tables and columns against the live database.")
def validate(files: tuple[str, ...], against_source: bool) -> None:
    """Check mapping FILES; print every problem as file:line field: message."""
    problems = 0
    for file in files:
        try:
            mapping = load_mapping(file)
            if against_source:
                from jobs.run import compile_check
                from jobs.runtime import current
                from jobs.sources import resolve_connection

                spark = current().spark("carve-validate")
                compile_check(spark, resolve_connection(mapping.source.connection), mapping, file)
            console.print(f"{file}: ok ({len(mapping.entities)} entities into {mapping.target.table})")
        except MappingError as exc:
            problems += len(exc.problems)
            for problem in exc.problems:
                errors.print(str(problem), markup=False)
        except CarveError as exc:
            problems += 1
            errors.print(f"{file}: {exc}", markup=False)
    if problems:
        sys.exit(1)


def _run_options(mapping, report_dir, endpoint_url, region, write_rate):
    from jobs.run import RunOptions, default_report_dir

    return RunOptions(
        report_dir=Path(report_dir) if report_dir else default_report_dir(mapping),
        endpoint_url=_endpoint(endpoint_url),
        region=region,
        write_rate=write_rate,
    )


SINKS = ("carve", "glue-connector")


def _execute(mapping_file: str, options_args: dict, connection=None, write: bool = True, sink: str = "carve") -> int:
    from jobs.run import Run
    from jobs.runtime import current
    from jobs.sources import resolve_connection

    mapping = load_mapping(mapping_file)
    options = _run_options(mapping, **options_args)
    conn = connection or resolve_connection(mapping.source.connection)
    runtime = current()
    via = " through the Glue DynamoDB connector" if write and sink == "glue-connector" else ""
    console.print(f"carve {'run' if write else 'reconcile'} [bold]{mapping.name}[/] -> {mapping.target.table}{via} "
                  f"({len(mapping.entities)} entities; report in {options.report_dir})")
    spark = runtime.spark(f"carve-{mapping.name}")
    run_class = Run
    if sink == "glue-connector":
        from jobs.connector_run import GlueConnectorRun  # the same run, another write stage

        run_class = GlueConnectorRun
    run = run_class(spark, mapping, mapping_file, conn, options, console)
    try:
        figures = run.execute(write=write)
    except CarveError:
        _summary(run.figures)
        raise
    _summary(figures)
    return 0 if figures.get("status") == "ok" else 1


def _summary(figures: dict) -> None:
    keys = ("items_expected", "items_written", "items_rejected", "items_lost", "items_mismatched",
            "wcu_consumed", "throttled_requests", "retries")
    console.print("summary: " + ", ".join(f"{k}={figures.get(k, 0):,}" if isinstance(figures.get(k, 0), int)
                                          else f"{k}={figures.get(k, 0):,.1f}" for k in keys))
    for key, label in (("quarantine", "quarantine"), ("dead_letter", "dead letter"), ("report", "report")):
        if figures.get(key):
            console.print(f"{label}: {figures[key]}")
    if "validation" in figures:
        console.print(f"data docs: {figures['validation']['data_docs']}")
    console.print(f"status: {figures.get('status', 'failed')}")


def _budget_text(ctx, param, value: str | None) -> str | None:
    from jobs.pacing import BudgetSpec

    if value is not None:
        try:
            BudgetSpec.parse(value)
        except CarveError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def run_options(function):
    for option in reversed([
        click.option("--endpoint-url", help="DynamoDB endpoint (default: $CARVE_ENDPOINT_URL, else AWS)."),
        click.option("--region", default=lambda: os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                     show_default="$AWS_DEFAULT_REGION or us-east-1"),
        click.option("--write-rate", callback=_budget_text, metavar="WCU_PER_S|SHARE%",
                     help="Budget for the whole job: write units per second (1500) or a share of the table's "
                          "capacity (80%); overrides target.write_rate. Default: 80% of a provisioned table, "
                          "an on-demand table's maximum (else 4,000)."),
        click.option("--report-dir", type=click.Path(file_okay=False),
                     help="Where report.json, quarantine/ and data_docs/ go (default reports/<name>-<time>)."),
    ]):
        function = option(function)
    return function


@cli.command()
@click.argument("mapping", required=False, type=click.Path(dir_okay=False))
@run_options
@click.option("--sink", type=click.Choice(SINKS), default="carve", show_default=True,
              help="Who writes the items: carve's rate-controlled writer, or AWS Glue's DynamoDB connector "
                   "(on AWS Glue only).")
def run(mapping: str | None, sink: str, **options_args) -> None:
    """Migrate MAPPING (default: the packaged demo mapping) into DynamoDB and prove it.

    Exit status 0 only when every expected item is in the table with exactly the expected
    content; 1 when anything is lost, different, over the quarantine threshold or failed.
    """
    mapping_file = mapping or packaged_mapping(DEMO_MAPPINGS["postgres"])
    sys.exit(_guarded(lambda: _execute(mapping_file, options_args, sink=sink)))


@cli.command()
@click.argument("mapping", type=click.Path(dir_okay=False))
@run_options
def reconcile(mapping: str, **options_args) -> None:
    """Compare the table with what MAPPING produces from the source now, without writing."""
    sys.exit(_guarded(lambda: _execute(mapping, options_args, write=False)))


@cli.command()
def schema() -> None:
    """Print the JSON Schema of mapping files (for editors: yaml-language-server)."""
    click.echo(json.dumps(json_schema(), indent=2))


@cli.command()
@click.argument("deploy_file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--apply-policy", is_flag=True, help="Also put the generated policy on the job role (inline).")
@click.option("--endpoint-url", help="One endpoint for S3, Glue, IAM, STS and Secrets Manager (moto, LocalStack).")
def deploy(deploy_file: str, dry_run: bool, apply_policy: bool, endpoint_url: str | None) -> None:
    """Upload the wheel, job script and mappings to S3 and create or update one Glue job per mapping."""
    from jobs.deploy import deploy as run_deploy

    def go() -> int:
        console.print(f"carve deploy {deploy_file}{' (dry run: nothing is changed)' if dry_run else ''}")
        plan = run_deploy(deploy_file, endpoint_url=endpoint_url, dry_run=dry_run, apply_policy=apply_policy)
        for step in plan.steps:
            console.print(str(step), markup=False)
        if not plan.changes:
            console.print("nothing to change: every object and job is up to date")
        elif dry_run:
            console.print(f"{len(plan.changes)} change(s) planned; run without --dry-run to make them")
        else:
            console.print(f"{len(plan.changes)} change(s) made")
        console.print(f"job role policy: {plan.policy_file}")
        for command in plan.run_commands:
            console.print(f"run: {command}", markup=False)
        return 0

    sys.exit(_guarded(go))


@cli.command()
@click.option("--engine", type=click.Choice(["postgres", "mariadb"]), default="postgres", show_default=True)
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="1 is about 50,000 source rows; 30 passes a million order lines.")
@click.option("--seed", type=int, default=42, show_default=True)
@run_options
def demo(engine: str, scale: float, seed: int, **options_args) -> None:
    """Create the demo store database and migrate it with the packaged demo mapping."""
    from jobs.demo_data import DemoDatabase, create_demo_database
    from jobs.sources import Connection

    def go() -> int:
        target = DemoDatabase(engine)
        console.print(f"demo database: {engine} carve_demo at 127.0.0.1, scale {scale}, seed {seed}")
        counts = create_demo_database(target, scale=scale, seed=seed, progress=lambda m: console.print(f"  {m}"))
        console.print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        conn = demo_connection(target)
        return _execute(packaged_mapping(DEMO_MAPPINGS[engine]), options_args, connection=conn)

    sys.exit(_guarded(go))


_RATE = click.FloatRange(0, 1)


@cli.command()
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
def proxy(upstream: str, port: int, fault_operations: str | None, **settings) -> None:
    """Serve a DynamoDB endpoint on 127.0.0.1 that enforces write capacity and injects faults.

    It forwards to UPSTREAM (dynalite) what the table's capacity allows, answers the rest as
    DynamoDB does (ProvisionedThroughputExceededException, UnprocessedItems), and prints each
    second's accepted WCU against the capacity. Ctrl-C stops it.
    """
    import time
    import urllib.error
    import urllib.request

    from jobs.capacity_proxy import ProxyConfig, ProxyConfigError, second_summary, start_proxy

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


def demo_connection(target) -> "Connection":
    from pydantic import SecretStr

    from jobs.sources import Connection

    scheme = "postgresql" if target.engine == "postgres" else "mysql"
    port = target.port or (5432 if target.engine == "postgres" else 3306)
    user = target.user or ("postgres" if target.engine == "postgres" else "root")
    return Connection(f"demo_{target.engine}", f"jdbc:{scheme}://{target.host}:{port}/{target.database}", user,
                      SecretStr(target.password))


def _guarded(action) -> int:
    try:
        return action()
    except MappingError as exc:
        for problem in exc.problems:
            errors.print(str(problem), markup=False)
        return 1
    except CarveError as exc:
        errors.print(f"error: {exc}", markup=False)
        return 1


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="carve", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        errors.print("aborted")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    sys.exit(main())
