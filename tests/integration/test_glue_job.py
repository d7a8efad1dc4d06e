"""The Glue job end to end: demo database, mapping and report on S3 (moto), source credentials in
Secrets Manager (moto), items into dynalite.

- jobs/glue_job.py started with plain `python`, as a developer would: local PySpark, no
  Job.init/commit, the report uploaded to S3.
- run_glue_job in-process as on Glue, with GlueContext and Job replaced by test doubles
  (FakeGlueContext, FakeGlueJob: the Glue jars cannot run here): Job.init and commit happen.
- the dead letter: items DynamoDB refuses are written on the driver and uploaded.
- the glue-connector sink: the demo mapping is refused by attribute before anything is
  written; the demo without those attributes goes through FakeGlueContext, which writes what
  the modelled connector mapping (jobs.glue_sink) makes of each row, and carve's
  reconciliation then finds every item exactly as carve built it; the type-trap items
  (TYPE_TRAP_ROWS, tests/data/mappings/fidelity/postgres.yaml) likewise, attribute by attribute.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from jobs.devtools.demo_data import DemoDatabase, create_demo_database
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.runtimes.glue import run_glue_job, start_runtime
from jobs.sinks.glue_connector import connector_item
from jobs.sinks.table import TableAddress, delete_table
from jobs.sinks.transport import HttpTransport
from jobs.sinks.writer import PendingItem, batch_body
from tests.support.databases import drop_database
from tests.support.dynamodb import dynamodb_client, table_count

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCALE = 0.05
# What the Glue connector cannot carry of the demo mapping without changing DynamoDB types.
# balance: numeric with up to 25 digits; notes: `nulls: null`; preferences, metadata, attributes:
# JSON with nulls and keys only some documents have; recent_reviews: reviews without a body;
# tags, categories: sets.
CONNECTOR_REFUSED = {
    "customer": ["balance", "notes", "preferences", "tags"],
    "order": ["metadata"],
    "product": ["attributes", "categories", "recent_reviews"],
}


@pytest.fixture(scope="module")
def demo_db():
    target = DemoDatabase("postgres", database=f"carve_glue_{uuid.uuid4().hex[:8]}")
    create_demo_database(target, scale=SCALE, seed=42)
    yield target
    drop_database(target)


@pytest.fixture
def aws(aws_client, moto_endpoint, dynamodb_endpoint, demo_db, spark, monkeypatch):
    """Buckets and the source secret on moto; the process pointed at them (restored afterwards)."""
    for name in list(os.environ):
        if name.startswith("CARVE_CONNECTION_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    spark.sparkContext.environment.update({name: os.environ[name] for name in LOCAL_AWS_ENV})
    suffix = uuid.uuid4().hex[:10]
    bucket = f"carve-glue-{suffix}"
    aws_client("s3").create_bucket(Bucket=bucket)
    secret = f"carve/demo-{suffix}"
    aws_client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps({
        "engine": "postgres", "host": demo_db.host, "port": demo_db.resolved_port, "dbname": demo_db.database,
        "username": demo_db.resolved_user, "password": demo_db.password}))
    dynamodb = dynamodb_client(dynamodb_endpoint)
    tables: list[str] = []
    yield {"bucket": bucket, "secret": secret, "dynamodb": dynamodb, "tables": tables, "endpoint": dynamodb_endpoint,
           "s3": lambda: aws_client("s3")}
    for table in tables:
        delete_table(dynamodb, table)
    # Job runs set these on purpose; monkeypatch did not, so clear them here.
    for name in list(os.environ):
        if name.startswith("CARVE_CONNECTION_"):
            os.environ.pop(name)


def demo_mapping_on_s3(aws, table: str, drop: dict[str, list[str]] | None = None) -> str:
    yaml = YAML()
    document = yaml.load((REPO / "mappings" / "demo.yaml").read_text(encoding="utf-8"))
    document["target"]["table"] = table
    for entity, names in (drop or {}).items():
        for name in names:
            del document["entities"][entity]["attributes"][name]
        for pattern, spec in list(document.get("patterns", {}).items()):  # a pattern over a dropped list goes too
            if spec["expect"]["entity"] == entity and spec["expect"].get("list") in names:
                del document["patterns"][pattern]
    text = io.StringIO()
    yaml.dump(document, text)
    key = f"mappings/{table}.yaml"
    aws["s3"]().put_object(Bucket=aws["bucket"], Key=key, Body=text.getvalue().encode())
    aws["tables"].append(table)
    return f"s3://{aws['bucket']}/{key}"


def report(aws, prefix: str) -> tuple[str, dict]:
    s3 = aws["s3"]()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=aws["bucket"], Prefix=prefix).get("Contents", [])]
    [key] = [k for k in keys if k.endswith("/report.json")]
    return key, json.loads(s3.get_object(Bucket=aws["bucket"], Key=key)["Body"].read())


def s3_lines(aws, key: str) -> list[dict]:
    body = aws["s3"]().get_object(Bucket=aws["bucket"], Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def count(aws, table: str) -> int:
    return table_count(aws["dynamodb"], table)


class FakeGlueJob:  # test double: awsglue.job.Job needs the Glue jars, which cannot run here
    def __init__(self):
        self.inits, self.commits = [], 0

    def init(self, name, args):
        self.inits.append((name, args))

    def commit(self):
        self.commits += 1


class FakeGlueContext:  # test double: GlueContext's DynamoDB sink needs the Glue jars
    """Writes each row as the modelled connector mapping says (jobs.sinks.glue_connector.connector_item)."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.writes: list[dict] = []

    def write_dynamic_frame_from_options(self, frame, connection_type, connection_options):
        assert connection_type == "dynamodb"
        self.writes.append({"options": dict(connection_options), "partitions": frame.rdd.getNumPartitions()})
        table, batch = connection_options["dynamodb.output.tableName"], []
        transport = HttpTransport(TableAddress(table, self.endpoint, "us-east-1"))

        def send(items: list[PendingItem]) -> None:
            answer = transport.post("BatchWriteItem", batch_body(table, items))
            assert answer.status == 200 and not answer.body.get("UnprocessedItems"), answer

        for row in frame.toLocalIterator():
            batch.append(PendingItem("connector", "", None, json.dumps(connector_item(row, frame.schema)), 1))
            if len(batch) == 25:
                send(batch)
                batch = []
        if batch:
            send(batch)


@contextmanager
def dynamodb_endpoint_from_env(spark, endpoint: str):
    """The glue-connector sink takes no endpoint argument (the real connector cannot honour one):
    carve's own DynamoDB calls (create, describe, reconcile's scan on the executors) find dynalite
    through botocore's AWS_ENDPOINT_URL_DYNAMODB instead, on the driver and in new Python workers."""
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    spark.sparkContext.environment["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    try:
        yield
    finally:
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB")
        spark.sparkContext.environment.pop("AWS_ENDPOINT_URL_DYNAMODB")


def glue_runtime(spark, context, job):
    # The real start_runtime as on Glue (spark-submit), with Glue's services as test doubles;
    # the DynamicFrame conversion is Glue's too, so the double is handed the DataFrame itself.
    return lambda args: start_runtime(args, spark_submit=True, session=lambda: spark,
                                      services=lambda s: (context, job), dynamic_frame=lambda df, ctx: df)


def test_glue_job_script_runs_on_plain_pyspark_and_uploads_its_report(aws):
    table = "CarveDemo"  # package:demo.yaml writes to its own table name
    aws["tables"].append(table)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CARVE_DRIVER_MEMORY": "1g"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    command = [sys.executable, "jobs/glue_job.py", "--JOB_NAME", "carve-local", "--carve_mapping", "package:demo.yaml",
               "--carve_report_prefix", f"s3://{aws['bucket']}/plain/", "--carve_source_secret", aws["secret"],
               "--carve_endpoint_url", aws["endpoint"], "--carve_write_rate", "2000"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "runtime: plain PySpark (started with python)" in done.stdout
    assert "no Job.init/commit" in done.stdout
    key, figures = report(aws, "plain/demo-")
    assert figures["status"] == "ok" and figures["items_lost"] == 0 and figures["items_mismatched"] == 0
    assert figures["items_written"] == figures["items_expected"] == count(aws, table)
    assert figures["mapping_file"] == "package:demo.yaml"
    folder = key.rsplit("/", 1)[0]
    assert figures["quarantine"] == f"s3://{aws['bucket']}/{folder}/quarantine"
    rejected = s3_lines(aws, f"{folder}/quarantine/part-00000.json")
    assert len(rejected) == figures["items_rejected"] > 0
    assert figures["validation"]["data_docs"] == f"s3://{aws['bucket']}/{folder}/data_docs/index.html"


def test_on_glue_the_job_inits_commits_and_reads_its_mapping_from_s3(aws, spark):
    table = f"CarveGlue-{uuid.uuid4().hex[:8]}"
    mapping = demo_mapping_on_s3(aws, table)
    job = FakeGlueJob()
    argv = ["glue_job.py", "--JOB_NAME", "carve-demo", "--JOB_RUN_ID", "jr_1", "--carve_mapping", mapping,
            "--carve_report_prefix", f"s3://{aws['bucket']}/glue/", "--carve_source_secret", aws["secret"],
            "--carve_endpoint_url", aws["endpoint"]]
    code = run_glue_job(argv, runtime_factory=glue_runtime(spark, FakeGlueContext(aws["endpoint"]), job),
                        s3=aws["s3"])
    assert code == 0
    assert [name for name, _ in job.inits] == ["carve-demo"] and job.inits[0][1]["JOB_RUN_ID"] == "jr_1"
    assert job.commits == 1
    _, figures = report(aws, "glue/demo-")
    assert figures["status"] == "ok" and figures["table"] == table
    assert figures["mapping_file"] == mapping
    assert figures["items_written"] == figures["items_expected"] == count(aws, table)


def test_the_connector_sink_refuses_the_demo_mapping_by_attribute_and_writes_nothing(aws, spark, capsys):
    table = f"CarveConnector-{uuid.uuid4().hex[:8]}"
    mapping = demo_mapping_on_s3(aws, table)
    context, job = FakeGlueContext(aws["endpoint"]), FakeGlueJob()
    argv = ["glue_job.py", "--JOB_NAME", "carve-demo", "--carve_mapping", mapping, "--carve_sink", "glue-connector",
            "--carve_report_prefix", f"s3://{aws['bucket']}/refused/", "--carve_source_secret", aws["secret"]]
    with dynamodb_endpoint_from_env(spark, aws["endpoint"]):
        code = run_glue_job(argv, runtime_factory=glue_runtime(spark, context, job), s3=aws["s3"])
    assert code == 1 and job.commits == 0 and context.writes == []
    _, figures = report(aws, "refused/demo-")
    assert figures["status"] == "failed"
    paths = [line.strip().split(" ")[0] for line in figures["error"].splitlines()[1:]]
    assert sorted({re.split(r"[.\[]", path)[0] for path in paths}) == sorted(
        name for names in CONNECTOR_REFUSED.values() for name in names)
    assert "nothing was written" in figures["error"]
    assert count(aws, table) == 0


def test_what_the_connector_can_carry_arrives_exactly_as_carve_built_it(aws, spark):
    table = f"CarveConnector-{uuid.uuid4().hex[:8]}"
    mapping = demo_mapping_on_s3(aws, table, drop=CONNECTOR_REFUSED)
    context, job = FakeGlueContext(aws["endpoint"]), FakeGlueJob()
    argv = ["glue_job.py", "--JOB_NAME", "carve-demo", "--carve_mapping", mapping, "--carve_sink", "glue-connector",
            "--carve_report_prefix", f"s3://{aws['bucket']}/connector/", "--carve_source_secret", aws["secret"],
            "--carve_write_rate", "8000"]
    with dynamodb_endpoint_from_env(spark, aws["endpoint"]):
        code = run_glue_job(argv, runtime_factory=glue_runtime(spark, context, job), s3=aws["s3"])
    _, figures = report(aws, "connector/demo-")
    assert code == 0, figures.get("error")
    [write] = context.writes
    tasks = spark.sparkContext.defaultParallelism
    # dynalite's table is on-demand: 8,000 WCU/s of the assumed 40,000 is 0.2.
    assert write["options"] == {"dynamodb.output.tableName": table, "dynamodb.throughput.write.percent": "0.2",
                                "dynamodb.output.numParallelTasks": str(tasks), "dynamodb.output.retry": "30",
                                "dynamodb.region": "us-east-1"}
    assert write["partitions"] == tasks
    # Reconciliation compared every item in the table with carve's own item JSON.
    assert figures["status"] == "ok" and figures["sink"] == "glue-connector"
    assert figures["items_lost"] == 0 and figures["items_mismatched"] == 0
    assert figures["items_written"] == figures["items_expected"] == count(aws, table) > 0
    assert job.commits == 1


# --- the type traps (jobs/demo_data.py TYPE_TRAP_ROWS) through the modelled connector --------

# tests/data/mappings/fidelity/postgres.yaml's attributes the connector cannot carry: JSON of
# several shapes (maps, lists, strings), arrays holding a NULL, sets, numbers of 20 to 38 digits,
# `nulls: null`. Epoch seconds are whole seconds and go through as bigint.
TRAP_REFUSED = [
    "int_array", "int_array_as_list", "int_array_as_number_set", "json_value", "json_value_as_json", "jsonb_value",
    "jsonb_value_as_json", "numeric_38", "numeric_array", "numeric_array_as_list", "numeric_array_as_number_set",
    "numeric_unbounded", "text_array_as_string_set", "text_value_nulls_null",
]


def test_type_trap_items_are_refused_or_arrive_unchanged_through_the_modelled_connector(spark, demo_db):
    from pyspark.sql import Row

    from jobs.devtools.commands import demo_connection
    from jobs.sinks.glue_connector import ConnectorTypeError, connector_frame
    from jobs.sources.jdbc import read_sources
    from transforms.items import build_items
    from transforms.mapping import load_mapping, referenced_columns
    from transforms.wire import canonical

    mapping = load_mapping(str(REPO / "tests" / "data" / "mappings" / "fidelity" / "postgres.yaml"))
    frames = read_sources(spark, demo_connection(demo_db), mapping, referenced_columns(mapping))
    items = build_items(mapping, frames).where("problem is null").select("pk", "sk", "item").cache()
    assert items.count() == 20  # 25 built, 5 quarantined on purpose (numbers over 38 digits)
    with pytest.raises(ConnectorTypeError) as error:
        connector_frame(items, 2, "PK", "SK")
    refused = sorted({re.split(r"[.\[]", p.split(" ")[0])[0] for p in error.value.problems})
    assert refused == TRAP_REFUSED

    def without_refused(row):
        item = {k: v for k, v in json.loads(row.item).items() if k not in TRAP_REFUSED}
        return Row(pk=row.pk, sk=row.sk, item=json.dumps(item))

    kept = spark.createDataFrame(items.rdd.map(without_refused), "pk string, sk string, item string")
    frame = connector_frame(kept, 2, "PK", "SK")
    expected = {(r.pk, r.sk): canonical(json.loads(r.item)) for r in kept.collect()}
    for numbers in ("emr", "double"):
        written = {}
        for row in frame.collect():
            item = connector_item(row, frame.schema, numbers)
            written[(item["PK"]["S"], item["SK"]["S"])] = canonical(item)
        assert written == expected
    kept_names = {f.name for f in frame.schema.fields}
    assert {"bytea_value", "money_value", "real_value", "double_value", "text_array", "interval_value",
            "timestamptz_value_as_epoch_seconds", "numeric_40_2"} <= kept_names


def test_items_dynamodb_refuses_reach_the_dead_letter_on_s3(aws, spark):
    # The mapping's own keys and index, plus an index of the table's owner keyed on `type` as a
    # number: every demo item carries `type` as a string, so DynamoDB refuses every item
    # (ValidationException) and every item ends in the dead letter, written on the driver and
    # uploaded. (A table with other keys than the mapping's is refused before reading.)
    table = f"CarveDeadLetter-{uuid.uuid4().hex[:8]}"
    mapping = demo_mapping_on_s3(aws, table)

    def key(partition: str, sort: str) -> list[dict]:
        return [{"AttributeName": partition, "KeyType": "HASH"}, {"AttributeName": sort, "KeyType": "RANGE"}]

    aws["dynamodb"].create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK", "GSI1PK", "GSI1SK")]
        + [{"AttributeName": "type", "AttributeType": "N"}],
        KeySchema=key("PK", "SK"),
        GlobalSecondaryIndexes=[
            {"IndexName": "GSI1", "KeySchema": key("GSI1PK", "GSI1SK"), "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "ByType", "KeySchema": [{"AttributeName": "type", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}},
        ])
    argv = ["glue_job.py", "--JOB_NAME", "carve-demo", "--carve_mapping", mapping, "--carve_source_secret", aws["secret"],
            "--carve_report_prefix", f"s3://{aws['bucket']}/dead/", "--carve_endpoint_url", aws["endpoint"]]
    job = FakeGlueJob()
    code = run_glue_job(argv, runtime_factory=glue_runtime(spark, FakeGlueContext(aws["endpoint"]), job),
                        s3=aws["s3"])
    assert code == 1 and job.commits == 0
    key, figures = report(aws, "dead/demo-")
    folder = key.rsplit("/", 1)[0]
    assert figures["status"] == "failed" and "could not be written after retries" in figures["error"]
    assert figures["dead_letter"] == f"s3://{aws['bucket']}/{folder}/dead_letter"
    dead = s3_lines(aws, f"{folder}/dead_letter/part-00000.json")
    assert len(dead) == figures["items_expected"] > 0
    assert all(line["reason"].startswith("ValidationException") for line in dead)
    assert {"entity", "pk", "sk", "item", "reason"} <= set(dead[0])
    assert count(aws, table) == 0
