"""Where a run's files come from and go to: local paths, packaged mappings and S3.

A run always works on local files: the mapping is copied to a local file first (so its
`file:line` errors still point at something), and the report folder is written on the
driver's disk and uploaded afterwards. Rows Spark holds (quarantine, dead letter) are
streamed to the driver and written there as JSON Lines: on a cluster, `df.write` would
leave them on the executors' disks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs import aws
from transforms.errors import CarveError

PACKAGE_PREFIX = "package:"
S3_PREFIX = "s3://"
JSON_LINES_FILE = "part-00000.json"

S3ClientFactory = Callable[[], Any]


class StorageError(CarveError):
    """A mapping or report location is wrong or cannot be reached: check the path and access."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{S3_PREFIX}{self.bucket}/{self.key}"


def is_s3(location: str) -> bool:
    return location.startswith(S3_PREFIX)


def parse_s3(uri: str) -> S3Location:
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(.*)", uri)
    if not match:
        raise StorageError(f"'{uri}' is not an S3 location; write s3://bucket/key")
    return S3Location(match.group(1), match.group(2))


def s3_client(region: str | None = None) -> Any:
    """An S3 client; AWS_ENDPOINT_URL_S3 (read by botocore itself) points it at a local S3."""
    return aws.client("s3", region=region)


# --- mappings ------------------------------------------------------------------------------


def fetch_mapping(spec: str, workdir: Path, client_factory: S3ClientFactory = s3_client) -> Path:
    """A local copy of the mapping `spec`: s3://bucket/key.yaml, package:NAME.yaml or a local path.

    The copy keeps the file's own name, so `file:line` problems name the file the user wrote.
    """
    if spec.startswith(PACKAGE_PREFIX):
        name = spec[len(PACKAGE_PREFIX):]
        resource = resources.files("mappings") / name
        # A wheel shipped with --extra-py-files is a zip: its files are members, not paths.
        if not name or "/" in name or not resource.is_file():
            packaged = sorted(r.name for r in resources.files("mappings").iterdir() if r.name.endswith(".yaml"))
            raise StorageError(f"no packaged mapping '{name}'; packaged mappings are: {', '.join(packaged)}")
        target = workdir / name
        target.write_bytes(resource.read_bytes())
        return target
    if is_s3(spec):
        location = parse_s3(spec)
        name = Path(location.key).name
        if not name:
            raise StorageError(f"'{spec}' names a folder, not a mapping file")
        target = workdir / name
        with aws.aws_errors(f"cannot read mapping {spec}", StorageError):
            client_factory().download_file(location.bucket, location.key, str(target))
        return target
    path = Path(spec)
    if not path.is_file():
        raise StorageError(f"mapping file '{spec}' does not exist")
    return path


# --- report folders ------------------------------------------------------------------------


def run_folder_name(mapping_name: str, now: datetime | None = None) -> str:
    """`<mapping name>-<UTC time>`, the same shape as the local default report folder."""
    moment = now or datetime.now(timezone.utc)
    return f"{mapping_name}-{moment.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


def report_location(prefix: str, folder: str) -> str:
    """Where a run's report folder goes under `prefix` (S3 or a local folder), with a trailing '/'."""
    if is_s3(prefix):
        parse_s3(prefix if prefix.endswith("/") else prefix + "/")
    return prefix.rstrip("/") + "/" + folder + "/"


def upload_folder(local_dir: Path, destination: str, client_factory: S3ClientFactory = s3_client,
                  moves: dict[str, str] | None = None) -> list[str]:
    """Copy every file under `local_dir` to `destination` (s3://bucket/prefix/); returns the URIs.

    report.json is rewritten on the way so the paths it records point at the uploaded files,
    not at the driver's temporary folder (`moves` adds other local paths to rename, such as
    the temporary copy of the mapping).
    """
    base = parse_s3(destination if destination.endswith("/") else destination + "/")
    renames = {str(local_dir): base.uri.rstrip("/"), **(moves or {})}
    client = client_factory()
    uploaded = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(local_dir).as_posix()
        key = base.key + relative
        with aws.aws_errors(f"cannot upload {relative} to {base.uri}", StorageError):
            if path.name == "report.json" and path.parent == local_dir:
                body = relocated_report(path.read_text(encoding="utf-8"), renames)
                client.put_object(Bucket=base.bucket, Key=key, Body=body.encode("utf-8"),
                                  ContentType="application/json")
            else:
                client.upload_file(str(path), base.bucket, key)
        uploaded.append(f"{S3_PREFIX}{base.bucket}/{key}")
    return uploaded


def relocated_report(text: str, renames: dict[str, str]) -> str:
    """report.json with every path at or under a key of `renames` moved to its value."""

    def move(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in renames.items():
                old = old.rstrip(os.sep)
                if value == old or value.startswith(old + os.sep):
                    return new.rstrip("/") + value[len(old):].replace(os.sep, "/")
            return value
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    return json.dumps(move(json.loads(text)), indent=2) + "\n"


def publish_report(local_dir: Path, destination: str, client_factory: S3ClientFactory = s3_client,
                   moves: dict[str, str] | None = None) -> list[str]:
    """Put the report folder where it belongs: uploaded to S3, or copied to a local folder."""
    if is_s3(destination):
        return upload_folder(local_dir, destination, client_factory, moves)
    target = Path(destination)
    if target.resolve() != local_dir.resolve():
        shutil.copytree(local_dir, target, dirs_exist_ok=True)
    return [str(p) for p in sorted(target.rglob("*")) if p.is_file()]


# --- rows to the driver --------------------------------------------------------------------


def write_json_lines(rows: DataFrame, folder: Path) -> Path:
    """Write the rows as JSON Lines into `folder` on the driver's disk; returns the file.

    Spark serialises each row (`to_json`, the same rules as `df.write.json`: nulls left out,
    timestamps ISO-8601); the lines reach the driver one partition at a time.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        stale.unlink()
    target = folder / JSON_LINES_FILE
    lines = rows.select(F.to_json(F.struct(*[F.col(c) for c in rows.columns])).alias("line"))
    with target.open("w", encoding="utf-8") as out:
        for row in lines.toLocalIterator():
            out.write(row.line + "\n")
    return target


def read_json_lines(folder: Path) -> Iterable[dict]:
    for path in sorted(folder.glob("*.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)
