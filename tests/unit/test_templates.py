"""Key templates: parsing (pure Python) and rendering through build_items on small frames."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from transforms.items import CompileError, build_items
from transforms.mapping import load_mapping_text
from transforms.templates import (
    Placeholder,
    TemplateSyntaxError,
    Text,
    parse_template,
    spark_date_pattern,
    template_columns,
)
from transforms.values import INSTANT, KIND, NUMBER_TEXT

HEADER = """
version: 1
name: t
source: {connection: x}
target: {table: Tbl, key: {partition: PK, sort: SK}}
"""


def build(entities_yaml: str, tables: dict):
    return build_items(load_mapping_text(HEADER + entities_yaml, "t.yaml"), tables)


# --- parsing ---------------------------------------------------------------------------------


def test_parse_splits_text_and_placeholders():
    assert parse_template("ORDER#{placed_at:%Y-%m-%d}#{order_id:08d}") == (
        Text("ORDER#"),
        Placeholder("placed_at", "%Y-%m-%d"),
        Text("#"),
        Placeholder("order_id", "08d"),
    )
    assert parse_template("PROFILE") == (Text("PROFILE"),)
    assert parse_template("{a}{b}") == (Placeholder("a"), Placeholder("b"))
    assert template_columns("C#{customer_id}#{ email }") == ("customer_id", "email")


def test_doubled_braces_are_literal_braces():
    assert parse_template("{{SESSION}}#{id}") == (Text("{SESSION}#"), Placeholder("id"))
    assert parse_template("{{{id}}}") == (Text("{"), Placeholder("id"), Text("}"))
    assert template_columns("{{not_a_column}}") == ()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("C#{id", "unclosed '{' at position 3; write '{{' for a literal brace"),
        ("C#id}", "unmatched '}' at position 5; write '}}' for a literal brace"),
        ("C#{}", "'{}' does not name a column; write {column} or {column:format}"),
        ("C#{1x}", "'{1x}' does not name a column; write {column} or {column:format}"),
        ("{id:8d}", "unknown format '8d'; use a zero padding like '08d' or a date pattern like '%Y-%m-%d'"),
        ("{at:%Y-%q}", "unknown date directive '%q'; known: %Y, %m, %d, %H, %M, %S, %f, %j"),
    ],
)
def test_template_syntax_errors_say_what_to_write(template, message):
    with pytest.raises(TemplateSyntaxError) as caught:
        parse_template(template)
    assert str(caught.value) == message


def test_strftime_patterns_become_quoted_spark_patterns():
    assert spark_date_pattern("%Y-%m-%d") == "yyyy'-'MM'-'dd"
    assert spark_date_pattern("%Y%m%dT%H%M%S.%f") == "yyyyMMdd'T'HHmmss'.'SSSSSS"
    assert spark_date_pattern("day %j of %Y, o'clock") == "'day 'DDD' of 'yyyy', o''clock'"


# --- rendering -------------------------------------------------------------------------------


def test_zero_padding_dates_and_literal_braces_render_into_keys(spark):
    rows = spark.createDataFrame(
        [(42, "2024-03-09 23:59:58.5"), (123456789, "1999-12-31 00:00:00"), (-5, "2024-01-01 00:00:00")],
        "id long, at string",
    ).select("id", F.col("at").cast("timestamp").alias("placed_at"), F.col("at").cast("date").alias("day"))
    got = build("""
entities:
  order:
    from: orders
    key: {PK: "ORDER#{id:08d}", SK: "{{V1}}#{placed_at:%Y-%m-%d}#{day:%Y%m%d}T{placed_at:%H%M%S}"}
""", {"orders": rows}).select("pk", "sk", "problem").collect()
    assert sorted((r.pk, r.sk, r.problem) for r in got) == [
        ("ORDER#-0000005", "{V1}#2024-01-01#20240101T000000", None),
        ("ORDER#00000042", "{V1}#2024-03-09#20240309T235958", None),
        ("ORDER#123456789", "{V1}#1999-12-31#19991231T000000", None),  # wider than the padding: kept whole
    ]


def test_a_null_column_makes_the_key_null_and_names_the_column(spark):
    rows = spark.createDataFrame(
        [(1, "a", "b"), (None, "a", "b"), (2, None, None), (3, "", "x")], "id long, x string, y string"
    )
    got = build("""
entities:
  thing:
    from: things
    key: {PK: "T#{id:04d}", SK: "{x}{y}"}
""", {"things": rows}).select("pk", "sk", "problem").collect()
    by_id = {(r.pk, r.sk): r.problem for r in got}
    assert by_id == {
        ("T#0001", "ab"): None,
        (None, "ab"): "key PK is NULL: column id is NULL",
        ("T#0002", None): "key SK is NULL: column x, y is NULL",
        ("T#0003", "x"): None,  # one empty column does not empty the key
    }


def test_an_empty_key_is_a_problem(spark):
    rows = spark.createDataFrame([(1, "")], "id long, x string")
    [row] = build("""
entities:
  thing:
    from: things
    key: {PK: "T#{id}", SK: "{x}"}
""", {"things": rows}).collect()
    assert row.sk == "" and row.problem == "key SK is an empty string"


def test_values_read_the_same_in_a_template_as_in_the_item(spark):
    rows = spark.createDataFrame(
        [(1, Decimal("12.500"), "0042.10", "2024-05-06 07:08:09", True, None)],
        "id long, price decimal(10,3), amount string, at string, flag boolean, note string",
    ).select(
        "id", "price", F.col("amount").alias("amount", metadata={KIND: NUMBER_TEXT}),
        F.col("at").cast("timestamp").alias("at", metadata={KIND: INSTANT}), "flag", "note",
    )
    [row] = build("""
entities:
  thing:
    from: things
    key: {PK: "T#{id}", SK: "{price}|{amount}|{at}|{flag}"}
    attributes:
      label: "{price} x {amount}"
      missing: "note: {note}"
""", {"things": rows}).collect()
    assert row.sk == "12.5|42.1|2024-05-06T07:08:09.000000Z|true"
    item = json.loads(row.item)
    assert item["label"] == {"S": "12.5 x 42.1"}
    assert "missing" not in item  # a template attribute over a NULL column follows the null policy
    assert row.problem is None


def test_formats_that_do_not_fit_the_column_type_are_compile_errors(spark):
    rows = spark.createDataFrame([("a", 1, "12.50")], "name string, n long, amount string")
    rows = rows.withColumn("amount", F.col("amount").alias("amount", metadata={KIND: NUMBER_TEXT}))
    with pytest.raises(CompileError) as caught:
        build("""
entities:
  thing:
    from: things
    key: {PK: "T#{name:08d}", SK: "{n:%Y}"}
    attributes: {ref: "R#{amount:06d}"}
""", {"things": rows})
    assert caught.value.errors == [
        (("entities", "thing", "key", "PK"), "'{name:08d}': zero padding needs an integer column, name is a string "
                                             "column; use {name}, or a query casting it to an integer"),
        (("entities", "thing", "key", "SK"), "'{n:%Y}': a date format needs a date or timestamp column"),
        # 12.50 would be written as 000012: a numeric column is refused, not truncated
        (("entities", "thing", "attributes", "ref"), "'{amount:06d}': zero padding needs an integer column, amount "
                                                     "is a numeric (decimal) column; use {amount}, or a query casting "
                                                     "it to an integer"),
    ]
