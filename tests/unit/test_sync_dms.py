"""The files of an AWS DMS S3 target read as changes: DMS's file order, CSV (quoted, NULL
marker, gzip) and Parquet rows by column name, the before-image columns of an update, values
as SQL of their column's type on each engine, and the files carve refuses with what to set."""

from __future__ import annotations

import gzip
import io

import pytest
from pydantic import SecretStr

from jobs.sources.connections import Connection
from jobs.sync.dms import DmsFile, Followed, _records, order_of
from jobs.sync.images import Image
from transforms.errors import SourceError
from transforms.mapping import DmsS3

POSTGRES = Connection("c", "jdbc:postgresql://127.0.0.1:5432/shop", "u", SecretStr("p"))
MARIADB = Connection("c", "jdbc:mysql://127.0.0.1:3306/shop", "u", SecretStr("p"))
SPEC = DmsS3(dms_s3="s3://dms-bucket/cdc/public/product/")
PRODUCT = Followed("public.product", SPEC, ("product_id",), ("product_id", "sku"),
                   {"product_id": "int4", "sku": "varchar", "name": "varchar"})
CDC = DmsFile("cdc/public/product/20261207-1010230000.csv", "1/20261207-1010230000")
LOAD = DmsFile("cdc/public/product/LOAD00000001.csv", "0/0000000000000001")


def read(body: bytes, file: DmsFile = CDC, conn: Connection = POSTGRES, info: Followed = PRODUCT):
    return list(_records(conn, info, file, body))


def test_files_come_in_the_order_dms_writes_them_full_load_first():
    names = ["20261207-1010230000.csv", "LOAD0000000A.csv", "LOAD00000010.csv.gz", "20261206-2359590000.parquet",
             "LOAD00000002.csv", "20261207-0900000000.csv.gz", "notes.txt", "LOAD1.json"]
    ordered = sorted((n for n in names if order_of(n) is not None), key=order_of)
    assert ordered == ["LOAD00000002.csv", "LOAD0000000A.csv", "LOAD00000010.csv.gz", "20261206-2359590000.parquet",
                       "20261207-0900000000.csv.gz", "20261207-1010230000.csv"]


def test_cdc_rows_by_column_name_with_before_images_on_updates():
    body = (b'Op,ts,product_id,sku,name,BI_product_id,BI_sku,BI_name\n'
            b'I,2026-12-07 10:10:23.000000,7,P-7,"Cup, ""large""",,,\n'
            b'U,2026-12-07 10:10:24.000000,7,P-7b,Cup,7,P-7,Cup\n'
            b'D,2026-12-07 10:10:25.000000,8,P-8,Mug,,,\n')
    assert read(body) == [
        ("insert", [Image(False, {"product_id": "CAST('7' AS int4)", "sku": "CAST('P-7' AS varchar)"})]),
        ("update", [Image(True, {"product_id": "CAST('7' AS int4)", "sku": "CAST('P-7' AS varchar)"}),
                    Image(False, {"product_id": "CAST('7' AS int4)", "sku": "CAST('P-7b' AS varchar)"})]),
        ("delete", [Image(True, {"product_id": "CAST('8' AS int4)", "sku": "CAST('P-8' AS varchar)"})]),
    ]


def test_mariadb_values_are_exact_numbers_and_escaped_strings():
    info = Followed("product", SPEC, ("product_id",), ("product_id", "sku"),
                    {"product_id": "int(11)", "sku": "varchar(20)"})
    body = b"product_id,sku\n12345678901234567,O'Brien\\n\n"
    assert read(body, LOAD, MARIADB, info) == [
        ("insert", [Image(False, {"product_id": "12345678901234567", "sku": "'O''Brien\\\\n'"})])]


def test_a_full_load_file_without_op_is_inserts_and_gzip_is_read():
    body = gzip.compress(b"product_id,sku,name\n1,P-1,Kettle\n")
    file = DmsFile("cdc/public/product/LOAD00000001.csv.gz", "0/0000000000000001")
    assert read(body, file) == [("insert", [Image(False, {"product_id": "CAST('1' AS int4)",
                                                          "sku": "CAST('P-1' AS varchar)"})])]


def test_the_null_marker_tells_null_from_an_empty_string():
    body = b"Op,product_id,sku,BI_product_id,BI_sku\nI,1,,,\n"
    assert read(body)[0][1][0].values["sku"] == "NULL"  # CsvNullValue unset: an empty field is NULL
    marked = Followed(PRODUCT.table, DmsS3(dms_s3=SPEC.dms_s3, csv_null_value="NULL"), PRODUCT.key, PRODUCT.needed,
                      PRODUCT.types)
    body = b"Op,product_id,sku,BI_product_id,BI_sku\nI,1,,NULL,NULL\nI,2,NULL,NULL,NULL\n"
    rows = read(body, info=marked)
    assert [r[1][0].values["sku"] for r in rows] == ["CAST('' AS varchar)", "NULL"]


def test_parquet_rows_are_read_by_column_name():
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"Op": ["U"], "product_id": [3], "sku": ["P-3b"], "BI_product_id": [3],
                             "BI_sku": ["P-3"]}), out)
    file = DmsFile("cdc/public/product/20261207-1010230000.parquet", "1/20261207-1010230000")
    assert read(out.getvalue(), file) == [
        ("update", [Image(True, {"product_id": "CAST('3' AS int4)", "sku": "CAST('P-3' AS varchar)"}),
                    Image(False, {"product_id": "CAST('3' AS int4)", "sku": "CAST('P-3b' AS varchar)"})])]


WHERE = "s3://dms-bucket/cdc/public/product/20261207-1010230000.csv"


@pytest.mark.parametrize(("body", "message"), [
    (b"I,1,P-1,,\n", f"{WHERE}: the file does not name the columns product_id, sku of public.product (its first row "
                     "is I, 1, P-1, , ). carve reads DMS files by column name: set AddColumnName=true on the DMS "
                     "endpoint (CSV; Parquet names them always) and run a full load"),
    (b"product_id,sku\n1,P-1\n", f"{WHERE}: a CDC file without the Op column: the DMS endpoint writes inserts only "
                                 "(CdcInsertsOnly), so deletes and updates would be lost. Set CdcInsertsOnly and "
                                 "CdcInsertsAndUpdates to false and run a full load"),
    (b"Op,product_id,sku,BI_product_id\nU,1,P-1,1\n",
     f"{WHERE}: updates of public.product must carry the values before them of product_id, sku (item keys and joins "
     "read them), and the file has no BI_sku. Add to the DMS task's table mapping a transformation rule with "
     "rule-action add-before-image-columns for this table, column-prefix 'BI_' and column-filter non-lob, then run "
     "a full load"),
    (b"Op,product_id,sku,BI_product_id,BI_sku\nI,1,P-1,,\nI,2,P-2\n",
     f"{WHERE} row 3: 3 fields under a header of 5; the file is not as DMS writes it. The position stays before "
     "this file"),
    (b"Op,product_id,sku,BI_product_id,BI_sku\nX,1,P-1,,\n",
     f"{WHERE} row 2: Op is 'X', not I, U or D. The position stays before this file"),
    (b"\xff\xfe", f"{WHERE}: not a CSV file DMS writes ('utf-8' codec can't decode byte 0xff in position 0: invalid "
                  "start byte). The position stays before this file"),
])
def test_files_carve_cannot_read_whole_are_refused_with_what_to_do(body, message):
    with pytest.raises(SourceError) as refused:
        read(body)
    assert str(refused.value) == message
