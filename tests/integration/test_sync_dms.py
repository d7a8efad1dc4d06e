"""`carve sync` from the files an AWS DMS task writes to S3 (moto server), on the real servers,
into dynalite.

No DMS runs here: each step's SQL runs on the database and the test writes, beside it, the
files DMS writes for it in DMS's documented layout (CHAP_Target.S3 in the DMS user guide):
per table a folder SCHEMA/TABLE/ under the endpoint's BucketFolder, a full-load file
LOAD00000001.csv (no Op: IncludeOpForFullLoad false), then CDC files named by time with the Op
column first (I, U, D), the commit time (TimestampColumnName), the row (after an update, before
a delete) and the before-image columns of the task's add-before-image-columns rule (prefix BI_,
empty on inserts and deletes); column names in the first row (AddColumnName=true). The steps are
those of test_sync_cdc, in CSV, gzip CSV (CompressionType=GZIP), Parquet (DataFormat=parquet)
and date folders (DatePartitionEnabled); after each the synced table equals a fresh build key by
key, with the same counts of items rewritten and deleted as the other change sources.

On PostgreSQL only: what a DMS file becomes does not depend on the engine but for the values'
SQL, which tests/unit/test_sync_dms.py shows for MariaDB (the walk through MariaDB images runs
in test_sync_cdc); a second engine here would cost the suite another minute and a half.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import uuid
from collections.abc import Iterator

import pytest

from jobs.sinks.table import TableAddress
from jobs.sync.changes import FullLoadNeededError
from jobs.sync.state import ControlTable
from tests.integration.test_sync_cdc import FIRST_ROWS, SCHEMA, STEPS
from tests.support.databases import drop_database
from tests.support.sync import Store, digests, new_store
from transforms.errors import SourceError

pytestmark = pytest.mark.integration

COLUMNS = {"customer": ["customer_id", "name", "tier"], "product": ["product_id", "sku", "name"],
           "orders": ["order_id", "customer_id", "status"], "order_line": ["order_id", "line_no", "product_id", "qty"]}

FULL_LOAD = {
    "customer": [(1, "Ada", "gold"), (2, "Bo", "basic"), (3, "Cy", "closed")],
    "product": [(1, "P-1", "Kettle"), (2, "P-2", "Teapot"), (3, "P-3", "Cup")],
    "orders": [(10, 1, "paid"), (11, 1, "new"), (12, 2, "paid")],
    "order_line": [(10, 1, 1, 1), (10, 2, 2, 2), (11, 1, 2, 1), (12, 1, 3, 6)],
}

# What DMS writes for each of test_sync_cdc's steps, per table: (Op, row, row before an update).
RECORDS = [
    {"customer": [("I", (4, "Di", "basic"), None)],
     "orders": [("I", (13, 4, "new"), None), ("U", (10, 1, "shipped"), (10, 1, "paid"))],
     "order_line": [("I", (13, 1, 1, 3), None), ("I", (13, 2, 3, 1), None)]},
    {"order_line": [("U", (12, 1, 3, 9), (12, 1, 3, 6))],
     "product": [("U", (2, "P-2", "Teapot XL"), (2, "P-2", "Teapot"))]},
    {"order_line": [("D", (10, 2, 2, 2), None)],
     "customer": [("U", (2, "Bo", "closed"), (2, "Bo", "basic"))]},
    {"order_line": [("D", (12, 1, 3, 9), None)],
     "orders": [("D", (12, 2, "paid"), None), ("U", (11, 4, "new"), (11, 1, "new"))]},
    {"product": [("U", (1, "P-1b", "Kettle"), (1, "P-1", "Kettle")), ("D", (3, "P-3", "Cup"), None)],
     "customer": [("U", (5, "Ada", "gold"), (1, "Ada", "gold"))],
     "order_line": [("U", (13, 2, 1, 1), (13, 2, 3, 1))]},
]
FORMATS = ["csv", "csv.gz", "parquet", "dated csv", "csv"]


class Dms:
    """The files a DMS task with an S3 target writes, written by hand into moto's S3."""

    def __init__(self, s3, bucket: str, folder: str):
        self.s3, self.bucket, self.folder = s3, bucket, folder
        self.files = 0

    def table_folder(self, table: str) -> str:
        return f"{self.folder}/public/{table}"

    def full_load(self) -> None:
        for table, rows in FULL_LOAD.items():
            self.put(f"{self.table_folder(table)}/LOAD00000001.csv", self.csv([COLUMNS[table], *rows]))

    def cdc(self, records: dict, form: str, header: bool = True, before_images: bool = True) -> None:
        self.files += 1
        name = f"20261207-10{self.files:02d}000000"
        for table, changes in records.items():
            columns = COLUMNS[table]
            head = ["Op", "dms_commit_ts", *columns] + ([f"BI_{c}" for c in columns] if before_images else [])
            rows = [[op, f"2026-12-07 10:{self.files:02d}:00.000000", *row] +
                    (list(old or [None] * len(columns)) if before_images else []) for op, row, old in changes]
            folder = self.table_folder(table)
            if form == "parquet":
                self.put(f"{folder}/{name}.parquet", self.parquet(head, rows))
            elif form == "csv.gz":
                self.put(f"{folder}/{name}.csv.gz", gzip.compress(self.csv([head, *rows])))
            elif form == "dated csv":
                self.put(f"{folder}/2026/12/07/{name}.csv", self.csv([head, *rows]))
            else:
                self.put(f"{folder}/{name}.csv", self.csv(([head] if header else []) + rows))

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    @staticmethod
    def csv(rows: list) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(["" if v is None else v for v in row] for row in rows)
        return out.getvalue().encode()

    @staticmethod
    def parquet(head: list[str], rows: list) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(head)})
        out = io.BytesIO()
        pq.write_table(table, out)
        return out.getvalue()


@pytest.fixture(scope="module")
def store(spark, dynamodb_endpoint, moto_endpoint, tmp_path_factory) -> Iterator[tuple[Store, Dms]]:
    import boto3

    before = os.environ.get("AWS_ENDPOINT_URL_S3")
    os.environ["AWS_ENDPOINT_URL_S3"] = moto_endpoint  # carve's S3 client goes to moto
    suffix = uuid.uuid4().hex[:6]
    bucket = f"carve-dms-{suffix}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    dms = Dms(s3, bucket, "cdc")
    follow = {t: f"{{dms_s3: 's3://{bucket}/{dms.table_folder(t)}/'}}" for t in COLUMNS}
    store = new_store(spark, "postgres", "dmsstore", dynamodb_endpoint, tmp_path_factory.mktemp("sync-dms"), suffix,
                      follow, SCHEMA, FIRST_ROWS)
    try:
        yield store, dms
    finally:
        drop_database(store.target)
        if before is None:
            os.environ.pop("AWS_ENDPOINT_URL_S3", None)
        else:
            os.environ["AWS_ENDPOINT_URL_S3"] = before


def test_each_sync_of_dms_files_leaves_the_table_equal_to_a_fresh_full_load(aws_spark, store):
    store, dms = store
    dms.full_load()  # DMS's full load is there before carve's: carve's full load starts after it
    # DMS reads PostgreSQL by logical replication: a delete's row and an update's before-image carry
    # the replica identity only, which must hold what the item keys and joins read.
    with pytest.raises(SourceError, match=r"sync.tables.public.product: a delete or a key change must carry sku .*"
                                          r'Run: ALTER TABLE "public"."product" REPLICA IDENTITY FULL'):
        store.pipeline(aws_spark).execute()  # before reading anything
    store.execute("ALTER TABLE product REPLICA IDENTITY FULL; ALTER TABLE orders REPLICA IDENTITY FULL")
    report = store.pipeline(aws_spark).execute()
    assert report.ok, report.error
    assert store.sync(aws_spark).sync["items_rewritten"] == 0  # the LOAD files are before the saved position
    for (step, (sql, (rewritten, deleted))), records, form in zip(STEPS.items(), RECORDS, FORMATS, strict=True):
        store.execute(sql)
        dms.cdc(records, form)
        report = store.sync(aws_spark)
        assert report.ok, f"{step}: {report.error}"
        assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark), step
        assert (report.sync["items_rewritten"], report.sync["items_deleted"]) == (rewritten, deleted), (step, report.sync)
    assert report.sync["changes"]["public.product"] == {"update": 1, "delete": 1}
    assert report.sync["positions_after"]["public.product"] == {  # the last file applied, ordered and named
        "file": "1/20261207-1005000000", "key": f"{dms.table_folder('product')}/20261207-1005000000.csv"}
    assert report.sync["positions_after"]["public.orders"] == report.sync["positions_before"]["public.orders"]
    assert store.sync(aws_spark).sync["items_rewritten"] == 0  # nothing new: the position is at the last file
    assert digests(store.endpoint, store.mapping.target.table) == store.fresh_full_load(aws_spark)


def test_files_carve_cannot_read_whole_stop_the_sync_where_they_are(aws_spark, store):
    store, dms = store
    control = ControlTable(TableAddress(store.mapping.sync.control_table, store.endpoint, "us-east-1"))
    saved = control.positions(store.mapping.name)
    store.execute("UPDATE orders SET status = 'late' WHERE order_id = 10")
    update = {"orders": [("U", (10, 1, "late"), (10, 1, "shipped"))]}
    folder = f"s3://{dms.bucket}/{dms.table_folder('orders')}"

    dms.cdc(update, "csv", before_images=False)
    with pytest.raises(SourceError) as refused:
        store.sync(aws_spark)
    assert str(refused.value) == (
        f"{folder}/20261207-1006000000.csv: updates of public.orders must carry the values before them of customer_id, "
        "order_id (item keys and joins read them), and the file has no BI_customer_id, BI_order_id. Add to the DMS "
        "task's table mapping a transformation rule with rule-action add-before-image-columns for this table, "
        "column-prefix 'BI_' and column-filter non-lob, then run a full load")
    assert control.positions(store.mapping.name) == saved

    dms.s3.delete_object(Bucket=dms.bucket, Key=f"{dms.table_folder('orders')}/20261207-1006000000.csv")
    dms.cdc(update, "csv", header=False)
    with pytest.raises(SourceError, match=r"20261207-1007000000.csv: the file does not name the columns customer_id, "
                                          r"order_id of public.orders .*set AddColumnName=true"):
        store.sync(aws_spark)
    assert control.positions(store.mapping.name) == saved

    dms.s3.delete_object(Bucket=dms.bucket, Key=f"{dms.table_folder('orders')}/20261207-1007000000.csv")
    dms.cdc({"orders": [("X", (10, 1, "late"), None)]}, "csv")
    with pytest.raises(SourceError, match=r"20261207-1008000000.csv row 2: Op is 'X', not I, U or D"):
        store.sync(aws_spark)
    assert control.positions(store.mapping.name) == saved

    dms.s3.delete_object(Bucket=dms.bucket, Key=f"{dms.table_folder('orders')}/20261207-1008000000.csv")
    dms.cdc(update, "csv")
    report = store.sync(aws_spark)
    assert report.ok, report.error
    assert report.sync["changes"]["public.orders"] == {"update": 1}
    assert digests(store.endpoint, store.mapping.target.table) == store.built(aws_spark)

    # An S3 lifecycle rule removes the files, the last one applied among them: changes may be lost.
    for item in dms.s3.list_objects_v2(Bucket=dms.bucket, Prefix=dms.table_folder("orders"))["Contents"]:
        dms.s3.delete_object(Bucket=dms.bucket, Key=item["Key"])
    with pytest.raises(FullLoadNeededError, match=r"public.orders: the last DMS file the sync applied \(cdc/public/orders/"
                                                  r"20261207-1009000000.csv\) is not in "):
        store.sync(aws_spark)
    assert store.pipeline(aws_spark).execute().ok
    assert store.sync(aws_spark).ok
