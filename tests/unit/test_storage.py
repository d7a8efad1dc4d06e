"""jobs.storage against a real moto S3 on loopback: mappings in, report folders out."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs.storage import (
    StorageError,
    fetch_mapping,
    parse_s3,
    publish_report,
    read_json_lines,
    report_location,
    run_folder_name,
    write_json_lines,
)
from transforms.errors import MappingError
from transforms.mapping import load_mapping


@pytest.fixture
def bucket(aws_client):
    name = f"carve-test-{uuid.uuid4().hex[:12]}"
    aws_client("s3").create_bucket(Bucket=name)
    return name


def test_s3_locations_parse_and_bad_ones_say_what_to_write():
    assert parse_s3("s3://my-bucket/a/b.yaml").key == "a/b.yaml"
    assert parse_s3("s3://my-bucket/a/b.yaml").bucket == "my-bucket"
    with pytest.raises(StorageError, match="write s3://bucket/key"):
        parse_s3("s3:/my-bucket/x")


def test_a_mapping_from_s3_keeps_its_name_and_its_line_numbers(tmp_path, aws_client, bucket):
    broken = "version: 1\nname: store\nsource: {connection: db}\ntarget: {table: Store, key: {partition: PK}}\n" \
             "entities:\n  c:\n    from: public.c\n    key: {PK: \"C#{id}\"}\n    attributes: {x: {column: y, as: nope}}\n"
    aws_client("s3").put_object(Bucket=bucket, Key="mappings/store.yaml", Body=broken.encode())
    local = fetch_mapping(f"s3://{bucket}/mappings/store.yaml", tmp_path, lambda: aws_client("s3"))
    assert local == tmp_path / "store.yaml"
    assert local.read_text() == broken
    with pytest.raises(MappingError) as error:
        load_mapping(str(local))
    assert f"{local}:9" in str(error.value)


def test_a_missing_s3_mapping_is_one_line_without_a_traceback(tmp_path, aws_client, bucket):
    with pytest.raises(StorageError, match=r"cannot read mapping s3://.*/nope.yaml: (404|NoSuchKey)"):
        fetch_mapping(f"s3://{bucket}/nope.yaml", tmp_path, lambda: aws_client("s3"))


def test_packaged_mappings_are_read_as_package_data(tmp_path):
    local = fetch_mapping("package:demo.yaml", tmp_path)
    assert local.parent == tmp_path and load_mapping(str(local)).name == "demo"
    with pytest.raises(StorageError, match="packaged mappings are: demo.yaml, demo_mariadb.yaml"):
        fetch_mapping("package:nope.yaml", tmp_path)


def test_report_folders_are_named_by_mapping_and_utc_time():
    moment = datetime(2026, 3, 1, 12, 30, 5, tzinfo=timezone.utc)
    folder = run_folder_name("demo", moment)
    assert folder == "demo-20260301T123005Z"
    assert report_location("s3://b-1/reports", folder) == "s3://b-1/reports/demo-20260301T123005Z/"
    assert report_location("s3://b-1/reports/", folder) == "s3://b-1/reports/demo-20260301T123005Z/"


def test_the_report_folder_is_uploaded_with_paths_pointing_at_s3(tmp_path, aws_client, bucket):
    local = tmp_path / "demo-20260301T123005Z"
    (local / "quarantine").mkdir(parents=True)
    (local / "quarantine" / "part-00000.json").write_text('{"entity":"c"}\n')
    (local / "data_docs").mkdir()
    (local / "data_docs" / "index.html").write_text("<html/>")
    (local / "report.json").write_text(json.dumps({
        "status": "ok", "quarantine": str(local / "quarantine"), "report": str(local / "report.json"),
        "mapping_file": "/tmp/work/demo.yaml", "validation": {"data_docs": str(local / "data_docs" / "index.html")},
    }))
    destination = f"s3://{bucket}/runs/demo-20260301T123005Z/"
    uploaded = publish_report(local, destination, lambda: aws_client("s3"),
                              moves={"/tmp/work/demo.yaml": "package:demo.yaml"})
    s3 = aws_client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="runs/")["Contents"])
    assert keys == ["runs/demo-20260301T123005Z/data_docs/index.html",
                    "runs/demo-20260301T123005Z/quarantine/part-00000.json",
                    "runs/demo-20260301T123005Z/report.json"]
    assert len(uploaded) == 3
    report = json.loads(s3.get_object(Bucket=bucket, Key="runs/demo-20260301T123005Z/report.json")["Body"].read())
    assert report["quarantine"] == destination + "quarantine"
    assert report["report"] == destination + "report.json"
    assert report["validation"]["data_docs"] == destination + "data_docs/index.html"
    assert report["mapping_file"] == "package:demo.yaml"
    body = s3.get_object(Bucket=bucket, Key="runs/demo-20260301T123005Z/quarantine/part-00000.json")["Body"].read()
    assert body == b'{"entity":"c"}\n'


def test_an_upload_to_a_missing_bucket_names_the_destination(tmp_path, aws_client):
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(StorageError, match=r"cannot upload report.json to s3://carve-no-such-bucket-x/r/: NoSuchBucket"):
        publish_report(tmp_path, "s3://carve-no-such-bucket-x/r/", lambda: aws_client("s3"))


def test_rows_reach_the_driver_as_json_lines_like_spark_writes_them(spark, tmp_path):
    rows = spark.createDataFrame(
        [("c", "C#1", None, "bad key", "{\"PK\":{\"S\":\"C#1\"}}"), ("o", "C#2", "O#1", "too big", None)],
        "entity string, pk string, sk string, reason string, item string",
    ).repartition(3)
    folder = tmp_path / "quarantine"
    folder.mkdir()
    (folder / "stale.json").write_text('{"old": true}\n')
    written = write_json_lines(rows, folder)
    assert written == folder / "part-00000.json"
    got = sorted(read_json_lines(folder), key=lambda r: r["entity"])
    # Nulls are left out, as Spark's JSON writer does.
    assert got == [{"entity": "c", "pk": "C#1", "reason": "bad key", "item": "{\"PK\":{\"S\":\"C#1\"}}"},
                   {"entity": "o", "pk": "C#2", "sk": "O#1", "reason": "too big"}]


def test_no_rows_still_leave_an_empty_file(spark, tmp_path):
    rows = spark.createDataFrame([], "entity string, pk string")
    written = write_json_lines(rows, tmp_path / "dead_letter")
    assert written.read_text() == ""
    assert list(read_json_lines(tmp_path / "dead_letter")) == []


def test_a_local_report_prefix_gets_a_copy(tmp_path):
    local = tmp_path / "work" / "demo-x"
    local.mkdir(parents=True)
    (local / "report.json").write_text("{}")
    files = publish_report(local, str(tmp_path / "out" / "demo-x"))
    assert files == [str(tmp_path / "out" / "demo-x" / "report.json")]
    assert Path(files[0]).read_text() == "{}"
