"""The Glue runtime adapter: real awsglue argument parsing, Glue's services as test doubles.

awsglue's getResolvedOptions runs for real here (AWSGlueDataplanePython). GlueContext and Job
need the Glue jars, which cannot be had here: FakeGlueContext and FakeGlueJob stand in.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs.runtimes.glue import (
    GlueRuntime,
    JobArgumentError,
    carve_argv,
    job_credentials,
    parse_job_arguments,
    run_glue_job,
    start_runtime,
)
from jobs.runtimes.local import LocalRuntime
from transforms.errors import CarveError

SCRIPT = "/tmp/glue_job.py"
MOMENT = datetime(2026, 11, 28, 9, 30, 0, tzinfo=timezone.utc)


def glue_argv(*extra: str) -> list[str]:
    # What Glue puts on a job script's command line: its own arguments mixed with the job's.
    return [SCRIPT, "--JOB_ID", "j_123", "--JOB_RUN_ID", "jr_456", "--job-bookmark-option", "job-bookmark-disable",
            "--TempDir", "s3://glue-temp/tmp/", "--JOB_NAME", "carve-demo",
            "--carve_mapping", "s3://carve-mappings/store.yaml", "--carve_report_prefix", "s3://carve-reports/runs/",
            *extra]


class FakeGlueJob:  # test double: awsglue.job.Job needs the Glue jars, which cannot run here
    def __init__(self):
        self.inits: list[tuple[str, dict]] = []
        self.commits = 0

    def init(self, name, args):
        self.inits.append((name, args))

    def commit(self):
        self.commits += 1


class FakeGlueContext:  # test double: awsglue.context.GlueContext needs the Glue jars
    def __init__(self):
        self.writes: list[dict] = []

    def write_dynamic_frame_from_options(self, frame, connection_type, connection_options):
        self.writes.append({"frame": frame, "connection_type": connection_type, "options": connection_options})


# --- arguments --------------------------------------------------------------------------------


def test_required_arguments_are_read_by_awsglue_and_optional_ones_when_given():
    args = parse_job_arguments(glue_argv("--carve_write_rate", "50%", "--carve_source_secret", "prod/store",
                                         "--carve_region", "eu-west-1"))
    assert (args.job_name, args.mapping, args.report_prefix) == ("carve-demo", "s3://carve-mappings/store.yaml",
                                                                 "s3://carve-reports/runs/")
    assert (args.write_rate, args.source_secret, args.region) == ("50%", "prod/store", "eu-west-1")
    assert (args.sink, args.endpoint_url, args.source_glue_connection) == ("carve", None, None)
    # Everything getResolvedOptions resolved goes to Job.init, Glue's own arguments included.
    assert args.resolved["JOB_RUN_ID"] == "jr_456" and args.resolved["job_bookmark_option"] == "job-bookmark-disable"


def test_optional_arguments_may_be_written_with_an_equals_sign():
    args = parse_job_arguments(glue_argv("--carve_sink=glue-connector", "--carve_source_glue_connection=store-jdbc"))
    assert (args.sink, args.source_glue_connection) == ("glue-connector", "store-jdbc")


def test_a_missing_required_argument_is_named():
    with pytest.raises(JobArgumentError, match="required: --carve_report_prefix"):
        parse_job_arguments([SCRIPT, "--JOB_NAME", "x", "--carve_mapping", "package:demo.yaml"])


@pytest.mark.parametrize("extra, message", [
    (("--carve_sink", "spark"), "--carve_sink is 'spark'; use one of: carve, glue-connector, import-s3"),
    (("--carve_sink", "import-s3"), "--carve_sink import-s3 and --carve_import_prefix"),
    (("--carve_import_prefix", "s3://b/imports/"), "--carve_sink import-s3 and --carve_import_prefix"),
    (("--carve_sink", "import-s3", "--carve_import_prefix", "/tmp/imports"), "give s3://BUCKET/PREFIX/"),
    (("--carve_source_secret", "a", "--carve_source_glue_connection", "b"), "not both"),
    (("--carve_sink", "glue-connector", "--carve_endpoint_url", "http://127.0.0.1:8000"),
     "cannot target http://127.0.0.1:8000; use --carve_sink carve"),
    (("--carve_command", "migrate"), "--carve_command is 'migrate'; use one of: run, sync"),
    (("--carve_command", "sync", "--carve_sink", "glue-connector"), "sync writes with carve's own writer"),
])
def test_arguments_that_cannot_work_together_are_refused(extra, message):
    with pytest.raises(JobArgumentError, match=message):
        parse_job_arguments(glue_argv(*extra))


def test_the_carve_command_carries_the_options_and_no_credentials():
    args = parse_job_arguments(glue_argv("--carve_write_rate", "1000", "--carve_endpoint_url", "http://127.0.0.1:8000",
                                         "--carve_region", "eu-west-1", "--carve_source_secret", "prod/store"))
    argv = carve_argv(args, Path("/tmp/w/store.yaml"), Path("/tmp/w/report/store-x"))
    assert argv == ["run", "/tmp/w/store.yaml", "--report-dir", "/tmp/w/report/store-x", "--sink", "carve",
                    "--write-rate", "1000", "--endpoint-url", "http://127.0.0.1:8000", "--region", "eu-west-1"]
    assert not any("prod/store" in part for part in argv)


def test_a_sync_job_runs_one_cycle_of_carve_sync():
    args = parse_job_arguments(glue_argv("--carve_command", "sync", "--carve_write_rate", "20%"))
    argv = carve_argv(args, Path("/tmp/w/store.yaml"), Path("/tmp/w/report/store-x"))
    assert argv == ["sync", "/tmp/w/store.yaml", "--report-dir", "/tmp/w/report/store-x", "--write-rate", "20%"]


def test_an_import_job_passes_its_prefix_to_the_run():
    args = parse_job_arguments(glue_argv("--carve_sink", "import-s3", "--carve_import_prefix", "s3://b/carve/imports/"))
    argv = carve_argv(args, Path("/tmp/w/store.yaml"), Path("/tmp/w/report/store-x"))
    assert argv[-4:] == ["--sink", "import-s3", "--import-prefix", "s3://b/carve/imports/"]


def test_the_source_connection_is_pointed_at_the_secret_or_the_glue_connection():
    with_secret = job_credentials(parse_job_arguments(glue_argv("--carve_source_secret", "prod/store")))
    assert (with_secret.secret_id, with_secret.glue_connection) == ("prod/store", None)
    with_glue = job_credentials(parse_job_arguments(glue_argv("--carve_source_glue_connection", "store-jdbc")))
    assert (with_glue.secret_id, with_glue.glue_connection) == (None, "store-jdbc")
    neither = job_credentials(parse_job_arguments(glue_argv()))
    assert (neither.secret_id, neither.glue_connection) == (None, None)  # the environment or profile decides


# --- the runtime ------------------------------------------------------------------------------


def test_started_with_python_the_job_runs_on_local_pyspark_without_job_init(capsys):
    runtime = start_runtime(parse_job_arguments(glue_argv()), spark_submit=False)
    assert isinstance(runtime, LocalRuntime)
    assert "no GlueContext, so no Job.init/commit" in capsys.readouterr().out


def test_on_glue_job_init_gets_the_resolved_arguments_and_commit_is_the_jobs(spark, capsys):
    args = parse_job_arguments(glue_argv())
    job, context = FakeGlueJob(), FakeGlueContext()
    runtime = start_runtime(args, spark_submit=True, session=lambda: spark, services=lambda s: (context, job))
    assert job.inits == [("carve-demo", dict(args.resolved))]
    assert "AWS Glue: GlueContext, Job.init(carve-demo)" in capsys.readouterr().out
    assert runtime.spark("carve-x") is spark
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    runtime.commit()
    assert job.commits == 1


def test_spark_submit_without_the_glue_jars_has_no_glue_services(spark, capsys):
    runtime = start_runtime(parse_job_arguments(glue_argv()), spark_submit=True, session=lambda: spark)
    assert "without the AWS Glue jars" in capsys.readouterr().out  # the real check: no Glue classes on this JVM
    frame = spark.createDataFrame([("a",)], "PK string")
    with pytest.raises(CarveError, match="needs AWS Glue's GlueContext"):
        runtime.write_dynamodb(frame, {"dynamodb.output.tableName": "T"})
    runtime.commit()  # nothing to commit: no error either


def test_the_connector_write_goes_through_the_glue_context(spark):
    context = FakeGlueContext()
    runtime = GlueRuntime(spark, context, FakeGlueJob(), dynamic_frame=lambda df, ctx: ("dynamic", df, ctx))
    frame = spark.createDataFrame([("a",)], "PK string")
    runtime.write_dynamodb(frame, {"dynamodb.output.tableName": "T", "dynamodb.throughput.write.percent": "0.5"})
    [write] = context.writes
    assert write["connection_type"] == "dynamodb"
    assert write["options"] == {"dynamodb.output.tableName": "T", "dynamodb.throughput.write.percent": "0.5"}
    assert write["frame"] == ("dynamic", frame, context)
    with pytest.raises(CarveError, match="cannot target http://127.0.0.1:1"):
        runtime.write_dynamodb(frame, {}, endpoint_url="http://127.0.0.1:1")
    assert len(context.writes) == 1


# --- the job, up to the point where it needs a database ---------------------------------------


@pytest.fixture
def clean_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def buckets(aws_client):
    names = {kind: f"carve-{kind}-{uuid.uuid4().hex[:10]}" for kind in ("mappings", "reports")}
    for name in names.values():
        aws_client("s3").create_bucket(Bucket=name)
    return names


def report_in(aws_client, bucket: str, prefix: str) -> tuple[str, dict]:
    keys = [o["Key"] for o in aws_client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    [key] = [k for k in keys if k.endswith("report.json")]
    return key, json.loads(aws_client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def run_job(aws_client, buckets, *extra: str, job: FakeGlueJob | None = None) -> int:
    argv = [SCRIPT, "--JOB_NAME", "carve-test", "--carve_mapping", f"s3://{buckets['mappings']}/store.yaml",
            "--carve_report_prefix", f"s3://{buckets['reports']}/runs/", *extra]
    fake_job = job or FakeGlueJob()
    return run_glue_job(argv, runtime_factory=lambda args: GlueRuntime(None, FakeGlueContext(), fake_job,
                                                                       credentials=job_credentials(args)),
                        s3=lambda: aws_client("s3"), now=lambda: MOMENT)


def test_a_broken_mapping_fails_the_job_and_its_report_is_still_uploaded(aws_client, buckets, capsys, clean_environ):
    aws_client("s3").put_object(Bucket=buckets["mappings"], Key="store.yaml", Body=b"version: 1\nname: store\n")
    job = FakeGlueJob()
    assert run_job(aws_client, buckets, job=job) == 1
    key, report = report_in(aws_client, buckets["reports"], "runs/")
    assert key == "runs/store-20261128T093000Z/report.json"
    assert report["status"] == "failed" and report["mapping_file"] == f"s3://{buckets['mappings']}/store.yaml"
    assert "store.yaml:" in report["error"] and "source" in report["error"]
    assert "store.yaml:" in capsys.readouterr().out
    assert job.commits == 0


def test_a_missing_mapping_fails_the_job_with_one_line(aws_client, buckets, capsys, clean_environ):
    assert run_job(aws_client, buckets) == 1
    out = capsys.readouterr().out
    assert f"error: cannot read mapping s3://{buckets['mappings']}/store.yaml" in out
    _, report = report_in(aws_client, buckets["reports"], "runs/store-")
    assert report["status"] == "failed"


def test_a_source_secret_that_does_not_exist_stops_the_run_before_spark(aws_client, buckets, capsys, clean_environ,
                                                                         monkeypatch, moto_endpoint):
    mapping = Path("mappings/demo.yaml").read_text(encoding="utf-8")
    aws_client("s3").put_object(Bucket=buckets["mappings"], Key="store.yaml", Body=mapping.encode())
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    monkeypatch.setenv("CARVE_CONNECTION_DEMO_POSTGRES_URL", "jdbc:postgresql://127.0.0.1:1/never-used")
    job = FakeGlueJob()
    assert run_job(aws_client, buckets, "--carve_source_secret", "carve/no-such-secret", job=job) == 1
    printed = capsys.readouterr()
    assert "carve run /tmp/carve-glue-" in printed.out and "--sink carve" in printed.out
    assert "secret 'carve/no-such-secret' cannot be read from Secrets Manager: ResourceNotFoundException" in printed.err
    # The job's secret decided over the URL in the environment, and the environment was left as it was.
    assert "CARVE_CONNECTION_DEMO_POSTGRES_SECRET_ID" not in os.environ
    assert os.environ["CARVE_CONNECTION_DEMO_POSTGRES_URL"] == "jdbc:postgresql://127.0.0.1:1/never-used"
    key, report = report_in(aws_client, buckets["reports"], "runs/demo-")
    assert key == "runs/demo-20261128T093000Z/report.json" and report["status"] == "failed"
    assert job.commits == 0


def test_wrong_arguments_exit_with_2(capsys):
    assert run_glue_job([SCRIPT, "--JOB_NAME", "x"]) == 2
    assert "required: --carve_mapping, --carve_report_prefix" in capsys.readouterr().out
