"""`carve deploy` end to end against moto server on 127.0.0.1 (S3, Glue, IAM, STS, Secrets Manager).

The wheel is built for real (once for the module, and once more where idempotency of a rebuild
is the point); every object and job is read back from moto.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from jobs.cli import main
from jobs.deploy import (
    JOB_SCRIPT,
    Clients,
    DeployFile,
    build_wheel,
    deploy,
    job_arguments,
    job_policy,
    pinned,
    wildcard_data_actions,
)
from jobs.devtools.local_stack import free_port
from jobs.runtimes.jvm import ensure_jar
from transforms.errors import CarveError, MappingError
from transforms.mapping import load_mapping

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def aws(moto_url):
    session = boto3.session.Session(region_name=REGION)
    clients = {name: session.client(name, endpoint_url=moto_url) for name in ("s3", "glue", "iam", "secretsmanager")}
    requests.post(f"{moto_url}/moto-api/reset")
    clients["s3"].create_bucket(Bucket="carve-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    clients["iam"].create_role(RoleName="carve-glue", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    clients["secretsmanager"].create_secret(Name="store-db", SecretString=json.dumps(
        {"username": "carve", "password": "not-in-any-argument", "engine": "postgres", "host": "db", "port": 5432,
         "dbname": "store"}))
    return clients


def deploy_file(tmp_path: Path, **changes) -> Path:
    shutil.copy(MAPPINGS / "demo.yaml", tmp_path / "demo.yaml")
    # A second job: the MariaDB demo under its own name (job names come from mapping names).
    mariadb = (MAPPINGS / "demo_mariadb.yaml").read_text().replace("name: demo\n", "name: demo_mariadb\n", 1)
    (tmp_path / "demo_mariadb.yaml").write_text(mariadb)
    lines = {
        "version": "1", "region": REGION, "bucket": "carve-artifacts", "prefix": "carve/", "role": "carve-glue",
        "mappings": "[demo.yaml, demo_mariadb.yaml]", "workers": "4", "worker_type": "G.1X",
        "connections": "[store-db-vpc]", "source_secret": "store-db", "write_rate": '"50%"',
        "tags": "{team: data}", **changes,
    }
    path = tmp_path / "deploy.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in lines.items() if v is not None), encoding="utf-8")
    return path


def objects(aws) -> dict[str, dict]:
    listing = aws["s3"].list_objects_v2(Bucket="carve-artifacts").get("Contents", [])
    return {o["Key"]: o for o in listing}


def test_dry_run_changes_nothing_and_the_run_creates_jobs_with_the_agreed_arguments(aws, moto_url, wheel, tmp_path):
    path = deploy_file(tmp_path)

    plan = deploy(path, endpoint_url=moto_url, dry_run=True, wheel=wheel)
    assert [s.what for s in plan.steps] == ["upload"] * 4 + ["create", "upload", "create", "policy"]
    assert objects(aws) == {} and aws["glue"].get_jobs()["Jobs"] == []
    assert not plan.policy_file.exists()

    plan = deploy(path, endpoint_url=moto_url, wheel=wheel)
    jar = ensure_jar()
    assert sorted(objects(aws)) == [f"carve/jars/{jar.name}", "carve/mappings/demo.yaml", "carve/mappings/demo_mariadb.yaml",
                                    "carve/scripts/glue_job.py", f"carve/wheels/{wheel.name}"]
    uploaded = aws["s3"].get_object(Bucket="carve-artifacts", Key=f"carve/jars/{jar.name}")["Body"].read()
    assert uploaded == jar.read_bytes()
    body = aws["s3"].get_object(Bucket="carve-artifacts", Key="carve/scripts/glue_job.py")["Body"].read()
    assert body == JOB_SCRIPT.read_bytes()

    job = aws["glue"].get_job(JobName="carve-demo")["Job"]
    assert job["GlueVersion"] == "5.1" and job["WorkerType"] == "G.1X" and job["NumberOfWorkers"] == 4
    assert job["Command"] == {"Name": "glueetl", "ScriptLocation": "s3://carve-artifacts/carve/scripts/glue_job.py",
                              "PythonVersion": "3"}
    assert job["Role"].endswith(":role/carve-glue")
    assert job["Connections"] == {"Connections": ["store-db-vpc"]}
    assert job["DefaultArguments"] == {
        "--additional-python-modules": f"{pinned('great-expectations')},s3://carve-artifacts/carve/wheels/{wheel.name}",
        "--extra-jars": f"s3://carve-artifacts/carve/jars/{jar.name}",
        "--job-bookmark-option": "job-bookmark-disable",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        "--carve_mapping": "s3://carve-artifacts/carve/mappings/demo.yaml",
        "--carve_report_prefix": "s3://carve-artifacts/carve/reports/",
        "--carve_region": REGION,
        "--carve_write_rate": "50%",
        "--carve_source_secret": "store-db",
    }
    assert "not-in-any-argument" not in json.dumps(job, default=str)
    assert aws["glue"].get_job(JobName="carve-demo_mariadb")["Job"]["DefaultArguments"]["--carve_mapping"].endswith(
        "/mappings/demo_mariadb.yaml")
    assert plan.run_commands[0] == f"aws glue start-job-run --region {REGION} --job-name carve-demo"


def test_a_second_run_changes_nothing_even_with_a_rebuilt_wheel_and_a_changed_file_updates_just_that(
        aws, moto_url, wheel, tmp_path):
    path = deploy_file(tmp_path)
    deploy(path, endpoint_url=moto_url, wheel=wheel)
    before = {k: o["LastModified"] for k, o in objects(aws).items()}

    plan = deploy(path, endpoint_url=moto_url)  # builds the wheel again
    assert plan.changes == [] and {s.what for s in plan.steps} == {"unchanged"}
    assert {k: o["LastModified"] for k, o in objects(aws).items()} == before

    (tmp_path / "demo.yaml").write_text((tmp_path / "demo.yaml").read_text() + "# tuned\n")
    plan = deploy(path, endpoint_url=moto_url, wheel=wheel)
    assert [(s.what, s.target) for s in plan.changes] == [("upload", "s3://carve-artifacts/carve/mappings/demo.yaml")]


class UpdateJobRecorder:
    """Test double for glue:UpdateJob only: moto 5.2.5 does not implement it (NotImplementedError).
    Everything else in these tests is moto server."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, **kwargs) -> dict:
        self.calls.append(kwargs)
        return {"JobName": kwargs["JobName"]}


def test_a_changed_setting_updates_every_job_and_says_which_fields(aws, moto_url, wheel, tmp_path, monkeypatch):
    deploy(deploy_file(tmp_path), endpoint_url=moto_url, wheel=wheel)
    recorder = UpdateJobRecorder()
    make = Clients.make

    def with_recorder(region, endpoint_url):
        clients = make(region, endpoint_url)
        clients.glue.update_job = recorder
        return clients

    monkeypatch.setattr(Clients, "make", staticmethod(with_recorder))
    plan = deploy(deploy_file(tmp_path, workers="6", tags="{team: data, cost: migration}"), endpoint_url=moto_url,
                  wheel=wheel)

    updates = [s for s in plan.changes if s.what == "update"]
    assert [(s.target, s.detail) for s in updates] == [("glue job carve-demo", "NumberOfWorkers, Tags"),
                                                       ("glue job carve-demo_mariadb", "NumberOfWorkers, Tags")]
    assert [c["JobName"] for c in recorder.calls] == ["carve-demo", "carve-demo_mariadb"]
    assert {c["JobUpdate"]["NumberOfWorkers"] for c in recorder.calls} == {6}
    tags = aws["glue"].get_tags(ResourceArn=f"arn:aws:glue:{REGION}:123456789012:job/carve-demo")["Tags"]
    assert tags == {"team": "data", "cost": "migration"}  # tags are moto's own (TagResource)


def test_two_mappings_with_one_name_are_refused_before_anything_is_uploaded(aws, moto_url, wheel, tmp_path):
    path = deploy_file(tmp_path)
    (tmp_path / "demo_mariadb.yaml").write_text((MAPPINGS / "demo_mariadb.yaml").read_text())

    with pytest.raises(CarveError, match="both named 'demo'"):
        deploy(path, endpoint_url=moto_url, wheel=wheel)
    assert objects(aws) == {}


def test_the_cli_prints_the_plan_and_says_when_nothing_changed(aws, moto_url, tmp_path, capsys):
    path = deploy_file(tmp_path)

    assert main(["deploy", str(path), "--endpoint-url", moto_url, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "create    glue job carve-demo" in dry and "run without --dry-run" in dry
    assert main(["deploy", str(path), "--endpoint-url", moto_url, "--apply-policy"]) == 0
    assert main(["deploy", str(path), "--endpoint-url", moto_url, "--apply-policy"]) == 0
    again = capsys.readouterr().out.split("carve deploy")[-1]
    assert "nothing to change" in again
    document = aws["iam"].get_role_policy(RoleName="carve-glue", PolicyName="carve-carve")["PolicyDocument"]
    policy = json.loads(document) if isinstance(document, str) else document
    assert policy == json.loads((tmp_path / "deploy.policy.json").read_text())


def test_a_missing_bucket_or_role_or_a_bad_file_fails_before_anything_is_uploaded(aws, moto_url, wheel, tmp_path):
    with pytest.raises(Exception, match="bucket 'no-such-bucket' does not exist"):
        deploy(deploy_file(tmp_path, bucket="no-such-bucket"), endpoint_url=moto_url, wheel=wheel)
    with pytest.raises(Exception, match="role 'nobody' does not exist"):
        deploy(deploy_file(tmp_path, role="nobody"), endpoint_url=moto_url, wheel=wheel)
    (tmp_path / "broken.yaml").write_text("version: 1\nname: broken\n")
    with pytest.raises(MappingError, match="broken.yaml"):
        deploy(deploy_file(tmp_path, mappings="[demo.yaml, broken.yaml]"), endpoint_url=moto_url, wheel=wheel)
    with pytest.raises(MappingError, match=r"deploy.yaml:\d+ workers"):
        deploy(deploy_file(tmp_path, workers="1"), endpoint_url=moto_url, wheel=wheel)
    assert objects(aws) == {}


# --- the policy ---------------------------------------------------------------------------------


def spec(**changes) -> DeployFile:
    return DeployFile(**{"version": 1, "region": REGION, "bucket": "carve-artifacts", "role": "carve-glue",
                         "mappings": ["demo.yaml"], "connections": ["store-db-vpc"], "source_secret": "store-db",
                         **changes})


def test_the_policy_names_only_the_target_tables_and_no_wildcard_data_resources():
    mappings = [load_mapping(MAPPINGS / "demo.yaml")]
    policy = job_policy(spec(), "123456789012", mappings, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:store-db-AbCdEf")

    assert wildcard_data_actions(policy) == []
    dynamo = [s for s in policy["Statement"] if any(a.startswith("dynamodb:") for a in s["Action"])]
    assert [r for s in dynamo for r in s["Resource"]] == [
        "arn:aws:dynamodb:eu-west-1:123456789012:table/CarveDemo",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/CarveDemo/index/*",
    ]
    resources = [r for s in policy["Statement"] for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert "arn:aws:glue:eu-west-1:123456789012:connection/store-db-vpc" in resources
    assert "arn:aws:secretsmanager:eu-west-1:123456789012:secret:store-db-AbCdEf" in resources


def test_an_import_job_may_import_into_its_tables_and_stage_files_under_its_prefix_and_write_nothing_itself():
    mappings = [load_mapping(MAPPINGS / "demo.yaml")]
    deploy_file = spec(sink="import-s3", connections=[], source_secret=None, prefix="carve")
    policy = job_policy(deploy_file, "123456789012", mappings, None)

    assert wildcard_data_actions(policy) == []
    actions = {s["Sid"]: s["Action"] for s in policy["Statement"]}
    assert actions["WriteAndReconcileTargetTables"] == ["dynamodb:DescribeTable", "dynamodb:Scan"]
    assert actions["ImportTables"] == ["dynamodb:ImportTable", "dynamodb:DescribeImport"]
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert resources["ImportTables"] == ["arn:aws:dynamodb:eu-west-1:123456789012:table/CarveDemo",
                                         "arn:aws:dynamodb:eu-west-1:123456789012:table/CarveDemo/import/*"]
    assert resources["ImportFiles"] == ["arn:aws:s3:::carve-artifacts/carve/imports/*"]
    assert resources["ImportLogs"] == ["arn:aws:logs:eu-west-1:123456789012:log-group:/aws-dynamodb/*"]
    arguments = job_arguments(deploy_file, "s3://m", "s3://w", "s3://j")
    assert arguments["--carve_sink"] == "import-s3"
    assert arguments["--carve_import_prefix"] == "s3://carve-artifacts/carve/imports/"
    assert "ImportTables" not in {s["Sid"] for s in job_policy(spec(), "123456789012", mappings, None)["Statement"]}


@pytest.mark.parametrize("statement", [
    {"Action": ["dynamodb:BatchWriteItem"], "Resource": "*"},
    {"Action": "dynamodb:*", "Resource": ["arn:aws:dynamodb:eu-west-1:1:table/*"]},
    {"Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::*/carve/*"]},
    {"Action": ["secretsmanager:GetSecretValue"], "Resource": ["arn:aws:secretsmanager:*:1:secret:db"]},
    {"Action": ["glue:GetConnection"], "Resource": ["arn:aws:glue:eu-west-1:1:connection/*"]},
    {"Action": "*", "Resource": "*"},
])
def test_the_checker_rejects_wildcards_on_data_actions(statement):
    assert wildcard_data_actions({"Statement": [{"Sid": "Bad", "Effect": "Allow", **statement}]}) != []



SYNC_SECTION = """
sync:
  control_table: carve-sync-state
  tables:
    public.customer: {watermark: updated_at}
    public.address: {watermark: updated_at}
    public.orders: {dms_s3: "s3://carve-dms/cdc/public/orders/"}
    public.order_line: {dms_s3: "s3://carve-dms/cdc/public/order_line/"}
    public.product: {watermark: updated_at}
    public.payment: {watermark: updated_at}
    public.review: {watermark: updated_at}
"""


def syncing_deploy_file(tmp_path: Path, schedule: str) -> Path:
    """The deploy file with the demo mapping following its source (a sync section) on `schedule`."""
    path = deploy_file(tmp_path, sync_schedule=f'"{schedule}"')
    with (tmp_path / "demo.yaml").open("a", encoding="utf-8") as demo:
        demo.write(SYNC_SECTION)
    return path


def test_a_mapping_that_syncs_gets_a_sync_job_and_a_scheduled_trigger(aws, moto_url, wheel, tmp_path):
    path = syncing_deploy_file(tmp_path, "cron(0/15 * * * ? *)")

    plan = deploy(path, endpoint_url=moto_url, wheel=wheel)
    assert [(s.what, s.target) for s in plan.steps if s.target.startswith("glue") and "sync" in s.target] == [
        ("create", "glue job carve-demo-sync"), ("create", "glue trigger carve-demo-sync-schedule")]
    sync_job = aws["glue"].get_job(JobName="carve-demo-sync")["Job"]
    run_job = aws["glue"].get_job(JobName="carve-demo")["Job"]
    assert sync_job["DefaultArguments"] == run_job["DefaultArguments"] | {"--carve_command": "sync"}
    trigger = aws["glue"].get_trigger(Name="carve-demo-sync-schedule")["Trigger"]
    assert (trigger["Type"], trigger["Schedule"], trigger["Actions"]) == (
        "SCHEDULED", "cron(0/15 * * * ? *)", [{"JobName": "carve-demo-sync"}])
    with pytest.raises(aws["glue"].exceptions.EntityNotFoundException):
        aws["glue"].get_job(JobName="carve-demo_mariadb-sync")  # no sync section, no sync job
    assert f"aws glue start-job-run --region {REGION} --job-name carve-demo-sync" in plan.run_commands

    policy = json.loads(plan.policy_file.read_text())
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["SyncTargetTables"]["Action"] == ["dynamodb:DescribeTable", "dynamodb:BatchWriteItem",
                                                        "dynamodb:BatchGetItem"]
    assert statements["SyncTargetTables"]["Resource"] == [f"arn:aws:dynamodb:{REGION}:123456789012:table/CarveDemo"]
    assert statements["SyncControlTables"]["Resource"] == [
        f"arn:aws:dynamodb:{REGION}:123456789012:table/carve-sync-state"]
    assert statements["SyncDmsFiles"] == {  # the DMS folders of the dms_s3 tables, read only
        "Sid": "SyncDmsFiles", "Effect": "Allow", "Action": ["s3:GetObject"],
        "Resource": ["arn:aws:s3:::carve-dms/cdc/public/order_line/*", "arn:aws:s3:::carve-dms/cdc/public/orders/*"]}
    assert statements["SyncDmsFolders0"] == {
        "Sid": "SyncDmsFolders0", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::carve-dms"],
        "Condition": {"StringLike": {"s3:prefix": ["cdc/public/order_line/*", "cdc/public/orders/*"]}}}
    assert wildcard_data_actions(policy) == []

    again = deploy(path, endpoint_url=moto_url, wheel=wheel)
    assert [s.what for s in again.steps if s.target.startswith("glue") and "sync" in s.target] == ["unchanged"] * 2
    changed = deploy(syncing_deploy_file(tmp_path, "cron(0 * * * ? *)"), endpoint_url=moto_url, wheel=wheel)
    assert [(s.what, s.detail) for s in changed.steps if s.target.startswith("glue trigger")] == [("update", "Schedule")]
    assert aws["glue"].get_trigger(Name="carve-demo-sync-schedule")["Trigger"]["Schedule"] == "cron(0 * * * ? *)"


def test_a_schedule_without_a_mapping_that_syncs_is_refused(aws, moto_url, wheel, tmp_path):
    with pytest.raises(CarveError, match="sync_schedule is set but no mapping has a sync section"):
        deploy(deploy_file(tmp_path, sync_schedule='"cron(0 * * * ? *)"'), endpoint_url=moto_url, wheel=wheel)
    assert objects(aws) == {}
