"""The AWS Glue runtime adapter: the Glue job's arguments in, the same `carve run` out.

The only module that imports awsglue, and only inside functions. `run_glue_job(argv)`:

1. reads the job arguments with awsglue's getResolvedOptions (required ones always, the
   optional ones when they are on the command line: getResolvedOptions only knows required
   names);
2. starts the runtime: launched by spark-submit (AWS Glue, the Glue Docker image) it uses the
   launcher's Spark session, and GlueContext + Job.init when the Glue jars are there; launched
   by `python jobs/glue_job.py` it is carve's local PySpark, without Job.init/commit (the log
   says which);
3. copies the mapping to a local file (s3://, package:, or a path) and calls
   `jobs.cli.main(["run", ...])` with the runtime installed: the runtime resolves the mapping's
   source connection from the secret or Glue connection named in the arguments (names travel,
   never credentials, and nothing is written to os.environ);
4. uploads the report folder to `<carve_report_prefix><mapping>-<UTC time>/`, whatever
   happened, and commits the Glue job when the run succeeded.

Job bookmarks are never relied on: carve reads whole tables and proves the result by
reconciliation, and bookmarks do not work in the Glue Docker image anyway.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.runtimes import Runtime, installed
from jobs.runtimes.gateway import remember_classes
from jobs.runtimes.local import LocalRuntime
from jobs.sinks.registry import DEFAULT_SINK, sink_names
from jobs.sources.connections import Connection, SourceCredentials
from jobs.storage import (
    PACKAGE_PREFIX,
    StorageError,
    fetch_mapping,
    is_s3,
    parse_s3,
    publish_report,
    report_location,
    run_folder_name,
    s3_client,
)
from transforms.errors import CarveError, MappingError, SinkError

REQUIRED = ("JOB_NAME", "carve_mapping", "carve_report_prefix")
OPTIONAL = ("carve_write_rate", "carve_sink", "carve_endpoint_url", "carve_source_secret",
            "carve_source_glue_connection", "carve_region", "carve_import_prefix", "carve_command")
COMMANDS = ("run", "sync")  # sync: one cycle of `carve sync` (a scheduled trigger repeats it)
SINKS = sink_names()

console = Console(highlight=False, soft_wrap=True)


class JobArgumentError(CarveError):
    """The Glue job's arguments are wrong: fix the job's DefaultArguments or the run's arguments."""


@dataclass(frozen=True)
class JobArguments:
    job_name: str
    mapping: str  # s3://bucket/key.yaml, package:NAME.yaml or a local path
    report_prefix: str  # s3://bucket/prefix/ (or a local folder)
    write_rate: str | None = None  # passed through as carve's --write-rate: "1000" or "50%"
    sink: str = DEFAULT_SINK
    endpoint_url: str | None = None
    source_secret: str | None = None  # a Secrets Manager secret id, not a secret
    source_glue_connection: str | None = None
    region: str | None = None
    import_prefix: str | None = None  # s3://bucket/prefix/ for --carve_sink import-s3
    command: str = "run"
    resolved: Mapping[str, Any] = field(default_factory=dict, repr=False)  # everything, for Job.init


def present_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """The names among `names` given in argv as `--name value` or `--name=value`."""
    given = {arg[2:].split("=", 1)[0] for arg in argv[1:] if arg.startswith("--")}
    return [name for name in names if name in given]


def parse_job_arguments(argv: list[str]) -> JobArguments:
    """Glue's argv (script name first) as JobArguments, read by awsglue's getResolvedOptions."""
    from awsglue.utils import GlueArgumentError, getResolvedOptions

    try:
        resolved = getResolvedOptions(argv, list(REQUIRED) + present_options(argv, OPTIONAL))
    except GlueArgumentError as exc:
        raise JobArgumentError(f"job arguments: {exc}") from None
    args = JobArguments(
        job_name=resolved["JOB_NAME"],
        mapping=resolved["carve_mapping"],
        report_prefix=resolved["carve_report_prefix"],
        write_rate=resolved.get("carve_write_rate") or None,
        sink=resolved.get("carve_sink") or DEFAULT_SINK,
        endpoint_url=resolved.get("carve_endpoint_url") or None,
        source_secret=resolved.get("carve_source_secret") or None,
        source_glue_connection=resolved.get("carve_source_glue_connection") or None,
        region=resolved.get("carve_region") or None,
        import_prefix=resolved.get("carve_import_prefix") or None,
        command=resolved.get("carve_command") or "run",
        resolved=dict(resolved),
    )
    _check(args)
    return args


def _check(args: JobArguments) -> None:
    if args.command not in COMMANDS:
        raise JobArgumentError(f"--carve_command is '{args.command}'; use one of: {', '.join(COMMANDS)}")
    if args.command == "sync" and args.sink != DEFAULT_SINK:
        raise JobArgumentError(f"--carve_command sync writes with carve's own writer; leave out --carve_sink {args.sink}")
    if args.sink not in SINKS:
        raise JobArgumentError(f"--carve_sink is '{args.sink}'; use one of: {', '.join(SINKS)}")
    if args.source_secret and args.source_glue_connection:
        raise JobArgumentError("give --carve_source_secret or --carve_source_glue_connection, not both")
    if args.sink == "glue-connector" and args.endpoint_url:
        raise JobArgumentError("the Glue DynamoDB connector has no documented endpoint option and cannot target "
                               f"{args.endpoint_url}; use --carve_sink carve for a local endpoint")
    if (args.sink == "import-s3") != bool(args.import_prefix):
        raise JobArgumentError("--carve_sink import-s3 and --carve_import_prefix s3://BUCKET/PREFIX/ go together")
    if args.import_prefix and not args.import_prefix.startswith("s3://"):
        raise JobArgumentError(f"--carve_import_prefix {args.import_prefix}: give s3://BUCKET/PREFIX/")
    for name, value in (("--carve_mapping", args.mapping), ("--carve_report_prefix", args.report_prefix)):
        if is_s3(value):
            try:
                parse_s3(value if name == "--carve_mapping" else value.rstrip("/") + "/")
            except StorageError as exc:
                raise JobArgumentError(f"{name}: {exc}") from None
    if args.mapping.startswith(PACKAGE_PREFIX) and not args.mapping.endswith((".yaml", ".yml")):
        raise JobArgumentError(f"--carve_mapping {args.mapping}: name a packaged file, e.g. package:demo.yaml")


def carve_argv(args: JobArguments, mapping_file: Path, report_dir: Path) -> list[str]:
    """The `carve` command line for this job: the same options as the console script, no credentials."""
    argv = [args.command, str(mapping_file), "--report-dir", str(report_dir)]
    if args.command == "run":
        argv += ["--sink", args.sink]
    if args.write_rate:
        argv += ["--write-rate", args.write_rate]
    if args.endpoint_url:
        argv += ["--endpoint-url", args.endpoint_url]
    if args.region:
        argv += ["--region", args.region]
    if args.import_prefix:
        argv += ["--import-prefix", args.import_prefix]
    return argv


def job_credentials(args: JobArguments) -> SourceCredentials:
    """Where the job's source credentials are: its secret or Glue connection decides over anything else."""
    return SourceCredentials(args.source_secret, args.source_glue_connection, args.region)


# --- the runtime ---------------------------------------------------------------------------


class GlueRuntime:
    """Spark from the launcher (spark-submit), with Glue's services when the Glue jars are there."""

    def __init__(self, spark: Any, glue_context: Any = None, job: Any = None,
                 dynamic_frame: Callable[[Any, Any], Any] | None = None,
                 credentials: SourceCredentials | None = None):
        self._spark = spark
        self._glue_context = glue_context
        self._job = job
        self._dynamic_frame = dynamic_frame or _dynamic_frame_from_df
        self.credentials = credentials or SourceCredentials()
        self.name = "AWS Glue (GlueContext)" if glue_context is not None else "spark-submit without the Glue jars"

    def start(self, app_name: str, short: bool = False) -> None:
        pass  # Glue's session exists before the job script runs

    def spark(self, app_name: str, short: bool = False) -> Any:
        # Runtime settings only: the launcher fixed the rest (the JVM too: `short` changes
        # nothing). UTC, so timestamps convert the same everywhere; the codegen limit and the
        # py4j classes as in jobs.runtimes.local.
        remember_classes(self._spark)
        self._spark.conf.set("spark.sql.session.timeZone", "UTC")
        self._spark.conf.set("spark.sql.codegen.hugeMethodLimit", "8000")
        # Source identifiers are case-sensitive (a table may have both `name` and `Name`).
        self._spark.conf.set("spark.sql.caseSensitive", "true")
        return self._spark

    def connection(self, name: str) -> Connection:
        return self.credentials.connection(name)

    def write_dynamodb(self, frame: Any, connection_options: Mapping[str, str], endpoint_url: str | None = None) -> None:
        if self._glue_context is None:
            LocalRuntime().write_dynamodb(frame, connection_options)
        if endpoint_url:
            raise SinkError(f"the Glue DynamoDB connector cannot target {endpoint_url}; use the carve sink")
        dynamic_frame = self._dynamic_frame(frame, self._glue_context)
        self._glue_context.write_dynamic_frame_from_options(
            frame=dynamic_frame, connection_type="dynamodb", connection_options=dict(connection_options))

    def commit(self) -> None:
        if self._job is not None:
            self._job.commit()


def _dynamic_frame_from_df(frame: Any, glue_context: Any) -> Any:
    from awsglue.dynamicframe import DynamicFrame

    return DynamicFrame.fromDF(frame, glue_context, "carve_items")


def glue_services(spark: Any) -> tuple[Any, Any] | None:
    """(GlueContext, Job) when the Glue jars are on the JVM's class path, else None."""
    from py4j.java_gateway import JavaClass

    if not isinstance(spark.sparkContext._jvm.com.amazonaws.services.glue.GlueContext, JavaClass):
        return None
    from awsglue.context import GlueContext
    from awsglue.job import Job

    glue_context = GlueContext(spark.sparkContext)
    return glue_context, Job(glue_context)


def _session() -> Any:
    from pyspark.sql import SparkSession

    return SparkSession.builder.getOrCreate()


def start_runtime(
    args: JobArguments,
    spark_submit: bool | None = None,
    session: Callable[[], Any] = _session,
    services: Callable[[Any], tuple[Any, Any] | None] = glue_services,
    dynamic_frame: Callable[[Any, Any], Any] | None = None,
) -> Runtime:
    """The runtime for this job, said in the log.

    spark_submit: launched by spark-submit (AWS Glue and the Glue Docker image launch job
    scripts so; PySpark then finds PYSPARK_GATEWAY_PORT set). Otherwise the script was started
    with `python` and carve builds its own local session.
    """
    if spark_submit is None:
        spark_submit = bool(os.environ.get("PYSPARK_GATEWAY_PORT"))
    if not spark_submit:
        console.print("runtime: plain PySpark (started with python): carve's local Spark session; no GlueContext, "
                      "so no Job.init/commit")
        return LocalRuntime(job_credentials(args))
    spark = session()
    found = services(spark)
    if found is None:
        console.print("runtime: spark-submit without the AWS Glue jars: the launcher's Spark session; no GlueContext, "
                      "so no Job.init/commit")
        return GlueRuntime(spark, credentials=job_credentials(args))
    glue_context, job = found
    job.init(args.job_name, dict(args.resolved))
    console.print(f"runtime: AWS Glue: GlueContext, Job.init({args.job_name}); job bookmarks are not used")
    return GlueRuntime(spark, glue_context, job, dynamic_frame, job_credentials(args))


# --- the job ---------------------------------------------------------------------------------


def _failure_report(folder: Path, args: JobArguments, error: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    report = {"mapping_file": args.mapping, "job_name": args.job_name, "status": "failed", "error": error,
              "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def run_glue_job(
    argv: list[str],
    runtime_factory: Callable[[JobArguments], Runtime] = start_runtime,
    s3: Callable[[], Any] = s3_client,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> int:
    """The Glue job: exit status 0 when carve's run succeeded, 1 when it failed, 2 for wrong arguments."""
    try:
        args = parse_job_arguments(argv)
    except JobArgumentError as exc:
        console.print(f"error: {exc}", markup=False)
        return 2
    runtime = runtime_factory(args)
    workdir = Path(tempfile.mkdtemp(prefix="carve-glue-"))
    job = _Job(args, workdir, now)
    try:
        with installed(runtime):
            code = job.run(s3)
    finally:
        code = job.publish(s3)
        shutil.rmtree(workdir, ignore_errors=True)
    if code == 0:
        runtime.commit()
    return code


class _Job:
    """One job run's files: the local copy of the mapping and the report folder, until published."""

    def __init__(self, args: JobArguments, workdir: Path, now: Callable[[], datetime]):
        self.args = args
        self.workdir = workdir
        self.now = now
        self.mapping_file: Path | None = None
        self.code = 1
        # Until the mapping is read its name is not known: a failure report is filed under the file's name.
        self._place(Path(args.mapping.removeprefix(PACKAGE_PREFIX)).stem)

    def _place(self, name: str) -> None:
        folder = run_folder_name(name, self.now())
        self.destination = report_location(self.args.report_prefix, folder)
        # A local prefix is written in place; an S3 one on the driver's disk first, then uploaded.
        self.report_dir = self.workdir / "report" / folder if is_s3(self.destination) else Path(self.destination)

    def run(self, s3: Callable[[], Any]) -> int:
        from jobs.cli import main

        args = self.args
        try:
            self.mapping_file = fetch_mapping(args.mapping, self.workdir, s3)
            mapping = _load(self.mapping_file)
        except CarveError as exc:
            console.print(f"error: {exc}", markup=False)
            _failure_report(self.report_dir, args, str(exc))
            return 1
        self._place(mapping.name)
        command = carve_argv(args, self.mapping_file, self.report_dir)
        console.print("carve " + " ".join(shlex.quote(part) for part in command), markup=False)
        self.code = main(command)
        return self.code

    def publish(self, s3: Callable[[], Any]) -> int:
        """Save the report folder whatever happened; the exit status, 1 if it could not be saved."""
        if not (self.report_dir / "report.json").exists():
            _failure_report(self.report_dir, self.args, "the run stopped before writing its report; see the job log")
        moves = {str(self.mapping_file): self.args.mapping} if self.mapping_file is not None else {}
        try:
            publish_report(self.report_dir, self.destination, s3, moves)
        except StorageError as exc:
            console.print(f"error: the report could not be saved: {exc}", markup=False)
            return 1
        console.print(f"report folder: {self.destination}", markup=False)
        return self.code


def _load(mapping_file: Path) -> Any:
    from transforms.mapping import load_mapping

    try:
        return load_mapping(str(mapping_file))
    except MappingError as exc:
        for problem in exc.problems:
            console.print(str(problem), markup=False)
        raise
