r"""--sink import-s3 end to end: the demo from PostgreSQL over JDBC into a new table by ImportTable.

moto server stands in for S3 and DynamoDB (its ImportTable reads DYNAMODB_JSON, gzip or not, and
creates the table); the run writes the files, starts the import, waits for it, and reconciles the
imported table against the source like any run.

One repair to the stand-in, named here: moto's ImportTable reads the files with py_partiql_parser's
JsonParser, which does not decode JSON escapes (\" \\ \n \uXXXX come through as written) and,
after some of them or an empty map, stops reading the file without counting an error. DynamoDB
reads standard JSON. For this module the in-process moto server reads each line with json.loads
instead. Without it, 18 of the demo's 2,877 items were imported, the import said COMPLETED with
0 errors, and the run's reconcile reported the other 2,859 lost and failed the run.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import py_partiql_parser
import pytest
from rich.console import Console

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.devtools.commands import demo_connection
from jobs.devtools.demo_data import DemoDatabase, create_demo_database
from jobs.pipeline import Pipeline, RunOptions
from jobs.sinks import import_s3
from tests.support.databases import drop_database
from transforms.errors import SinkError
from transforms.mapping import load_mapping

pytestmark = pytest.mark.integration

SCALE = 0.2
BUCKET = "carve-imports"


class JsonLines:
    """What DynamoDB's import does with a DYNAMODB_JSON file: one standard JSON document per line."""

    @staticmethod
    def parse(original: str) -> Iterator[Any]:
        return (json.loads(line) for line in original.splitlines() if line.strip())


@dataclass(frozen=True)
class Imported:
    report: dict[str, Any]
    table: str
    mapping: Any
    files: dict[str, list[dict[str, Any]]]  # key -> the items, in file order
    options: RunOptions


def run(spark, mapping, target: DemoDatabase, options: RunOptions) -> dict[str, Any]:
    mapping_file = packaged_mapping(DEMO_MAPPINGS["postgres"])
    pipeline = Pipeline(spark, mapping, mapping_file, demo_connection(target), options,
                        Console(highlight=False, width=160))
    return pipeline.execute().as_dict()


@pytest.fixture(scope="module")
def imported(spark, moto_endpoint, tmp_path_factory) -> Iterator[Imported]:
    import boto3

    monkeypatch = pytest.MonkeyPatch()
    # The driver's S3 client finds moto through botocore's own setting; the executors get its endpoint.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setattr(import_s3, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(py_partiql_parser, "JsonParser", JsonLines)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    target = DemoDatabase("postgres", database="carve_import_postgres")
    drop_database(target)
    create_demo_database(target, scale=SCALE, seed=7)
    mapping = load_mapping(packaged_mapping(DEMO_MAPPINGS["postgres"]))
    table = f"CarveImport-{uuid.uuid4().hex[:8]}"
    mapping = mapping.model_copy(update={"target": mapping.target.model_copy(update={"table": table})})
    options = RunOptions(tmp_path_factory.mktemp("import") / "run", endpoint_url=moto_endpoint, sink="import-s3",
                         import_prefix=f"s3://{BUCKET}/imports/")
    try:
        report = run(spark, mapping, target, options)
        files = {}
        for entry in s3.list_objects_v2(Bucket=BUCKET, Prefix="imports/").get("Contents", []):
            body = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read())
            files[entry["Key"]] = [json.loads(line) for line in body.decode().splitlines()]
        yield Imported(report, table, mapping, files, options)
    finally:
        monkeypatch.undo()
        drop_database(target)


def test_the_imported_table_reconciles_with_nothing_lost_or_different(imported: Imported) -> None:
    report = imported.report
    assert report["status"] == "ok", report.get("error")
    assert report["items_lost"] == 0 and report["items_mismatched"] == 0
    assert report["items_expected"] > 1000
    assert report["items_written"] == report["items_expected"] == report["import"]["imported_items"]
    assert report["import"]["errors"] == 0 and report["import"]["status"] == "COMPLETED"
    assert report["wcu_consumed"] == 0  # an import consumes no write capacity
    assert report["reconcile"]["found"] == report["items_expected"] and report["reconcile"]["extra"] == 0


def test_the_files_are_gzip_dynamodb_json_with_every_item_once(imported: Imported) -> None:
    files = imported.files
    folder = imported.report["import"]["s3"]
    assert folder.startswith(f"s3://{BUCKET}/imports/{imported.table}-")
    assert {f"s3://{BUCKET}/{key}".rsplit("/", 1)[0] + "/" for key in files} == {folder}
    assert len(files) >= 2  # one per task slot at least
    items = [line["Item"] for lines in files.values() for line in lines]
    keys = [(i["PK"]["S"], i["SK"]["S"]) for i in items]
    assert len(keys) == len(set(keys)) == imported.report["items_expected"]
    assert sorted(f["key"] for f in imported.report["import"]["files"]) == sorted(files)


def test_the_items_in_each_file_are_not_in_key_order(imported: Imported) -> None:
    # In key order every pair of neighbours ascends; in hash order about half of them do.
    for key, lines in imported.files.items():
        keys = [(line["Item"]["PK"]["S"], line["Item"]["SK"]["S"]) for line in lines]
        ascending = sum(a < b for a, b in zip(keys, keys[1:], strict=False)) / (len(keys) - 1)
        assert 0.35 < ascending < 0.65, (key, ascending)


def test_the_import_made_the_table_the_mapping_describes(imported: Imported, aws_client) -> None:
    table = aws_client("dynamodb").describe_table(TableName=imported.table)["Table"]
    target = imported.mapping.target
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [
        (target.key.partition, "HASH"), (target.key.sort, "RANGE")]
    assert sorted(ix["IndexName"] for ix in table.get("GlobalSecondaryIndexes", [])) == sorted(
        ix.name for ix in target.indexes)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_an_existing_table_is_refused_before_anything_is_read_or_staged(imported: Imported, spark, aws_client,
                                                                         tmp_path: Path) -> None:
    options = RunOptions(tmp_path / "again", endpoint_url=imported.options.endpoint_url, sink="import-s3",
                         import_prefix=imported.options.import_prefix)
    target = DemoDatabase("postgres", database="carve_import_postgres_absent")  # never read: it does not exist
    with pytest.raises(SinkError, match=f"table {imported.table} already exists.*only creates a new table"):
        run(spark, imported.mapping, target, options)
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert report["status"] == "failed" and "Nothing was read" in report["error"]
    listed = aws_client("s3").list_objects_v2(Bucket=BUCKET, Prefix="imports/")["Contents"]
    assert len(listed) == len(imported.files)
