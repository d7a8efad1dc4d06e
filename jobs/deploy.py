"""`carve deploy`: put the wheel, the Glue job script and the mappings on S3, and create or update
one Glue job per mapping, from a small deploy file. Idempotent: what is already there is left
alone, and the plan says so.

It also writes the least-privilege IAM policy the job role needs beside the deploy file (and,
with --apply-policy, puts it on the role): data actions only on the mappings' tables and their
indexes, the deploy's S3 prefixes, the named Glue connections and the secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError
from pydantic import Field, field_validator

from jobs.aws import aws_errors, error_code
from jobs.runtimes.jvm import ensure_jar
from jobs.sinks.pacing import BudgetSpec
from jobs.storage import parse_s3
from transforms.errors import CarveError
from transforms.mapping import DmsS3, Mapping, Model, load_mapping, load_yaml_model

REPO = Path(__file__).resolve().parent.parent
JOB_SCRIPT = Path(__file__).with_name("glue_job.py")
GLUE_VERSION = "5.1"
HASH_KEY = "carve-sha256"  # S3 object metadata: the content hash deploy compares
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01: zip timestamps fixed, so a rebuild of the same tree is the same wheel

# Data actions: a policy statement granting any of these may not name "*" (or a wildcard ARN).
DATA_ACTION_PREFIXES = ("dynamodb:", "s3:", "secretsmanager:", "glue:Get", "kms:")


class DeployFile(Model):
    version: Literal[1]
    region: str
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = "carve/"
    role: str  # the job role: a name or an ARN; it must exist
    mappings: list[str] = Field(min_length=1)
    job_name_prefix: str = "carve-"
    worker_type: Literal["G.025X", "G.1X", "G.2X", "G.4X", "G.8X"] = "G.1X"
    workers: int = Field(default=2, ge=2)
    timeout_minutes: int = Field(default=120, ge=1)
    max_retries: int = Field(default=0, ge=0, le=10)
    connections: list[str] = []
    source_secret: str | None = None
    write_rate: str | None = None
    sink: Literal["carve", "glue-connector", "import-s3"] = "carve"  # import-s3 stages under <prefix>imports/
    # A Glue cron expression: a scheduled trigger starts each mapping's sync job (mappings with a sync section).
    sync_schedule: str | None = Field(default=None, pattern=r"^cron\(.+\)$")
    tags: dict[str, str] = {}

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        return f"{value}/" if value else ""

    @field_validator("write_rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            BudgetSpec.parse(value)
        return value

    @property
    def role_name(self) -> str:
        return self.role.rsplit("/", 1)[-1]


@dataclass
class Step:
    what: str  # upload | create | update | unchanged | policy
    target: str
    detail: str = ""

    def __str__(self) -> str:
        return f"  {self.what:<9} {self.target}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    policy_file: Path | None = None
    run_commands: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.what in ("upload", "create", "update", "policy")]


# --- the wheel ---------------------------------------------------------------------------------


def build_wheel(out: Path) -> Path:
    """The carve wheel from this source tree (deploy runs from a checkout, as pip installs it editable)."""
    if not (REPO / "pyproject.toml").exists():
        raise CarveError(f"carve deploy builds the wheel from a source checkout; {REPO} has no pyproject.toml")
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                           "--quiet", "--disable-pip-version-check", "-w", str(out)],
                          capture_output=True, text=True, env=env)
    wheels = sorted(out.glob("carve-*.whl"))
    if done.returncode or not wheels:
        raise CarveError(f"building the wheel failed (pip exit {done.returncode}; `make setup` installs what it needs): "
                         f"{done.stderr.strip()[-800:]}")
    return wheels[-1]


def wheel_hash(path: Path) -> str:
    """sha256 over the wheel's members' names and contents: independent of zip timestamps."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as wheel:
        for name in sorted(wheel.namelist()):
            digest.update(name.encode() + b"\0" + wheel.read(name) + b"\0")
    return digest.hexdigest()


def pinned(requirement: str) -> str:
    """The pin of a dependency in pyproject.toml (e.g. great-expectations==1.24.1)."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(rf'"({re.escape(requirement)}==[^"]+)"', text)
    if not match:
        raise CarveError(f"pyproject.toml does not pin {requirement}")
    return match.group(1)


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class Clients:
    s3: Any
    glue: Any
    iam: Any
    sts: Any
    secrets: Any

    @classmethod
    def make(cls, region: str, endpoint_url: str | None) -> "Clients":
        session = boto3.session.Session(region_name=region)
        make = lambda name: session.client(name, endpoint_url=endpoint_url)  # noqa: E731
        return cls(make("s3"), make("glue"), make("iam"), make("sts"), make("secretsmanager"))


def job_arguments(deploy: DeployFile, mapping_uri: str, wheel_uri: str, jar_uri: str) -> dict[str, str]:
    """The DefaultArguments of a carve Glue job (the contract jobs/glue.py reads)."""
    args = {
        "--additional-python-modules": f"{pinned('great-expectations')},{wheel_uri}",
        "--extra-jars": jar_uri,  # carve's Java functions (transforms/jvm)
        "--job-bookmark-option": "job-bookmark-disable",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        "--carve_mapping": mapping_uri,
        "--carve_report_prefix": f"s3://{deploy.bucket}/{deploy.prefix}reports/",
        "--carve_region": deploy.region,
    }
    if deploy.write_rate:
        args["--carve_write_rate"] = deploy.write_rate
    if deploy.sink != "carve":
        args["--carve_sink"] = deploy.sink
    if deploy.sink == "import-s3":
        args["--carve_import_prefix"] = f"s3://{deploy.bucket}/{deploy.prefix}imports/"
    if deploy.source_secret:
        args["--carve_source_secret"] = deploy.source_secret
    elif deploy.connections:
        args["--carve_source_glue_connection"] = deploy.connections[0]
    return args


def sync_arguments(arguments: dict[str, str]) -> dict[str, str]:
    """A sync job's arguments: the run's, for one cycle of `carve sync`, which writes with carve's own writer."""
    kept = {k: v for k, v in arguments.items() if k not in ("--carve_sink", "--carve_import_prefix")}
    return kept | {"--carve_command": "sync"}


def job_definition(deploy: DeployFile, role_arn: str, script_uri: str, arguments: dict[str, str]) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "Role": role_arn,
        "Command": {"Name": "glueetl", "ScriptLocation": script_uri, "PythonVersion": "3"},
        "GlueVersion": GLUE_VERSION,
        "WorkerType": deploy.worker_type,
        "NumberOfWorkers": deploy.workers,
        "Timeout": deploy.timeout_minutes,
        "MaxRetries": deploy.max_retries,
        "DefaultArguments": arguments,
    }
    if deploy.connections:
        definition["Connections"] = {"Connections": list(deploy.connections)}
    return definition


def _differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return [key for key, value in wanted.items() if current.get(key) != value]


def _s3_step(clients: Clients, bucket: str, key: str, body: bytes, digest: str, apply: bool) -> Step:
    uri = f"s3://{bucket}/{key}"
    try:
        head = clients.s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get(HASH_KEY) == digest:
            return Step("unchanged", uri)
        what, detail = "upload", "changed"
    except ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
        what, detail = "upload", "new"
    if apply:
        clients.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={HASH_KEY: digest})
    return Step(what, uri, detail)


def _role_arn(clients: Clients, deploy: DeployFile) -> str:
    try:
        return clients.iam.get_role(RoleName=deploy.role_name)["Role"]["Arn"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            raise CarveError(f"role {deploy.role_name!r} does not exist; create the job role first or fix 'role'") from None
        raise


def _check_bucket(clients: Clients, bucket: str) -> None:
    try:
        clients.s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise CarveError(f"bucket {bucket!r} does not exist; create it or fix 'bucket' in the deploy file") from None
        raise CarveError(f"bucket {bucket!r} cannot be used ({code}); check the name and your access") from None


def deploy(deploy_file: str | Path, endpoint_url: str | None = None, dry_run: bool = False,
           apply_policy: bool = False, wheel: Path | None = None) -> Plan:
    """Make S3, Glue (and with apply_policy the role's inline policy) match the deploy file."""
    with aws_errors(f"carve deploy {deploy_file}: an AWS call failed"):
        return _deploy(Path(deploy_file), endpoint_url, dry_run, apply_policy, wheel)


def _deploy(deploy_file: Path, endpoint_url: str | None, dry_run: bool, apply_policy: bool,
            wheel: Path | None) -> Plan:
    spec: DeployFile = load_yaml_model(deploy_file, DeployFile, "a deploy file")
    base = deploy_file.parent
    # Every mapping is read and checked before anything is built or uploaded.
    mappings = [(path, load_mapping(path)) for path in (base / m if not Path(m).is_absolute() else Path(m)
                                                         for m in spec.mappings)]
    names: dict[str, Path] = {}
    for path, mapping in mappings:
        if mapping.name in names:
            raise CarveError(f"{names[mapping.name]} and {path} are both named {mapping.name!r}; the Glue job is "
                             f"named after the mapping, so give one of them another name")
        names[mapping.name] = path
    if spec.sync_schedule and not any(m.sync for _, m in mappings):
        raise CarveError(f"{deploy_file}: sync_schedule is set but no mapping has a sync section; add one "
                         "(see 'Keep the table in step' in the README) or remove sync_schedule")
    if not JOB_SCRIPT.exists():
        raise CarveError(f"the Glue job script {JOB_SCRIPT} is missing from this checkout")
    clients = Clients.make(spec.region, endpoint_url)
    _check_bucket(clients, spec.bucket)
    role_arn = _role_arn(clients, spec)
    account = clients.sts.get_caller_identity()["Account"]
    plan = Plan()
    apply = not dry_run

    with tempfile.TemporaryDirectory(prefix="carve-wheel-") as tmp:
        wheel = wheel or build_wheel(Path(tmp))
        wheel_key = f"{spec.prefix}wheels/{wheel.name}"
        plan.steps.append(_s3_step(clients, spec.bucket, wheel_key, wheel.read_bytes(), wheel_hash(wheel), apply))
    jar = ensure_jar()
    jar_key = f"{spec.prefix}jars/{jar.name}"  # the name holds the digest of its sources
    jar_bytes = jar.read_bytes()
    plan.steps.append(_s3_step(clients, spec.bucket, jar_key, jar_bytes, hashlib.sha256(jar_bytes).hexdigest(), apply))
    script = JOB_SCRIPT.read_bytes()
    script_key = f"{spec.prefix}scripts/{JOB_SCRIPT.name}"
    plan.steps.append(_s3_step(clients, spec.bucket, script_key, script, hashlib.sha256(script).hexdigest(), apply))

    for path, mapping in mappings:
        body = path.read_bytes()
        key = f"{spec.prefix}mappings/{path.name}"
        plan.steps.append(_s3_step(clients, spec.bucket, key, body, hashlib.sha256(body).hexdigest(), apply))
        arguments = job_arguments(spec, f"s3://{spec.bucket}/{key}", f"s3://{spec.bucket}/{wheel_key}",
                                  f"s3://{spec.bucket}/{jar_key}")
        definition = job_definition(spec, role_arn, f"s3://{spec.bucket}/{script_key}", arguments)
        plan.steps.append(_job_step(clients, spec, account, f"{spec.job_name_prefix}{mapping.name}", definition, apply))
        plan.run_commands.append(f"aws glue start-job-run --region {spec.region} --job-name {spec.job_name_prefix}{mapping.name}")
        if mapping.sync is not None:  # its sync job, and the trigger that repeats it
            sync_job = f"{spec.job_name_prefix}{mapping.name}-sync"
            definition = job_definition(spec, role_arn, f"s3://{spec.bucket}/{script_key}", sync_arguments(arguments))
            plan.steps.append(_job_step(clients, spec, account, sync_job, definition, apply))
            plan.run_commands.append(f"aws glue start-job-run --region {spec.region} --job-name {sync_job}")
            if spec.sync_schedule:
                plan.steps.append(_trigger_step(clients, spec, sync_job, apply))

    policy = job_policy(spec, account, [m for _, m in mappings], _secret_arn(clients, spec, account))
    problems = wildcard_data_actions(policy)
    if problems:  # a bug in job_policy, never the user's input: refuse to hand it out
        raise CarveError("the generated policy grants data actions on wildcards: " + "; ".join(problems))
    plan.policy_file = deploy_file.with_suffix(".policy.json")
    text = json.dumps(policy, indent=2) + "\n"
    same = plan.policy_file.exists() and plan.policy_file.read_text(encoding="utf-8") == text
    plan.steps.append(Step("unchanged" if same else "policy", str(plan.policy_file),
                           f"{len(policy['Statement'])} statements; tables "
                           + ", ".join(sorted({m.target.table for _, m in mappings}))))
    if apply and not same:
        plan.policy_file.write_text(text, encoding="utf-8")
    if apply_policy:
        name = f"carve-{spec.job_name_prefix.strip('-') or 'jobs'}"
        current = _inline_policy(clients, spec.role_name, name)
        if current == policy:
            plan.steps.append(Step("unchanged", f"iam role {spec.role_name} policy {name}"))
        else:
            plan.steps.append(Step("update" if current else "create", f"iam role {spec.role_name} policy {name}"))
            if apply:
                clients.iam.put_role_policy(RoleName=spec.role_name, PolicyName=name, PolicyDocument=json.dumps(policy))
    return plan


def _inline_policy(clients: Clients, role: str, name: str) -> dict | None:
    try:
        document = clients.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise
    return json.loads(document) if isinstance(document, str) else document


def _job_step(clients: Clients, spec: DeployFile, account: str, name: str, definition: dict[str, Any],
              apply: bool) -> Step:
    target = f"glue job {name}"
    arn = f"arn:aws:glue:{spec.region}:{account}:job/{name}"
    try:
        current = clients.glue.get_job(JobName=name)["Job"]
    except ClientError as exc:
        if error_code(exc) != "EntityNotFoundException":
            raise
        if apply:
            clients.glue.create_job(Name=name, Tags=dict(spec.tags), **definition)
        return Step("create", target, f"Glue {GLUE_VERSION}, {spec.workers} x {spec.worker_type}")
    changed = _differences(current, definition)
    tags = clients.glue.get_tags(ResourceArn=arn).get("Tags", {})
    if tags != spec.tags:
        changed.append("Tags")
    if not changed:
        return Step("unchanged", target)
    if apply:
        clients.glue.update_job(JobName=name, JobUpdate=definition)
        if tags != spec.tags:
            if set(tags) - set(spec.tags):
                clients.glue.untag_resource(ResourceArn=arn, TagsToRemove=sorted(set(tags) - set(spec.tags)))
            if spec.tags:
                clients.glue.tag_resource(ResourceArn=arn, TagsToAdd=dict(spec.tags))
    return Step("update", target, ", ".join(changed))


def _trigger_step(clients: Clients, spec: DeployFile, job: str, apply: bool) -> Step:
    """A scheduled trigger that starts `job` on spec.sync_schedule (created started)."""
    name = f"{job}-schedule"
    target = f"glue trigger {name}"
    actions = [{"JobName": job}]
    try:
        current = clients.glue.get_trigger(Name=name)["Trigger"]
    except ClientError as exc:
        if error_code(exc) != "EntityNotFoundException":
            raise
        if apply:
            clients.glue.create_trigger(Name=name, Type="SCHEDULED", Schedule=spec.sync_schedule, Actions=actions,
                                        StartOnCreation=True, Tags=dict(spec.tags))
        return Step("create", target, f"{spec.sync_schedule} starts {job}")
    changed = [k for k, v in (("Schedule", spec.sync_schedule), ("Actions", actions)) if current.get(k) != v]
    if not changed:
        return Step("unchanged", target)
    if apply:
        # Replaced rather than updated: the same on Glue, and moto (which the tests run against) has
        # no UpdateTrigger. Between the two calls no sync is started; none is stopped.
        clients.glue.delete_trigger(Name=name)
        clients.glue.create_trigger(Name=name, Type="SCHEDULED", Schedule=spec.sync_schedule, Actions=actions,
                                    StartOnCreation=True, Tags=dict(spec.tags))
    return Step("update", target, ", ".join(changed))


# --- the policy --------------------------------------------------------------------------------


def _secret_arn(clients: Clients, spec: DeployFile, account: str) -> str | None:
    if not spec.source_secret:
        return None
    if spec.source_secret.startswith("arn:"):
        return spec.source_secret
    try:
        return clients.secrets.describe_secret(SecretId=spec.source_secret)["ARN"]
    except ClientError:
        # Not readable by whoever deploys: the secret's ARN ends in 6 random characters.
        return f"arn:aws:secretsmanager:{spec.region}:{account}:secret:{spec.source_secret}-??????"


def job_policy(spec: DeployFile, account: str, mappings: list[Mapping], secret_arn: str | None) -> dict[str, Any]:
    """What the job role needs, and nothing on "*" for data."""
    region = spec.region
    tables = sorted({m.target.table for m in mappings})
    table_arns = [f"arn:aws:dynamodb:{region}:{account}:table/{t}" for t in tables]
    if spec.sink == "import-s3":  # ImportTable creates the table and writes it; the job only reads it back
        table_actions = ["dynamodb:DescribeTable", "dynamodb:Scan"]
    else:
        table_actions = ["dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:BatchWriteItem",
                         "dynamodb:PutItem", "dynamodb:Scan"]
    statements: list[dict[str, Any]] = [
        {"Sid": "WriteAndReconcileTargetTables", "Effect": "Allow", "Action": table_actions,
         "Resource": table_arns + [f"{arn}/index/*" for arn in table_arns]},
        {"Sid": "ReadArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{spec.bucket}/{spec.prefix}{part}/*" for part in ("wheels", "jars", "scripts", "mappings")]},
        {"Sid": "WriteReports", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{spec.bucket}/{spec.prefix}reports/*"]},
        {"Sid": "ListDeployPrefix", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{spec.bucket}"],
         "Condition": {"StringLike": {"s3:prefix": [f"{spec.prefix}*"]}}},
        {"Sid": "GlueJobLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"arn:aws:logs:{region}:{account}:log-group:/aws-glue/*"]},
        # PutMetricData has no resource-level permissions: "*" narrowed to Glue's namespace.
        {"Sid": "GlueJobMetrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": "Glue"}}},
    ]
    if spec.sink == "import-s3":
        statements += import_statements(spec, account, table_arns)
    statements += sync_statements(region, account, [m for m in mappings if m.sync is not None])
    if spec.connections:
        statements.append({"Sid": "SourceConnections", "Effect": "Allow", "Action": ["glue:GetConnection"],
                           "Resource": [f"arn:aws:glue:{region}:{account}:catalog"]
                           + [f"arn:aws:glue:{region}:{account}:connection/{c}" for c in spec.connections]})
        # A connection in a VPC: Glue attaches network interfaces; EC2 allows no narrower resource here.
        statements.append({"Sid": "ConnectionNetworkInterfaces", "Effect": "Allow",
                           "Action": ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
                                      "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                                      "ec2:DescribeSecurityGroups", "ec2:DescribeVpcEndpoints",
                                      "ec2:DescribeRouteTables", "ec2:CreateTags"],
                           "Resource": "*"})
    if secret_arn:
        statements.append({"Sid": "SourceSecret", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                           "Resource": [secret_arn]})
    return {"Version": "2012-10-17", "Statement": statements}


def sync_statements(region: str, account: str, mappings: list[Mapping]) -> list[dict[str, Any]]:
    """What a sync job adds: rewriting and deleting items (BatchWriteItem's PutRequest and
    DeleteRequest) and reading them back by key, on its targets; its state in the control tables;
    for dms_s3 tables, listing and reading the files in their DMS folders."""
    if not mappings:
        return []
    arn = f"arn:aws:dynamodb:{region}:{account}:table/"
    targets = sorted({m.target.table for m in mappings})
    controls = sorted({m.sync.control_table for m in mappings})
    statements = [
        {"Sid": "SyncTargetTables", "Effect": "Allow",
         "Action": ["dynamodb:DescribeTable", "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem"],
         "Resource": [arn + t for t in targets]},
        {"Sid": "SyncControlTables", "Effect": "Allow",
         "Action": ["dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:GetItem", "dynamodb:UpdateItem"],
         "Resource": [arn + t for t in controls]},
    ]
    folders: dict[str, set[str]] = {}  # bucket -> the DMS table folders in it
    for mapping in mappings:
        for spec in mapping.sync.tables.values():
            if isinstance(spec, DmsS3):
                folder = parse_s3(spec.dms_s3.rstrip("/") + "/")
                folders.setdefault(folder.bucket, set()).add(folder.key)
    if folders:
        statements.append({"Sid": "SyncDmsFiles", "Effect": "Allow", "Action": ["s3:GetObject"],
                           "Resource": [f"arn:aws:s3:::{b}/{k}*" for b in sorted(folders) for k in sorted(folders[b])]})
    for n, bucket in enumerate(sorted(folders)):
        statements.append({"Sid": f"SyncDmsFolders{n}", "Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": [f"arn:aws:s3:::{bucket}"],
                           "Condition": {"StringLike": {"s3:prefix": [f"{k}*" for k in sorted(folders[bucket])]}}})
    return statements


def import_statements(spec: DeployFile, account: str, table_arns: list[str]) -> list[dict[str, Any]]:
    """What --sink import-s3 adds, as DynamoDB's "Requesting a table import" lists it: ImportTable
    and DescribeImport on the tables (an import's ARN is under its table's), the item files under
    <prefix>imports/ written by the job and read by the import, and the import's CloudWatch logs."""
    files = f"arn:aws:s3:::{spec.bucket}/{spec.prefix}imports/*"
    return [
        {"Sid": "ImportTables", "Effect": "Allow", "Action": ["dynamodb:ImportTable", "dynamodb:DescribeImport"],
         "Resource": table_arns + [f"{arn}/import/*" for arn in table_arns]},
        {"Sid": "ImportFiles", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": [files]},
        {"Sid": "ImportLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups",
                    "logs:DescribeLogStreams", "logs:PutLogEvents", "logs:PutRetentionPolicy"],
         "Resource": [f"arn:aws:logs:{spec.region}:{account}:log-group:/aws-dynamodb/*"]},
    ]


def wildcard_data_actions(policy: dict[str, Any]) -> list[str]:
    """Statements that grant a data action on "*" or on a wildcard ARN (every table, bucket, secret)."""
    problems = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        data = [a for a in actions if a == "*" or a.startswith(DATA_ACTION_PREFIXES) or a.endswith(":*")]
        broad = [r for r in resources if _broad(r)]
        if data and broad:
            problems.append(f"{statement.get('Sid', '?')}: {', '.join(data)} on {', '.join(broad)}")
    return problems


def _broad(resource: str) -> bool:
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return True
    name = parts[5]
    if parts[2] == "s3":
        bucket = name.split("/", 1)[0]
        return "*" in bucket or "?" in bucket or name in ("*", "")
    # dynamodb table/<name>[/index/*], secretsmanager secret:<name>-??????, glue connection/<name>
    head = str(PurePosixPath(name.replace(":", "/")).parts[:2])
    return "*" in parts[3] or "*" in parts[4] or "*" in head or name.endswith(("table/*", "secret:*", "connection/*"))
