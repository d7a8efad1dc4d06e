"""DynamoDB-side helpers: a client for the local endpoint, scans, and a frame of awkward items."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import boto3
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

from jobs.sinks.table import IndexSpec, TableSpec
from jobs.sinks.writer import WriteSettings

ITEMS_SCHEMA = StructType(
    [
        StructField("entity", StringType(), False),
        StructField("pk", StringType(), False),
        StructField("sk", StringType(), True),
        StructField("item", StringType(), False),
        StructField("size", LongType(), False),
        StructField("wcu", IntegerType(), False),
    ]
)

STORE = TableSpec("Store", "PK", "SK", (IndexSpec("GSI1", "GSI1PK", "GSI1SK"),))


def dynamodb_client(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


def scan_all(client: Any, table: str) -> list[dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return [item for page in pages for item in page["Items"]]


def table_count(client: Any, table: str) -> int:
    pages = client.get_paginator("scan").paginate(TableName=table, Select="COUNT")
    return sum(page["Count"] for page in pages)


def settings_for(endpoint: str, table: str, **overrides: Any) -> WriteSettings:
    return WriteSettings(**{"table": table, "endpoint_url": endpoint, "region": "us-east-1", "units_per_second": None, **overrides})


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def mixed_item(n: int) -> tuple[str, str, str, dict[str, Any]]:
    """entity, pk, sk, item: every DynamoDB type, nesting, set, awkward number and empty string."""
    pk = f"CUSTOMER#{n % 40}"  # item collections: several items per partition key
    if n % 10 == 0:
        entity, sk = "customer", f"PROFILE#{n}"
        extra = {"GSI1PK": {"S": f"EMAIL#c{n}@example.com"}, "GSI1SK": {"S": "PROFILE"}}
    else:
        entity, sk, extra = "order", f"ORDER#{n:05d}", {}
    item = {
        "PK": {"S": pk},
        "SK": {"S": sk},
        **extra,
        "total": {"N": f"{n}.50"},  # DynamoDB hands it back as n.5
        "big": {"N": "1234567890123456789012345678901234567" + str(n % 10)},  # 38 digits
        "tiny": {"N": "0.000000000000000000000000000000000001"},
        "neg": {"N": f"-{n}.000"},
        "lines": {
            "L": [
                {"M": {"sku": {"S": f"SKU-{n}"}, "qty": {"N": "2"}, "price": {"N": "9.90"}}},
                {"NULL": True},
                {"L": [{"BOOL": True}, {"S": "ünïcödé"}]},
            ]
        },
        "meta": {"M": {"tags": {"SS": ["vip", "eu", f"t{n}"]}, "nested": {"M": {"deep": {"N": "0100"}}}}},
        "blob": {"B": b64(bytes([n % 256, 0, 255]))},
        "blobs": {"BS": [b64(b"\x01"), b64(bytes([n % 200 + 2]))]},
        "ns": {"NS": ["3.50", "-2", "1E+3"]},
        "empty": {"S": ""},
        "flag": {"BOOL": n % 2 == 0},
        "nothing": {"NULL": True},
    }
    if n % 25 == 0:
        item["notes"] = {"S": "x" * 2200}  # about 2.6 KB: 3 write units
    return entity, pk, sk, item


def items_frame(spark: SparkSession, count: int, sort_key: bool = True) -> DataFrame:
    rows = []
    for n in range(count):
        entity, pk, sk, item = mixed_item(n)
        if not sort_key:
            pk, sk = f"{pk}#{n}", None
            item = {k: v for k, v in item.items() if k != "SK"} | {"PK": {"S": pk}}
        text = json.dumps(item)
        # A stand-in for the real size (computed upstream): close enough, as the items sit well
        # inside their 1 KB steps.
        size = len(text.encode("utf-8"))
        rows.append((entity, pk, sk, text, size, math.ceil(size / 1024)))
    return spark.createDataFrame(rows, ITEMS_SCHEMA)
