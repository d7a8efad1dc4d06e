"""The `carve` command: validate, run, reconcile, schema, deploy (and, in a development install,
demo and proxy from jobs.devtools through the `carve.commands` entry points).

Mistakes in a user's own files come out as `file:line field: message` lines and exit status 1,
never as a traceback: every command's CarveError goes through one handler (`CarveGroup.invoke`).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from jobs.plan.sample import DEFAULT_SAMPLE_ROWS
from jobs.sinks.registry import DEFAULT_SINK, sink_names
from jobs.storage import run_folder_name
from transforms.errors import CarveError, MappingError
from transforms.mapping import json_schema, load_mapping

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

DEMO_MAPPINGS = {"postgres": "demo.yaml", "mariadb": "demo_mariadb.yaml"}
PLUGIN_GROUP = "carve.commands"


def packaged_mapping(name: str) -> str:
    """A mapping shipped in the package (works from a wheel, where files are zip members)."""
    path = resources.files("mappings") / name
    with resources.as_file(path) as real:
        return str(real)


def print_problems(exc: MappingError) -> None:
    for problem in exc.problems:
        errors.print(str(problem), markup=False)


class CarveGroup(click.Group):
    """Every command's carve errors end here: printed as lines, exit status 1.

    Commands other packages register (jobs.devtools: demo, proxy) are added on first use, once
    this module is whole; the Glue job's wheel has no jobs.devtools, so there they are absent.
    """

    _plugins_loaded = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry in entry_points(group=PLUGIN_GROUP):
            try:
                command = entry.load()
            except ModuleNotFoundError as exc:
                if exc.name and entry.module.startswith(exc.name):
                    continue  # not installed here
                raise
            self.add_command(command, entry.name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_plugins()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MappingError as exc:
            print_problems(exc)
        except CarveError as exc:
            errors.print(f"error: {exc}", markup=False)
        ctx.exit(1)


@click.group(cls=CarveGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    for file in files:  # every file is checked, so its problems are caught here, not by the group
        try:
            mapping = load_mapping(file)
            if against_source:
                from jobs.preflight import compile_check
                from jobs.runtimes import current

                runtime = current()
                conn = runtime.connection(mapping.source.connection)
                compile_check(runtime.spark("carve-validate", short=True), conn, mapping, file)
            patterns = f", {len(mapping.patterns)} access patterns" if mapping.patterns else ""
            console.print(f"{file}: ok ({len(mapping.entities)} entities into {mapping.target.table}{patterns})")
        except MappingError as exc:
            problems += len(exc.problems)
            print_problems(exc)
        except CarveError as exc:
            problems += 1
            errors.print(f"{file}: {exc}", markup=False)
    if problems:
        sys.exit(1)


def run_options(function: Callable) -> Callable:
    """The options every command that runs a mapping takes."""
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


def _budget_text(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from jobs.sinks.pacing import BudgetSpec

    if value is not None:
        try:
            BudgetSpec.parse(value)
        except CarveError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def run_mapping(mapping_file: str, *, endpoint_url: str | None, region: str, write_rate: str | None,
                report_dir: str | None, sink: str = DEFAULT_SINK, write: bool = True, connection: Any = None,
                import_prefix: str | None = None, reconcile: bool = True) -> int:
    """Run (or, with write=False, reconcile; with reconcile=False too, check the access patterns)
    one mapping and print its stages and summary; the exit status."""
    from jobs.preflight import writable_dir
    from jobs.report import RunReport
    from jobs.runtimes import current

    mapping = load_mapping(mapping_file)
    reports = Path(report_dir) if report_dir else Path("reports") / run_folder_name(mapping.name)
    runtime = current()
    writable_dir(reports)  # first: without it, a failure would have nowhere to be reported
    pipeline = None
    try:
        # Before Spark starts: a connection that cannot be resolved fails in a second, not after a minute.
        conn = connection or runtime.connection(mapping.source.connection)
        # The JVM launches (about a second) while the pipeline's modules import (Great Expectations
        # among them, about 3 s).
        runtime.start(f"carve-{mapping.name}")
        ways = {"glue-connector": " through the Glue DynamoDB connector", "import-s3": " through Import from S3"}
        via = ways.get(sink, "") if write else ""
        command = "run" if write else "reconcile" if reconcile else "check-patterns"
        console.print(f"carve {command} [bold]{mapping.name}[/] -> {mapping.target.table}{via} "
                      f"({len(mapping.entities)} entities; report in {reports})")
        from jobs.pipeline import Pipeline, RunOptions

        options = RunOptions(
            report_dir=reports,
            endpoint_url=endpoint_url or os.environ.get("CARVE_ENDPOINT_URL"),
            region=region,
            write_rate=write_rate,
            sink=sink,
            import_prefix=import_prefix,
        )
        pipeline = Pipeline(runtime.spark(f"carve-{mapping.name}"), mapping, mapping_file, conn, options, console,
                            runtime)
        pipeline.report.mode = command
        report = pipeline.execute(write=write, reconcile=reconcile)
    except CarveError as exc:
        if pipeline is None:  # it did not start: its report says so, as every failed run's does
            failed = RunReport(mapping.name, mapping_file, mapping.target.table, sink, error=str(exc))
            failed.save(reports / "report.json")
        raise
    finally:
        if pipeline is not None:
            for line in pipeline.report.summary_lines():
                console.print(line, markup=False)
    return 0 if report.ok else 1


@cli.command()
@click.argument("mapping", required=False, type=click.Path(dir_okay=False))
@run_options
@click.option("--sink", type=click.Choice(sink_names()), default=DEFAULT_SINK, show_default=True,
              help="Who writes the items: carve's rate-controlled writer, AWS Glue's DynamoDB connector "
                   "(on AWS Glue only), or DynamoDB's Import from S3 (a new table only; needs --import-prefix).")
@click.option("--import-prefix", metavar="S3URI",
              help="With --sink import-s3: the s3://BUCKET/PREFIX/ under which each run writes its item files.")
def run(mapping: str | None, **options: Any) -> None:
    """Migrate MAPPING (default: the packaged demo mapping) into DynamoDB and prove it.

    Exit status 0 only when every expected item is in the table with exactly the expected
    content; 1 when anything is lost, different, over the quarantine threshold or failed.
    """
    if (options["sink"] == "import-s3") != bool(options["import_prefix"]):
        raise click.UsageError("--sink import-s3 and --import-prefix S3URI go together")
    sys.exit(run_mapping(mapping or packaged_mapping(DEMO_MAPPINGS["postgres"]), **options))


@cli.command()
@click.argument("mapping", type=click.Path(dir_okay=False))
@run_options
def reconcile(mapping: str, **options: Any) -> None:
    """Compare the table with what MAPPING produces from the source now, without writing."""
    sys.exit(run_mapping(mapping, write=False, **options))


@cli.command()
@click.option("--connection", required=True, metavar="NAME",
              help="The source connection (CARVE_CONNECTION_<NAME>_URL/_USER/_PASSWORD or _SECRET_ID).")
@click.option("--schema", help="PostgreSQL schema (default public) or MariaDB database (default: the connection's).")
@click.option("--tables", metavar="A,B,C", help="Only these tables (default: every table in the schema).")
@click.option("--entities", metavar="A,B",
              help="Make these tables entities whatever their shape (how some DECIDE comments are resolved).")
@click.option("--name", "mapping_name", help="The mapping's name (default: the connection's name).")
@click.option("--table", "dynamodb_table", help="The DynamoDB table (default: the mapping's name in CamelCase).")
@click.option("--max-item-kb", type=click.IntRange(min=1), default=100, show_default=True,
              help="Warn where an embedded list passes this many KB at the p99 of children per parent.")
def scaffold(connection: str, schema: str | None, tables: str | None, entities: str | None,
             mapping_name: str | None, dynamodb_table: str | None, max_item_kb: int) -> None:
    """Print a draft mapping for a live PostgreSQL or MariaDB schema, with DECIDE comments.

    Reads the catalogue (primary, foreign and unique keys, types, nullability, row counts and
    sizes) and counts children per parent for each foreign key; reads no other rows. The draft
    passes carve validate; redirect it to a file and resolve its DECIDE comments.
    """
    from jobs.runtimes import current
    from jobs.scaffold.catalog import read_catalog
    from jobs.scaffold.draft import DraftOptions, draft

    runtime = current()
    conn = runtime.connection(connection)
    name = mapping_name or re.sub(r"[^A-Za-z0-9_-]", "_", connection)
    table = dynamodb_table or "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)
    errors.print(f"carve scaffold: reading the catalogue of {conn.safe_url}", markup=False)
    only = _names(tables) or None
    catalog = read_catalog(runtime.spark("carve-scaffold", short=True), conn, schema, only)
    try:
        text = draft(catalog, DraftOptions(name, connection, table, max_item_kb, tuple(_names(entities))))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(text, nl=False)
    decide = text.count("# DECIDE:")
    errors.print(f"carve scaffold: {len(catalog.tables)} tables, {len(catalog.references)} foreign keys; "
                 f"{decide} DECIDE comments to resolve", markup=False)


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


@cli.command("check-patterns")
@click.argument("mapping", type=click.Path(dir_okay=False))
@run_options
def check_patterns(mapping: str, **options: Any) -> None:
    """Run MAPPING's access patterns against the table and compare each with its SQL on the source.

    Builds the items as a run does (to know which ones are quarantined), writes nothing. Exit
    status 0 when every sampled answer agrees with the source.
    """
    if not load_mapping(mapping).patterns:
        raise click.UsageError(f"{mapping} declares no patterns; see 'Access patterns' in the README")
    sys.exit(run_mapping(mapping, write=False, reconcile=False, **options))


@cli.command()
@click.argument("mapping", required=False, type=click.Path(dir_okay=False))
@run_options
@click.option("--sample", "sample_rows", type=click.IntRange(min=1), default=lambda: DEFAULT_SAMPLE_ROWS,
              show_default=str(DEFAULT_SAMPLE_ROWS), metavar="ROWS",
              help="Rows per entity to read (whole partition keys, with their embedded rows); the totals are "
                   "scaled up by each entity's exact row count.")
@click.option("--full", is_flag=True, help="Read everything: exact figures, as long a read as a run's.")
@click.option("--prices", type=click.Path(dir_okay=False, exists=True),
              help="A JSON or YAML file with any of the keys of the built-in price table (jobs/plan/prices.json).")
def plan(mapping: str | None, endpoint_url: str | None, region: str, write_rate: str | None,
         report_dir: str | None, sample_rows: int, full: bool, prices: str | None) -> None:
    """Say what a run of MAPPING (default: the demo) will write, cost and take; write nothing.

    Prints per entity the items, their sizes and write units, the write units of the whole load
    (table and each index), its duration at the budget and at the table's capacity, the hottest
    partition keys, and its cost on-demand, provisioned and through Import from S3, with the
    path it recommends. report.json and report.html go to the report folder.
    """
    from jobs.runtimes import current

    mapping_file = mapping or packaged_mapping(DEMO_MAPPINGS["postgres"])
    loaded = load_mapping(mapping_file)
    runtime = current()
    conn = runtime.connection(loaded.source.connection)
    app = f"carve-plan-{loaded.name}"
    runtime.start(app, short=not full)  # the JVM starts while the planner is imported and set up

    from jobs.plan.planner import Planner, PlanOptions

    options = PlanOptions(
        report_dir=Path(report_dir) if report_dir else Path("reports") / run_folder_name(f"{loaded.name}-plan"),
        sample_rows=None if full else sample_rows,
        endpoint_url=endpoint_url or os.environ.get("CARVE_ENDPOINT_URL"),
        region=region,
        write_rate=write_rate,
        prices=prices,
    )
    what = "everything" if full else f"a sample of about {sample_rows:,} rows per entity"
    console.print(f"carve plan [bold]{loaded.name}[/] -> {loaded.target.table} (reading {what}; nothing is written; "
                  f"report in {options.report_dir})")
    planner = Planner(runtime.spark(app, short=not full), loaded, mapping_file, conn, options, console)
    try:
        report = planner.execute()
    finally:
        for label, path in (("report", planner.report.report),
                            ("readable report", planner.report.report and planner.report.report.with_name("report.html"))):
            if path:
                console.print(f"{label}: {path}", markup=False)
    console.print(f"status: {report.status}", markup=False)


@cli.command()
@click.argument("mapping", type=click.Path(dir_okay=False))
@run_options
@click.option("--follow", is_flag=True, help="Repeat every --interval until Ctrl-C (which finishes the cycle it is in).")
@click.option("--interval", default="30s", show_default=True, metavar="30s|5m|1h",
              help="With --follow: the pause between cycles.")
@click.option("--verify", type=click.Choice(["affected", "full"]), default="affected", show_default=True,
              help="After each cycle, compare the items it rewrote and deleted with the table (affected), or "
                   "the whole table with a fresh build of every item (full: a full read).")
@click.option("--status", "show_status", is_flag=True,
              help="Print the saved positions, their lag, the lease and the last cycle; change nothing.")
@click.option("--stop", "stop_syncing", is_flag=True,
              help="Stop syncing MAPPING: drop the replication slot carve made for it (the server keeps WAL for "
                   "it until then) and remove its saved state. The table keeps its items; `carve run` starts "
                   "the sync again.")
def sync(mapping: str, endpoint_url: str | None, region: str, write_rate: str | None, report_dir: str | None,
         follow: bool, interval: str, verify: str, show_status: bool, stop_syncing: bool) -> None:
    """Apply the source's changes since the last sync (or full load) to MAPPING's table.

    Rebuilds every item a changed row feeds, from the source as it is now, with the full load's
    transforms; deletes the items that no longer belong; reads them back; only then saves how
    far it got. Exit status 0 when the (last) cycle is ok.
    """
    from jobs.sync.follow import SyncRequest, interval_seconds, status_lines, stop
    from jobs.sync.follow import sync as run_sync

    loaded = load_mapping(mapping)
    if loaded.sync is None:
        raise click.UsageError(f"{mapping} has no sync section: say how each table's changes are found "
                               "(see 'Keep the table in step' in the README)")
    endpoint_url = endpoint_url or os.environ.get("CARVE_ENDPOINT_URL")
    if show_status and stop_syncing:
        raise click.UsageError("--status changes nothing and --stop removes the sync: ask for one of them")
    if show_status:
        for line in status_lines(loaded, endpoint_url, region):
            console.print(line, markup=False)
        return
    from jobs.runtimes import current

    if stop_syncing:
        runtime = current()
        console.print(f"carve sync {loaded.name} --stop: the table {loaded.target.table} keeps its items", markup=False)
        stop(loaded, runtime.connection(loaded.source.connection), runtime.spark(f"carve-sync-stop-{loaded.name}", short=True),
             endpoint_url, region, lambda line: console.print(f"  {line}", markup=False))
        console.print("stopped: `carve run` starts the sync again (a full load)", markup=False)
        return
    try:
        pause = interval_seconds(interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--interval") from None
    from jobs.pipeline import RunOptions
    from jobs.preflight import writable_dir

    options = RunOptions(
        report_dir=Path(report_dir) if report_dir else Path("reports") / run_folder_name(f"{loaded.name}-sync"),
        endpoint_url=endpoint_url, region=region, write_rate=write_rate)
    writable_dir(options.report_dir)
    runtime = current()
    conn = runtime.connection(loaded.source.connection)
    every = f", every {interval} until Ctrl-C" if follow else ""
    console.print(f"carve sync [bold]{loaded.name}[/] -> {loaded.target.table} ({len(loaded.sync.tables)} tables "
                  f"followed{every}; report in {options.report_dir})")
    sys.exit(run_sync(SyncRequest(loaded, mapping, conn, options, verify, follow, pause), runtime, console))


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


def main(argv: list[str] | None = None) -> int:
    """The console script and the Glue job both run this; the exit status."""
    try:
        # Without standalone mode click returns an Exit's code (ctx.exit) instead of raising it.
        code = cli.main(args=argv, prog_name="carve", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:  # Ctrl-C: click turns KeyboardInterrupt into Abort
        errors.print("interrupted (Ctrl-C); a run's report.json says what was written")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    return code if isinstance(code, int) else 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
