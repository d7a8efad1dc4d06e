"""The Glue connector sink: its options, the typed frame it is handed, and the type model.

The equivalence tests build real items with carve's transforms, turn them into the frame the
connector would get (connector_frame, real Spark), apply the modelled connector mapping to
every row, and compare with carve's own item JSON as DynamoDB compares values.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.sinks.glue_connector import (
    ConnectorError,
    ConnectorTypeError,
    connector_frame,
    connector_item,
    connector_plan,
    connector_schema,
    item_shape,
    java_double_to_string,
    number_fit,
)
from transforms.items import build_items
from transforms.mapping import load_mapping_text
from transforms.values import KIND, NUMBER_TEXT
from transforms.wire import canonical

HEADER = """
version: 1
name: t
source: {connection: x}
target: {table: Tbl, key: {partition: PK, sort: SK}}
"""


def provisioned(wcu: int, name: str = "T") -> dict:
    return {"TableName": name, "BillingModeSummary": {"BillingMode": "PROVISIONED"},
            "ProvisionedThroughput": {"WriteCapacityUnits": wcu, "ReadCapacityUnits": 5}}


def on_demand(name: str = "T") -> dict:
    return {"TableName": name, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "ProvisionedThroughput": {"WriteCapacityUnits": 0, "ReadCapacityUnits": 0}}


# --- connection options -----------------------------------------------------------------------


def test_a_provisioned_table_gets_the_budgets_share_of_its_capacity():
    plan = connector_plan(provisioned(1000), max_tasks=8, units_per_second=500, region="eu-west-1")
    assert plan.options == {
        "dynamodb.output.tableName": "T",
        "dynamodb.throughput.write.percent": "0.5",
        "dynamodb.output.numParallelTasks": "8",
        "dynamodb.output.retry": "30",
        "dynamodb.region": "eu-west-1",
    }
    # The connector's per-task arithmetic: floor(1000 * 0.5) / 8 = 62 WCU/s each, 496 in all.
    assert (plan.wcu_per_task, plan.wcu_per_second) == (62, 496)


def test_an_on_demand_table_counts_as_40000_wcu():
    plan = connector_plan(on_demand(), max_tasks=8, units_per_second=10_000)
    assert plan.billing == "PAY_PER_REQUEST" and plan.table_wcu == 40_000
    assert plan.options["dynamodb.throughput.write.percent"] == "0.25"
    assert plan.wcu_per_second == 10_000


def test_a_budget_below_a_tenth_of_the_assumed_capacity_cannot_be_kept():
    with pytest.raises(ConnectorError, match=r"1,000 WCU/s is below .* 0.1 of its assumed 40,000 WCU for on-demand "
                                             r"tables, 4,000 WCU/s. Use the carve sink"):
        connector_plan(on_demand(), max_tasks=8, units_per_second=1000)
    with pytest.raises(ConnectorError, match=r"0.1 of the table's 1,000 provisioned WCU, 100 WCU/s"):
        connector_plan(provisioned(1000), max_tasks=8, units_per_second=50)


def test_the_percent_is_rounded_down_and_capped_at_one_and_a_half():
    assert connector_plan(provisioned(1000), 4, units_per_second=333.3).options[
        "dynamodb.throughput.write.percent"] == "0.3333"
    plan = connector_plan(provisioned(1000), 4, units_per_second=5000)
    assert plan.options["dynamodb.throughput.write.percent"] == "1.5"
    assert any("ceiling" in note for note in plan.notes)
    assert plan.wcu_per_second == 1500


def test_without_a_budget_the_connectors_default_half_applies():
    plan = connector_plan(provisioned(400), max_tasks=4)
    assert "dynamodb.throughput.write.percent" not in plan.options
    assert plan.percent == Decimal("0.5") and plan.wcu_per_second == 200


def test_few_wcu_mean_fewer_tasks_so_none_gets_less_than_one():
    # 25 WCU * 0.2 = 5 WCU/s: with 8 tasks the connector would give each 1 (its floor), 8 in all.
    plan = connector_plan(provisioned(25), max_tasks=8, units_per_second=5)
    assert plan.options["dynamodb.output.numParallelTasks"] == "5"
    assert (plan.wcu_per_task, plan.wcu_per_second) == (1, 5)


def test_a_share_of_provisioned_capacity_means_nothing_on_demand():
    assert connector_plan(provisioned(200), 2, percent_of_provisioned=0.5).options[
        "dynamodb.throughput.write.percent"] == "0.5"
    with pytest.raises(ConnectorError, match="on-demand"):
        connector_plan(on_demand(), 2, percent_of_provisioned=0.5)


# --- the model of Java's Double.toString, checked against the JVM -----------------------------


def test_the_double_model_prints_what_java_prints(spark):
    jvm_double = spark.sparkContext._jvm.java.lang.Double
    rng = random.Random(11)
    values = [0.0, -0.0, 0.1, 12.5, -2.5, 1e7, 1e-3, 9.999e-4, 123456789.123, 1e15, float(2**53), 1e-20, 1e-7,
              123456.789]
    for _ in range(3000):
        digits = rng.randint(1, 15)
        text = f"{rng.randint(10 ** (digits - 1), 10 ** digits - 1)}E{rng.randint(-20 - digits + 1, 15 - digits + 1)}"
        assert number_fit(text)[1], text
        values.append(float(Decimal(text)))
    mismatches = [(v, jvm_double.toString(v), java_double_to_string(v)) for v in values
                  if jvm_double.toString(v) != java_double_to_string(v)]
    assert mismatches == []


def test_numbers_fit_a_long_up_to_2_53_and_a_double_up_to_15_digits_and_exponent_15():
    # Java 17 prints 2e23 as 1.9999999999999998E23 (JDK-4511638): such numbers are kept out.
    assert number_fit("2E+23") == (False, False)
    assert number_fit("12.50") == (False, True)
    assert number_fit("9007199254740992") == (True, False)
    assert number_fit("9007199254740993") == (False, False)
    assert number_fit("0.1234567890123456") == (False, False)  # 16 digits
    assert number_fit("0") == (True, True)


# --- the schema handed over -------------------------------------------------------------------


def schema_of(*items: dict) -> T.StructType:
    return connector_schema(item_shape([json.dumps(i) for i in items], "PK", "SK"))


def key(n: int) -> dict:
    return {"PK": {"S": f"A#{n}"}, "SK": {"S": "X"}}


def test_scalars_get_one_column_each_and_missing_attributes_are_nullable():
    schema = schema_of({**key(1), "n": {"N": "1"}, "d": {"N": "2.5"}, "b": {"BOOL": True}, "bin": {"B": "AAE="}},
                       {**key(2), "n": {"N": "-3"}, "d": {"N": "7"}})
    assert schema == T.StructType([
        T.StructField("PK", T.StringType()), T.StructField("SK", T.StringType()),
        T.StructField("b", T.BooleanType()), T.StructField("bin", T.BinaryType()),
        T.StructField("d", T.DoubleType()), T.StructField("n", T.LongType()),
    ])


def test_maps_are_map_columns_when_their_values_agree_and_structs_when_every_key_is_there():
    schema = schema_of(
        {**key(1), "addr": {"M": {"city": {"S": "Paris"}}}, "dims": {"M": {"w": {"N": "1.5"}, "tag": {"S": "x"}}},
         "lines": {"L": [{"M": {"qty": {"N": "2"}, "sku": {"S": "A"}}}]}, "empty": {"L": []}},
        {**key(2), "addr": {"M": {"city": {"S": "Oslo"}, "zip": {"S": "0150"}}},
         "dims": {"M": {"w": {"N": "2"}, "tag": {"S": "y"}}}, "lines": {"L": []}, "empty": {"L": []}},
    )
    types = {f.name: f.dataType for f in schema.fields}
    assert types["addr"] == T.MapType(T.StringType(), T.StringType(), valueContainsNull=False)
    assert types["dims"] == T.StructType([T.StructField("tag", T.StringType(), False),
                                          T.StructField("w", T.DoubleType(), False)])
    assert types["lines"] == T.ArrayType(T.StructType([T.StructField("qty", T.LongType(), False),
                                                       T.StructField("sku", T.StringType(), False)]), False)
    assert types["empty"] == T.ArrayType(T.StringType(), False)


def test_what_the_connector_cannot_write_is_refused_by_name_before_anything_is_written():
    with pytest.raises(ConnectorTypeError) as error:
        schema_of(
            {**key(1), "tags": {"SS": ["a"]}, "cats": {"NS": ["1"]}, "note": {"NULL": True},
             "big": {"N": "12345678901234567890.5"}, "mixed": {"S": "x"},
             "prefs": {"M": {"a": {"S": "x"}, "b": {"NULL": True}}},
             "meta": {"M": {"channel": {"S": "web"}, "n": {"N": "1"}}}, "list": {"L": [{"S": "a"}, {"N": "1"}]}},
            {**key(2), "mixed": {"N": "1"}, "meta": {"M": {"channel": {"S": "app"}}}},
        )
    problems = error.value.problems
    assert [p.split(" ")[0] for p in problems] == ["big", "cats", "list[]", "meta", "mixed", "note", "prefs.b", "tags"]
    text = str(error.value)
    assert "big (e.g. item A#1/X): numbers the connector cannot write exactly (e.g. 12345678901234567890.5)" in text
    assert "tags (e.g. item A#1/X): a set (SS): the connector writes arrays as lists (L)" in text
    assert "meta (e.g. item A#1/X): a map whose values differ in type (N, S) and whose keys are not in every value " \
           "(e.g. n)" in text
    assert "mixed (e.g. item A#1/X): values of several types (N, S)" in text
    assert "nothing was written" in text


# --- equivalence: the frame, through the modelled connector, is carve's items -----------------


def typed(df, **kinds):
    return df.select(*[F.col(c).alias(c, metadata={KIND: kinds[c]}) if c in kinds else F.col(c) for c in df.columns])


ENTITIES = """
entities:
  customer:
    from: customer
    key: {PK: "C#{customer_id:04d}", SK: PROFILE}
    attributes:
      kind: {literal: customer}
      name: name
      points: points
      balance: balance
      ratio: ratio
      active: active
      avatar: avatar
      born: born
      since: {column: since, as: epoch_seconds}
      prefs: {column: prefs, as: json}
      tags: {column: tags, as: list}
      scores: {column: scores, as: list}
      address: {from: address, join: {address_id: address_id}, one: {city: city, postal: postal}}
      orders:
        from: orders
        join: {customer_id: customer_id}
        order_by: order_id
        many: {id: order_id, total: total, status: status}
  order:
    from: orders
    key: {PK: "C#{customer_id:04d}", SK: "O#{order_id}"}
    attributes:
      total: total
      status: status
"""


@pytest.fixture(scope="module")
def connector_items(spark):
    customers = typed(spark.createDataFrame([
        (1, "Ann", 10, "12.50", "0.1", True, bytearray(b"\x00\x01\xfe"), "1990-02-03", "2024-01-01 10:00:00",
         '{"theme": "dark", "lang": "fr"}', ["a", "b", "a"], [1, 2, 3], 7),
        (2, "Bo", -2147483648, "-0.000", "1e-07", False, None, None, "1970-01-01 00:00:00",
         '{"theme": ""}', [], [], None),
        (3, "Zoë 渡辺", 0, "99999999999999", "123456.789", True, bytearray(b""), "2000-12-31", "2037-12-31 23:59:59",
         None, None, [-5], 8),
    ], "customer_id long, name string, points long, balance string, ratio string, active boolean, avatar binary, "
       "born string, since string, prefs string, tags array<string>, scores array<long>, address_id long")
        .withColumn("born", F.to_date("born")).withColumn("since", F.to_timestamp("since")), balance=NUMBER_TEXT, ratio=NUMBER_TEXT)
    addresses = spark.createDataFrame([(7, "Paris", "75001"), (8, "Oslo", None)],
                                      "address_id long, city string, postal string")
    orders = typed(spark.createDataFrame([(100, 1, "19.99", "open"), (101, 1, "5", "shipped"), (102, 3, "0.01", "open")],
                                         "order_id long, customer_id long, total string, status string"),
                   total=NUMBER_TEXT)
    mapping = load_mapping_text(HEADER + ENTITIES, "t.yaml")
    items = build_items(mapping, {"customer": customers, "address": addresses, "orders": orders})
    assert items.where(F.col("problem").isNotNull()).count() == 0
    return items.drop("problem").cache()


@pytest.mark.parametrize("numbers", ["emr", "double"])
def test_the_frame_through_the_modelled_connector_is_exactly_carves_items(spark, connector_items, numbers):
    frame = connector_frame(connector_items, 3, "PK", "SK")
    assert frame.rdd.getNumPartitions() == 3
    written = {}
    for row in frame.collect():
        item = connector_item(row, frame.schema, numbers)
        written[(item["PK"]["S"], item["SK"]["S"])] = canonical(item)
    expected = {(r.pk, r.sk): canonical(json.loads(r.item)) for r in connector_items.collect()}
    assert len(expected) == 6
    assert written == expected


def test_the_frames_columns_are_the_types_the_connector_maps_without_loss(connector_items):
    frame = connector_frame(connector_items, 2, "PK", "SK")
    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    assert types == {
        "PK": "string", "SK": "string", "kind": "string", "name": "string", "points": "bigint",
        "balance": "double", "ratio": "double", "active": "boolean", "avatar": "binary", "born": "string",
        "since": "bigint", "prefs": "map<string,string>", "tags": "array<string>", "scores": "array<bigint>",
        "address": "map<string,string>", "orders": "array<struct<id:bigint,status:string,total:double>>",
        "total": "double", "status": "string",
    }


def test_set_and_null_attributes_from_real_transforms_are_refused(spark):
    rows = typed(spark.createDataFrame([(1, ["x", "y"], None, "1234567890123456789012345")],
                                       "id long, tags array<string>, note string, amount string"), amount=NUMBER_TEXT)
    mapping = load_mapping_text(HEADER + """
entities:
  t:
    from: t
    key: {PK: "T#{id}", SK: X}
    attributes:
      tags: {column: tags, as: string_set}
      note: {column: note, nulls: null}
      amount: amount
""", "t.yaml")
    items = build_items(mapping, {"t": rows}).drop("problem")
    with pytest.raises(ConnectorTypeError) as error:
        connector_frame(items, 2, "PK", "SK")
    assert [p.split(" ")[0] for p in error.value.problems] == ["amount", "note", "tags"]
