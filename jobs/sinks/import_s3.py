"""DynamoDB Import from S3: the items as gzip DynamoDB JSON files under an S3 prefix, then ImportTable.

For a new table only: ImportTable creates it (keys, indexes and on-demand billing from the mapping)
and loads it without consuming write capacity, at the import's price per GB. Each run writes its
files under a folder of its own (<prefix><table>-<UTC time>/), so an import never reads another
run's files; they stay there for the record (the run's report names them). The run's reconcile
stage then proves the table like any other.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.aws import aws_errors, client, error_code
from jobs.sinks.base import SinkContext, WriteOutcome
from jobs.sinks.table import TableSpec, check_table, create_table_request, dynamodb_client
from jobs.sinks.writer import task_slots
from transforms.errors import SinkError

FILE_BYTES = 256 * 1024 * 1024  # items per file, by their DynamoDB size: a few hundred MB uncompressed
POLL_SECONDS = 5.0
MARK = "carve-import-file:"  # starts an executor's error text, so the driver can show just that


@dataclass(frozen=True)
class S3Prefix:
    bucket: str
    prefix: str  # '' or ending in '/'

    @classmethod
    def parse(cls, uri: str) -> "S3Prefix":
        if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
            raise SinkError(f"--import-prefix {uri!r} is not an S3 location; give s3://BUCKET/PREFIX/")
        bucket, _, prefix = uri[5:].partition("/")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class ImportFile:
    key: str
    items: int
    json_bytes: int
    gzip_bytes: int


class ImportS3Sink:
    name: ClassVar[str] = "import-s3"

    def __init__(self, context: SinkContext) -> None:
        self.context = context
        if not context.import_prefix:
            raise SinkError("--sink import-s3 needs --import-prefix s3://BUCKET/PREFIX/: where the item files go "
                            "before ImportTable reads them")
        self.location = S3Prefix.parse(context.import_prefix)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.folder = S3Prefix(self.location.bucket, f"{self.location.prefix}{context.address.table}-{stamp}/")
        self.spec = TableSpec.of(context.mapping)

    def check(self) -> None:
        address = self.context.address
        if check_table(address, self.spec) is not None:
            raise SinkError(f"table {address.table} already exists at {address.endpoint_url or 'AWS'}: Import from S3 "
                            "only creates a new table. Choose another target.table, delete the table, or write "
                            "with --sink carve. Nothing was read")
        with aws_errors(f"S3 bucket {self.location.bucket} (--import-prefix) cannot be used; nothing was read",
                        SinkError):
            self._s3().head_bucket(Bucket=self.location.bucket)

    def prepare(self) -> None:
        """Nothing: ImportTable creates the table."""

    def describe(self) -> str:
        return f"gzip DynamoDB JSON to {self.folder}, then ImportTable creates {self.context.address.table}"

    def write(self, items: DataFrame, live: Callable[[str], None]) -> WriteOutcome:
        files = self._write_files(items, live)
        written = sum(f.items for f in files)
        arn = self._start_import()
        self.context.say(f"ImportTable started: {arn}")
        done = self._wait(arn, written, live)
        imported, errors = done.get("ImportedItemCount", 0), done.get("ErrorCount", 0)
        json_bytes, gzip_bytes = sum(f.json_bytes for f in files), sum(f.gzip_bytes for f in files)
        notes = [f"{len(files)} files, {json_bytes / 1e6:,.1f} MB of DynamoDB JSON ({gzip_bytes / 1e6:,.1f} MB gzip) "
                 f"under {self.folder}; they stay there"]
        if errors or imported != written:
            notes.append(f"ImportTable imported {imported:,} of {written:,} items ({errors:,} errors): the reasons "
                         f"are in CloudWatch Logs under /aws-dynamodb/imports; reconcile lists the missing items")
        section = {
            "import_arn": arn,
            "status": done.get("ImportStatus"),
            "s3": str(self.folder),
            "files": [f.__dict__ for f in files],
            "items_in_files": written,
            "json_bytes": json_bytes,
            "gzip_bytes": gzip_bytes,
            "processed_items": done.get("ProcessedItemCount", 0),
            "imported_items": imported,
            "errors": errors,
        }
        return WriteOutcome(
            items_written=imported,
            detail=f"{imported:,} imported from {len(files)} files, {errors:,} errors",
            notes=tuple(notes),
            report={"import": section},
        )

    # --- the files ----------------------------------------------------------------------------

    def _write_files(self, items: DataFrame, live: Callable[[str], None]) -> list[ImportFile]:
        """One gzip file per partition, the items hash-ordered: sorted keys would load one
        DynamoDB partition at a time."""
        total_size = items.agg(F.sum("size")).first()[0] or 0
        files = max(task_slots(self.context.spark), math.ceil(total_size / FILE_BYTES))
        live(f"writing {files} files to {self.folder}")
        rows = (items.select("pk", "sk", "item")
                .repartition(files, "pk", "sk")
                .sortWithinPartitions(F.xxhash64("pk", "sk")))
        upload = partial(upload_partition, bucket=self.folder.bucket, folder=self.folder.prefix,
                         region=self.context.address.region, endpoint_url=self._s3().meta.endpoint_url)
        try:
            written = rows.rdd.mapPartitionsWithIndex(upload).collect()
        except Exception as exc:  # an executor's failure arrives wrapped in Py4J's text
            text = str(exc)
            reason = text[text.index(MARK) + len(MARK):].splitlines()[0].strip() if MARK in text else type(exc).__name__
            raise SinkError(f"writing the import files to {self.folder} failed: {reason}; the table was not "
                            "created") from None
        return [ImportFile(*row) for row in written]

    def _s3(self) -> Any:
        return client("s3", region=self.context.address.region)

    # --- the import ---------------------------------------------------------------------------

    def _start_import(self) -> str:
        request = create_table_request(self.spec)
        # The same folder gives the same token: a retried call does not start a second import.
        token = hashlib.sha256(str(self.folder).encode()).hexdigest()[:36]
        table = self.context.address.table
        with aws_errors(f"ImportTable {table} from {self.folder}", SinkError):
            started = dynamodb_client(self.context.address).import_table(
                ClientToken=token,
                S3BucketSource={"S3Bucket": self.folder.bucket, "S3KeyPrefix": self.folder.prefix},
                InputFormat="DYNAMODB_JSON",
                InputCompressionType="GZIP",
                TableCreationParameters=request,
            )
        return started["ImportTableDescription"]["ImportArn"]

    def _wait(self, arn: str, items: int, live: Callable[[str], None]) -> dict[str, Any]:
        """DescribeImport until it ends, then the table ACTIVE; the import's description."""
        dynamodb = dynamodb_client(self.context.address)
        table = self.context.address.table
        try:
            while True:
                with aws_errors(f"DescribeImport {arn}", SinkError):
                    status = dynamodb.describe_import(ImportArn=arn)["ImportTableDescription"]
                state = status["ImportStatus"]
                live(f"ImportTable {state.lower()}: {status.get('ProcessedItemCount', 0):,} of {items:,} items "
                     f"processed, {status.get('ErrorCount', 0):,} errors")
                if state == "COMPLETED":
                    break
                if state in ("FAILED", "CANCELLED", "CANCELLING"):
                    raise SinkError(f"ImportTable {arn} ended {state} ({status.get('FailureCode') or 'no code'}); "
                                    f"see CloudWatch Logs under /aws-dynamodb/imports. Delete table {table} if it "
                                    "exists before running again")
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self.context.say(f"interrupted: the import {arn} goes on in DynamoDB; follow it with "
                             "aws dynamodb describe-import, then run carve reconcile")
            raise
        with aws_errors(f"waiting for the imported table {table}", SinkError):
            dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 300})
        return status


def upload_partition(index: int, rows: Iterator[Any], *, bucket: str, folder: str, region: str,
                     endpoint_url: str | None) -> Iterator[tuple[str, int, int, int]]:
    """On an executor: the partition's items as one gzip file of {"Item": ...} lines, uploaded;
    yields (key, items, JSON bytes, gzip bytes), nothing for an empty partition."""
    import boto3

    count = json_bytes = 0
    with tempfile.TemporaryFile() as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as out:
            for row in rows:
                line = f'{{"Item":{row.item}}}\n'.encode()
                out.write(line)
                count += 1
                json_bytes += len(line)
        if not count:
            return
        gzip_bytes = raw.tell()
        raw.seek(0)
        key = f"{folder}part-{index:05d}.json.gz"
        s3 = boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint_url)
        try:
            s3.upload_fileobj(raw, bucket, key)  # multipart above 8 MB
        except Exception as exc:  # botocore's text may quote the request: only its code leaves here
            raise RuntimeError(f"{MARK} PutObject s3://{bucket}/{key}: {error_code(exc)}") from None
    yield key, count, json_bytes, gzip_bytes

