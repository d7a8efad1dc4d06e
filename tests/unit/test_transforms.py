"""The transforms on small in-memory frames: values, join shapes, keys, sizes, problems."""

from __future__ import annotations

import json
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from transforms.context import filter_column
from transforms.items import build_items
from transforms.mapping import load_mapping_text
from transforms.values import KIND, NUMBER_TEXT, Options, json_value, number_value
from transforms.wire import item_size

HEADER = """
version: 1
name: t
source: {connection: x}
target: {table: Tbl, key: {partition: PK, sort: SK}, indexes: [{name: GSI1, partition: GSI1PK}]}
"""


def items_of(spark, entities_yaml: str, tables: dict) -> dict:
    mapping = load_mapping_text(HEADER + entities_yaml, "t.yaml")
    rows = build_items(mapping, tables).collect()
    return {(r.pk, r.sk): r for r in rows}


def plain(item_json: str) -> dict:
    """DynamoDB wire JSON -> Python values, by hand (not carve's code)."""

    def value(v: dict):
        (kind, inner), = v.items()
        if kind == "M":
            return {k: value(x) for k, x in inner.items()}
        if kind == "L":
            return [value(x) for x in inner]
        if kind == "N":
            return Decimal(inner)
        if kind == "NULL":
            return None
        return inner

    return {k: value(v) for k, v in json.loads(item_json).items()}


def test_numbers_normalize_exactly_and_refuse_what_does_not_fit(spark):
    cases = [
        ("001.500", "1.5", None),
        ("-0.000", "0", None),
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678", None),
        ("0.1234567890123456789012345678", "0.1234567890123456789012345678", None),
        ("1e-07", "1E-7", None),
        ("123456789012345678901234567890123456789", None, "x: number 123456789012345678901234567890123456789 "
         "has 39 significant digits; DynamoDB holds at most 38"),
        ("NaN", None, "x: value NaN is not a number"),
    ]
    df = spark.createDataFrame([(t,) for t, _, _ in cases], "t string")
    value = number_value(F.col("t"), Options(), "x")
    got = df.select("t", F.get_json_object(value.json, "$.N").alias("n"), value.problem.alias("problem"))
    expected = spark.createDataFrame(cases, "t string, n string, problem string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_out_of_range_numbers_can_be_kept_as_strings(spark):
    df = spark.createDataFrame([("1" * 40,)], "t string")
    value = number_value(F.col("t"), Options(out_of_range_numbers="string"), "x")
    row = df.select(value.json.alias("j"), value.problem.alias("p")).first()
    assert json.loads(row.j) == {"S": "1" * 40} and row.p is None


def test_json_text_becomes_typed_maps_and_lists(spark):
    doc = '{"a": [1, 2.50, "x\\"y", null, true], "b": {}, "n": 123456789012345678901234567890, "e": ""}'
    df = spark.createDataFrame([(doc,)], "t string")
    value = json_value(F.col("t"), "m")
    row = df.select(value.json.alias("j"), value.problem.alias("p")).first()
    assert row.p is None
    assert json.loads(row.j) == {"M": {
        "a": {"L": [{"N": "1"}, {"N": "2.50"}, {"S": 'x"y'}, {"NULL": True}, {"BOOL": True}]},
        "b": {"M": {}},
        "n": {"N": "123456789012345678901234567890"},
        "e": {"S": ""},
    }}


def test_single_table_with_embeds_chains_and_a_gsi(spark):
    customers = spark.createDataFrame([(1, "a@x", 10), (2, None, None)], "customer_id long, email string, address_id long")
    addresses = spark.createDataFrame([(10, "Paris")], "address_id long, city string")
    orders = spark.createDataFrame(
        [(100, 1, "open"), (101, 1, "shipped"), (102, 2, "open")], "order_id long, customer_id long, status string"
    )
    # The source database's verdict on the embed's filter, as the reader hands it over.
    orders = orders.withColumn(filter_column("status = 'open'"), F.when(F.col("status") == "open", 1).otherwise(0))
    lines = spark.createDataFrame([(100, 1, 7, 2), (100, 2, 8, 1), (101, 1, 7, 5)],
                                  "order_id long, line_no int, product_id long, qty int")
    products = spark.createDataFrame([(7, "Tea"), (8, "Cup")], "product_id long, name string")
    got = items_of(spark, """
entities:
  customer:
    from: customer
    key: {PK: "C#{customer_id:04d}", SK: PROFILE}
    indexes: {GSI1PK: "EMAIL#{email}"}
    attributes:
      address: {from: address, join: {address_id: address_id}, one: {city: city}}
      open_orders:
        from: orders
        filter: "status = 'open'"
        join: {customer_id: customer_id}
        order_by: order_id desc
        many: {id: order_id}
  order:
    from: orders
    key: {PK: "C#{customer_id:04d}", SK: "O#{order_id}"}
    attributes:
      lines:
        from: line
        join: {order_id: order_id}
        order_by: line_no
        many:
          qty: qty
          product: {from: product, join: {product_id: product_id}, one: {name: name}}
""", {"customer": customers, "address": addresses, "orders": orders, "line": lines, "product": products})
    assert set(got) == {("C#0001", "PROFILE"), ("C#0002", "PROFILE"), ("C#0001", "O#100"), ("C#0001", "O#101"),
                        ("C#0002", "O#102")}
    first = plain(got[("C#0001", "PROFILE")].item)
    assert first == {"PK": "C#0001", "SK": "PROFILE", "GSI1PK": "EMAIL#a@x", "address": {"city": "Paris"},
                     "open_orders": [{"id": Decimal(100)}]}
    second = plain(got[("C#0002", "PROFILE")].item)
    assert "GSI1PK" not in second and "address" not in second  # NULLs omitted: no index entry, no map
    assert got[("C#0001", "PROFILE")].wcu == 2 and got[("C#0002", "PROFILE")].wcu == 1  # the GSI costs its own
    assert plain(got[("C#0001", "O#100")].item)["lines"] == [
        {"qty": Decimal(2), "product": {"name": "Tea"}},
        {"qty": Decimal(1), "product": {"name": "Cup"}},
    ]
    assert all(r.problem is None for r in got.values())


def test_composite_keys_many_to_many_and_self_reference(spark):
    playlists = spark.createDataFrame([(1, "Road")], "playlist_id long, name string")
    links = spark.createDataFrame([(1, 11, 2), (1, 12, 1)], "playlist_id long, track_id long, position int")
    tracks = spark.createDataFrame([(11, "A"), (12, "B")], "track_id long, title string")
    stock = spark.createDataFrame([(5, 9, 3)], "order_id long, product_id long, qty int")
    notes = spark.createDataFrame([(5, 9, "fragile")], "order_id long, product_id long, note string")
    staff = spark.createDataFrame([(1, "Ann", None), (2, "Bo", 1)], "employee_id long, name string, reports_to long")
    got = items_of(spark, """
entities:
  playlist:
    from: playlist
    key: {PK: "P#{playlist_id}", SK: META}
    attributes:
      tracks:
        from: playlist_track
        join: {playlist_id: playlist_id}
        order_by: position
        many: {track: {from: track, join: {track_id: track_id}, one: {title: title}}}
  stock:
    from: stock
    key: {PK: "S#{order_id}#{product_id}", SK: LINE}
    attributes:
      note: {from: note, join: {order_id: order_id, product_id: product_id}, one: {text: note}}
  employee:
    from: employee
    key: {PK: "E#{employee_id}", SK: E}
    attributes:
      boss: {from: employee, join: {reports_to: employee_id}, one: {name: name}}
""", {"playlist": playlists, "playlist_track": links, "track": tracks, "stock": stock, "note": notes,
      "employee": staff})
    assert plain(got[("P#1", "META")].item)["tracks"] == [{"track": {"title": "B"}}, {"track": {"title": "A"}}]
    assert plain(got[("S#5#9", "LINE")].item)["note"] == {"text": "fragile"}
    assert plain(got[("E#2", "E")].item)["boss"] == {"name": "Ann"}
    assert "boss" not in plain(got[("E#1", "E")].item)


def test_one_source_two_entities_and_the_last_n_by_date(spark):
    customers = spark.createDataFrame([(1, "a@x")], "customer_id long, email string")
    reviews = spark.createDataFrame([(1, i, f"2024-01-{i:02d}") for i in range(1, 13)],
                                    "customer_id long, review_id long, at string")
    got = items_of(spark, """
entities:
  profile:
    from: customer
    key: {PK: "C#{customer_id}", SK: PROFILE}
    attributes:
      last3: {from: review, join: {customer_id: customer_id}, order_by: at desc, limit: 3, many: {id: review_id}}
  by_email:
    from: customer
    key: {PK: "EMAIL#{email}", SK: "C#{customer_id}"}
""", {"customer": customers, "review": reviews})
    assert plain(got[("C#1", "PROFILE")].item)["last3"] == [{"id": Decimal(12)}, {"id": Decimal(11)}, {"id": Decimal(10)}]
    assert ("EMAIL#a@x", "C#1") in got


def test_bad_rows_get_reasons_and_the_size_follows_the_published_rules(spark):
    rows = spark.createDataFrame([(1, "ab"), (1, "cd"), (None, "x"), (3, "é" * 300_000)], "id long, s string")
    got = build_items(load_mapping_text(HEADER + """
entities:
  thing:
    from: thing
    key: {PK: "T#{id}", SK: X}
    attributes: {s: s}
""", "t.yaml"), {"thing": rows}).collect()
    reasons = sorted(((r.pk, r.problem) for r in got if r.problem), key=lambda x: (x[0] or "", x[1]))
    assert reasons == [
        (None, "key PK is NULL: column id is NULL"),
        ("T#1", "duplicate key: 2 source rows produce this (pk, sk)"),
        ("T#1", "duplicate key: 2 source rows produce this (pk, sk)"),
        ("T#3", "item is 600009 bytes; DynamoDB holds at most 409600"),
    ]
    # names PK SK s (2+2+1) + values "T#3" (3) "X" (1) + 600,000 bytes of 'é'
    assert next(r for r in got if r.pk == "T#3").size == 5 + 4 + 600_000


def test_number_text_columns_are_exact_numbers_by_default(spark):
    df = spark.createDataFrame([(1, "0.10000000000000000000000000001")], "id long, amount string")
    df = df.select("id", F.col("amount").alias("amount", metadata={KIND: NUMBER_TEXT}))
    [row] = build_items(load_mapping_text(HEADER + """
entities:
  t:
    from: t
    key: {PK: "T#{id}", SK: X}
    attributes: {amount: amount}
""", "t.yaml"), {"t": df}).collect()
    assert json.loads(row.item)["amount"] == {"N": "0.10000000000000000000000000001"}


def test_embedded_lists_are_sized_by_the_published_rules_and_carry_their_childrens_problems(spark):
    # Size and problem of a list are summed up in the grouping without a limit, and over the kept
    # elements with one: both must agree with the item's own size by the rules, and a child row
    # that cannot be written (or, under a limit, only a kept one) quarantines its parent.
    parents = spark.createDataFrame([(1,), (2,), (3,), (4,)], "id long")
    children = spark.createDataFrame(
        [(1, 1, '"a"'), (1, 2, '{"b": "é"}'), (1, 3, "[1, 2.50, null]"), (2, 1, "true"), (2, 2, "{bad"),
         (4, 9, "{bad"), (4, 1, '"y"'), (4, 2, '"z"')],
        "parent_id long, pos long, doc string")
    children = children.select("parent_id", "pos", F.col("doc").alias("doc", metadata={KIND: "json"}))
    got = items_of(spark, """
entities:
  all:
    from: parent
    key: {PK: "P#{id}", SK: ALL}
    attributes:
      kids: {from: child, join: {id: parent_id}, order_by: pos, many: {pos: pos, doc: doc}}
  first2:
    from: parent
    key: {PK: "P#{id}", SK: FIRST2}
    attributes:
      kids: {from: child, join: {id: parent_id}, order_by: pos, limit: 2, many: {pos: pos, doc: doc}}
""", {"parent": parents, "child": children})
    clean = [(pk, sk) for (pk, sk), row in got.items() if not row.problem]
    assert sorted(clean) == [("P#1", "ALL"), ("P#1", "FIRST2"), ("P#3", "ALL"), ("P#3", "FIRST2"), ("P#4", "FIRST2")]
    for pk, sk in clean:
        assert got[(pk, sk)].size == item_size(json.loads(got[(pk, sk)].item)), (pk, sk)
    assert plain(got[("P#3", "ALL")].item)["kids"] == []
    assert [k["pos"] for k in plain(got[("P#1", "ALL")].item)["kids"]] == [1, 2, 3]
    assert [k["pos"] for k in plain(got[("P#1", "FIRST2")].item)["kids"]] == [1, 2]
    assert "not valid JSON" in got[("P#2", "ALL")].problem
    assert "not valid JSON" in got[("P#2", "FIRST2")].problem
    assert "not valid JSON" in got[("P#4", "ALL")].problem
    assert not got[("P#4", "FIRST2")].problem  # the bad child (pos 9) is not among the first two
    assert [k["doc"] for k in plain(got[("P#4", "FIRST2")].item)["kids"]] == ["y", "z"]
