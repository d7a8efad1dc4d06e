"""Access patterns, the pure part: parameters into SQL, keys rendered as a load renders them,
and the differences a failed pattern reports."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import types as T

from transforms.context import CompileError
from transforms.mapping import load_mapping_text
from transforms.patterns import (
    as_item_values,
    element_differences,
    key_differences,
    parameter_names,
    render,
    substitute,
)

MAPPING = load_mapping_text("""
version: 1
name: t
source: {connection: c}
target: {table: TTT, key: {partition: PK, sort: SK}}
entities:
  order:
    from: public.orders
    key: {PK: "CUSTOMER#{customer_id:08d}", SK: "ORDER#{placed_at:%Y-%m-%d}#{order_id:08d}"}
""", "t.yaml")


def test_parameters_are_named_with_a_colon_and_a_cast_or_a_string_is_not_one():
    sql = "SELECT a::int FROM t WHERE id = :id AND sku = :sku AND x = ':quoted'' :too' AND y = :id"
    assert parameter_names(sql) == ["id", "sku"]
    assert parameter_names("SELECT now()::date, '10:30'") == []


def test_values_go_in_as_string_literals_with_their_quotes_doubled():
    sql = substitute("SELECT * FROM p WHERE sku = :sku AND id = :id AND n = :n AND t = 'at :id'",
                     {"sku": "O'Brien", "id": "17", "n": None})
    assert sql == "SELECT * FROM p WHERE sku = 'O''Brien' AND id = '17' AND n = NULL AND t = 'at :id'"


def test_keys_render_exactly_as_the_load_renders_them(spark):
    schema = T.StructType([T.StructField("customer_id", T.LongType()), T.StructField("order_id", T.IntegerType()),
                           T.StructField("placed_at", T.TimestampType())])
    rows = spark.createDataFrame([(17, 42, dt.datetime(2024, 3, 5, 23, 59, 59)), (None, 1, None)], schema)
    entity = MAPPING.entities["order"]
    rendered = render(MAPPING, rows, {"pk": entity.key["PK"], "sk": entity.key["SK"]}, ("x",), "the test rows")
    got = [(r.pk, r.sk) for r in rendered.collect()]
    assert got == [("CUSTOMER#00000017", "ORDER#2024-03-05#00000042"), (None, None)]


def test_a_template_column_the_sql_does_not_return_is_named(spark):
    rows = spark.createDataFrame([(1,)], "customer_id long")
    with pytest.raises(CompileError, match="unknown column 'order_id' in the SQL; its columns are: customer_id"):
        render(MAPPING, rows, {"pk": "O#{order_id}"}, ("patterns", "p"), "the SQL")


def test_list_values_take_the_load_type_table(spark):
    rows = spark.createDataFrame([(5, "Great", None, Decimal("1.50"))], "rating int, title string, body string, w decimal(5,2)")
    values = as_item_values(MAPPING, rows, ["rating", "title", "body", "w"], ("x",), "the SQL").first()
    assert (values.json_rating, values.json_title, values.json_body, values.json_w) == (
        '{"N":"5"}', '{"S":"Great"}', None, '{"N":"1.5"}')


def test_a_key_difference_says_what_is_missing_extra_and_out_of_order():
    a, b, c = ("P", "1"), ("P", "2"), ("P", "3")
    assert key_differences([a, b], [a, b], ordered=True) == []
    assert key_differences([a, b], [b, a], ordered=False) == []
    assert key_differences([a, b], [b, a], ordered=True) == ["out of order at position 1: got P / 2, expected P / 1"]
    assert key_differences([a, b], [a, c], ordered=True) == ["missing 1: P / 2", "not expected 1: P / 3"]
    assert key_differences([a], [a, a], ordered=False) == ["2 items where the source has 1 (a key twice)"]


def test_an_element_difference_names_the_element_and_attribute():
    want = [{"rating": {"N": "5"}, "body": None}, {"rating": {"N": "4"}, "body": {"S": "ok"}}]
    assert element_differences("reviews", want, [{"rating": {"N": "5"}}, {"rating": {"N": "4"}, "body": {"S": "ok"}}]) == []
    assert element_differences("reviews", want, [{"rating": {"N": "4"}, "body": {"S": "ok"}}]) == [
        "reviews has 1 elements, the source 2", 'reviews[0].rating: got {"N":"4"}, expected {"N":"5"}']
