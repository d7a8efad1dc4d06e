"""Column -> DynamoDB value compilers (transforms.values), one small frame per concern.

Expected values are written out by hand from DynamoDB's rules: numbers as exact decimal text
with at most 38 significant digits and a size of 1 byte per 2 significant digits + 1;
strings and binary as their UTF-8 / raw byte counts; lists and maps 3 bytes + 1 per element.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.values import (
    INSTANT,
    KIND,
    LOCAL_TIMESTAMP,
    NUMBER_TEXT_ARRAY,
    Options,
    Value,
    json_value,
    number_value,
    plain_decimal,
    scalar_value,
)
from transforms.wire import value_size

OMIT = Options()
KEEP_NULL = Options(nulls="null")


def compiled(df, column: str, value: Value) -> list:
    """Each row's input with its compiled json (parsed), size and problem: one collect."""
    rows = df.select(F.col(column).alias("input"), value.json.alias("j"), value.size.alias("size"),
                     value.problem.alias("problem")).collect()
    # A value with a problem quarantines its item: its json need not parse, so it stays text.
    return [(r.input, r.j if r.j is None or r.problem else json.loads(r.j), r.size, r.problem) for r in rows]


def scalar(df, column: str, conversion: str | None = None, options: Options = OMIT) -> list:
    field = df.schema[column]
    value = scalar_value(F.col(column), field.dataType, field.metadata.get(KIND), conversion, options, "x")
    return compiled(df, column, value)


def with_kind(df, column: str, kind: str):
    return df.select(*[F.col(c).alias(c, metadata={KIND: kind}) if c == column else F.col(c) for c in df.columns])


# --- numbers ---------------------------------------------------------------------------------


def test_plain_decimal_is_the_shortest_exact_form(spark):
    cases = [
        ("0", "0"),
        ("-0", "0"),
        ("-0.000", "0"),
        ("-00", "0"),
        ("001.500", "1.5"),
        ("+5", "5"),
        (" 42 ", "42"),
        (".5", "0.5"),
        ("-.5", "-0.5"),
        ("100", "100"),  # integer zeros are digits of the value, not padding
        ("100.", "100"),
        ("10.50", "10.5"),
        ("1.05", "1.05"),
        ("1.0E-8", "1E-8"),  # how Spark prints the double 1e-8
        ("12e3", "12E3"),
        ("-12.34e-1", "-12.34E-1"),
        ("1.50E+010", "1.5E10"),
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        (".000", "0"),
        ("0E5", "0"),
        ("1e-0", "1E0"),
        ("NaN", "NaN"),  # not a number: the text as it is (the value quarantines it)
    ]
    df = spark.createDataFrame([(t,) for t, _ in cases], "t string")
    got = df.select("t", plain_decimal(F.col("t")).alias("plain"))
    expected = spark.createDataFrame(cases, "t string, plain string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_numbers_fit_38_significant_digits_or_are_quarantined_with_a_reason(spark):
    d38 = "12345678901234567890123456789012345678"
    d39 = "123456789012345678901234567890123456789"
    cases = [
        d38,
        "-" + d38,
        d39,
        "0." + d38,
        "1" + "0" * 45,  # one significant digit: trailing zeros are not precision
        "0." + "0" * 50 + "1",
        "1E126",  # above DynamoDB's 9.99..E+125
        "9.9E125",
        "1e-130",  # DynamoDB's smallest magnitude
        "0.1E-129",
        "1E-131",
        "-12.5e-140",
        "1E999999999999",
        "NaN",
        "Infinity",
        "12abc",
    ]
    df = spark.createDataFrame([(t,) for t in cases], "t string")
    got = {t: (j, p) for t, j, _, p in compiled(df, "t", number_value(F.col("t"), OMIT, "x"))}
    assert got[d38] == ({"N": d38}, None)
    assert got["-" + d38] == ({"N": "-" + d38}, None)
    assert got["0." + d38] == ({"N": "0." + d38}, None)
    assert got["1" + "0" * 45] == ({"N": "1" + "0" * 45}, None)
    assert got["0." + "0" * 50 + "1"] == ({"N": "0." + "0" * 50 + "1"}, None)
    assert got[d39] == (None, f"x: number {d39} has 39 significant digits; DynamoDB holds at most 38")
    out_of_range = " is outside DynamoDB's range (1E-130 to 9.99E+125 in magnitude)"
    assert got["1E126"] == (None, "x: number 1E126" + out_of_range)
    assert got["9.9E125"] == ({"N": "9.9E125"}, None)
    assert got["1e-130"] == ({"N": "1E-130"}, None)
    assert got["0.1E-129"] == ({"N": "0.1E-129"}, None)
    assert got["1E-131"] == (None, "x: number 1E-131" + out_of_range)
    assert got["-12.5e-140"] == (None, "x: number -12.5e-140" + out_of_range)
    assert got["1E999999999999"] == (None, "x: number 1E999999999999" + out_of_range)
    assert got["NaN"] == (None, "x: value NaN is not a number")
    assert got["Infinity"] == (None, "x: value Infinity is not a number")
    assert got["12abc"] == (None, "x: value 12abc is not a number")


def test_numbers_that_do_not_fit_are_kept_as_strings_when_the_policy_says_so(spark):
    d38 = "12345678901234567890123456789012345678"
    d39 = "123456789012345678901234567890123456789"
    df = spark.createDataFrame([(d38,), (d39,), ("NaN",), ("001.50",)], "t string")
    value = number_value(F.col("t"), Options(out_of_range_numbers="string"), "x")
    got = {t: (j, size, p) for t, j, size, p in compiled(df, "t", value)}
    assert got[d38] == ({"N": d38}, 20, None)
    assert got[d39] == ({"S": d39}, 39, None)  # the source text, unchanged; 39 UTF-8 bytes
    assert got["NaN"] == ({"S": "NaN"}, 3, None)
    assert got["001.50"] == ({"N": "1.5"}, 2, None)


def test_number_size_is_one_byte_per_two_significant_digits_plus_one(spark):
    # size = ceil(significant digits / 2) + 1, leading and trailing zeros not counted
    cases = {
        "7": 2,
        "1.5": 2,
        "12345": 4,
        "-12345": 4,
        "100": 2,  # 1E2: one significant digit
        "0.00120": 2,  # 12
        "-12.34e-1": 3,  # 1234
        "123456789012345678901234567890123456789"[:38]: 20,
    }
    df = spark.createDataFrame([(t,) for t in cases], "t string")
    got = {t: size for t, _, size, _ in compiled(df, "t", number_value(F.col("t"), OMIT, "x"))}
    assert got == cases


def test_typed_number_columns_become_exact_n_text(spark):
    schema = "i long, d decimal(38,18), f double, small decimal(10,2)"
    df = spark.createDataFrame(
        [(-12345, Decimal("1.5"), 1e-8, Decimal("-0.50")),
         (9223372036854775807, Decimal("0"), 0.1, Decimal("100.00"))],
        schema,
    )
    got = {c: scalar(df, c) for c in df.columns}
    assert [(j, size) for _, j, size, _ in got["i"]] == [({"N": "-12345"}, 4), ({"N": "9223372036854775807"}, 11)]
    # decimal(38,18) prints 18 fraction digits; DynamoDB gets the shortest exact form.
    # Spark prints a zero of scale 18 as '0E-18': still exactly zero, and DynamoDB reads it so.
    assert [Decimal(j["N"]) for _, j, _, _ in got["d"]] == [Decimal("1.5"), 0]
    assert got["d"][0][1] == {"N": "1.5"}
    # a double goes through its shortest decimal text, never through 0.1000000000000000055...
    assert [j for _, j, _, _ in got["f"]] == [{"N": "1E-8"}, {"N": "0.1"}]
    assert [(j, size) for _, j, size, _ in got["small"]] == [({"N": "-0.5"}, 2), ({"N": "100"}, 2)]
    assert all(p is None for col in got.values() for *_, p in col)


def test_number_text_columns_are_numbers_by_default(spark):
    df = with_kind(spark.createDataFrame([("-001.2500",), ("1e-07",), ("oops",)], "t string"), "t", "number_text")
    got = {t: (j, p) for t, j, _, p in scalar(df, "t")}
    assert got == {
        "-001.2500": ({"N": "-1.25"}, None),
        "1e-07": ({"N": "1E-7"}, None),
        "oops": (None, "x: value oops is not a number"),
    }


# --- strings, binary, booleans ---------------------------------------------------------------


STRINGS = [
    "plain",
    "héllo wörld — ünïcödé",
    "日本語のテキスト",
    "emoji 😀👍🏽",
    "",
    'quotes " and \' and back\\slash',
    "new\nline\r\ntab\tend",
    "control \x01\x1f and \u2028",
    "</script>{\"S\":\"x\"}",
]


def test_strings_round_trip_exactly_and_size_is_utf8_bytes(spark):
    df = spark.createDataFrame([(s,) for s in STRINGS], "s string")
    got = {s: (j, size, p) for s, j, size, p in scalar(df, "s")}
    assert set(got) == set(STRINGS)
    for s in STRINGS:
        assert got[s] == ({"S": s}, len(s.encode("utf-8")), None), s


def test_binary_is_one_line_of_base64_and_size_is_raw_bytes(spark):
    blobs = [bytes(range(256)) * 2, b"", b"\x00", b"\r\n" * 100]
    df = spark.createDataFrame([(bytearray(b),) for b in blobs], "b binary")
    field = df.schema["b"]
    value = scalar_value(F.col("b"), field.dataType, None, None, OMIT, "x")
    rows = df.select("b", value.json.alias("j"), value.size.alias("size")).collect()
    assert len(rows) == len(blobs)
    for row in rows:
        raw = bytes(row.b)
        assert "\r" not in row.j and "\n" not in row.j  # Spark's base64 wraps at 76 characters
        assert json.loads(row.j) == {"B": base64.b64encode(raw).decode("ascii")}
        assert base64.b64decode(json.loads(row.j)["B"]) == raw
        assert row.size == len(raw)


def test_booleans_and_text_read_as_booleans(spark):
    df = spark.createDataFrame([(True, "yes"), (False, "F"), (None, "maybe")], "b boolean, t string")
    assert [(j, size, p) for _, j, size, p in scalar(df, "b")] == [
        ({"BOOL": True}, 1, None),
        ({"BOOL": False}, 1, None),
        (None, 0, None),
    ]
    assert [(j, p) for _, j, _, p in scalar(df, "t", "bool")] == [
        ({"BOOL": True}, None),
        ({"BOOL": False}, None),
        (None, "x: not a boolean"),
    ]


# --- JSON text -> M / L ----------------------------------------------------------------------


def test_json_documents_become_typed_maps_and_lists(spark):
    big = "123456789012345678901234567890"
    doc = (
        '{"name": "Zoë 😀", "esc": "a\\"b\\\\c\\n\\u00e9\\/", "n": ' + big + ', "f": -1.5e-3, "zero": 0,'
        ' "none": null, "obj": {}, "arr": [], "yes": true, "no": false,'
        ' "nested": {"l": [1, {"k": [true, "x, y: {z}"]}], "\\u00fcber": "key escape"}}'
    )
    docs = [doc, '[1, "a", null, [], {}]', '"just text"', "42", "  {\n\t\"a\" :\r\n 1 }  "]
    df = spark.createDataFrame([(d,) for d in docs], "t string")
    got = {t: (j, p) for t, j, _, p in compiled(df, "t", json_value(F.col("t"), "m"))}
    j, p = got[doc]
    assert p is None
    f = j["M"].pop("f")
    assert list(f) == ["N"] and Decimal(f["N"]) == Decimal("-0.0015")
    assert j == {"M": {
        "name": {"S": "Zoë 😀"},
        "esc": {"S": 'a"b\\c\né/'},
        "n": {"N": big},  # kept exactly, never through a float
        "zero": {"N": "0"},
        "none": {"NULL": True},
        "obj": {"M": {}},
        "arr": {"L": []},
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
        "nested": {"M": {
            "l": {"L": [{"N": "1"}, {"M": {"k": {"L": [{"BOOL": True}, {"S": "x, y: {z}"}]}}}]},
            "über": {"S": "key escape"},
        }},
    }}
    assert got['[1, "a", null, [], {}]'] == (
        {"L": [{"N": "1"}, {"S": "a"}, {"NULL": True}, {"L": []}, {"M": {}}]}, None)
    assert got['"just text"'] == ({"S": "just text"}, None)
    assert got["42"] == ({"N": "42"}, None)
    assert got["  {\n\t\"a\" :\r\n 1 }  "] == ({"M": {"a": {"N": "1"}}}, None)


def test_json_size_follows_the_published_rules_for_a_small_document(spark):
    # M: 3 + ("a": 1 + "xy" 2 + 1) + ("b": 1 + L + 1)
    # L: 3 + (1 -> 2 bytes, + 1) + (true -> 1, + 1) + (null -> 1, + 1) = 10
    df = spark.createDataFrame([('{"a": "xy", "b": [1, true, null]}',)], "t string")
    [(_, j, size, p)] = compiled(df, "t", json_value(F.col("t"), "m"))
    assert p is None and j == {"M": {"a": {"S": "xy"}, "b": {"L": [{"N": "1"}, {"BOOL": True}, {"NULL": True}]}}}
    assert size == 3 + (1 + 2 + 1) + (1 + 10 + 1)


@pytest.mark.parametrize("text", [
    '{"a": }',
    '{"a":,"b":1}',
    '{"a": 1,"b"}',
    '{"a"}',
    '["a": 1]',
    '[1, "a": 2]',
    "",
    "   ",
    '{"a": "x\\q"}',
    '{"a": NaN}',
    '{"a": 1,}',
    '{"a" 1}',
    '{"a": [1, 2}',
    '{"a": 1}}',
    "not json",
    '{"a": tru}',
    '[1 2]',
    '{"a": 1} {"b": 2}',
    '{"a": "ctl \x01"}',
    '{"n": 1234567890123456789012345678901234567891}',
])
def test_invalid_json_is_a_problem(spark, text):
    df = spark.createDataFrame([(text,)], "t string")
    [(_, _, _, problem)] = compiled(df, "t", json_value(F.col("t"), "m"))
    assert problem is not None and problem.startswith("m: "), problem


def test_json_problem_messages(spark):
    texts = ['{"a": tru}', '{"a": 1,}', '{"a": [1, 2}', '{"n": 1234567890123456789012345678901234567891}',
             '{"n": 12345678901234567890123456789012345678, "z": 1' + "0" * 50 + "}",
             '{"a": 1, "a": 2}', '{"s": "\\ud800"}', "[" * 33 + "]" * 33, "[" * 32 + "]" * 32,
             '[1e126, 9.99e125, 1e-130, 0.1e-130, 1E+1000000]', '[0.000, -0, 1e-131]', '{"a": 1} x']
    df = spark.createDataFrame([(t,) for t in texts], "t string")
    got = {t: p for t, _, _, p in compiled(df, "t", json_value(F.col("t"), "m"))}
    assert got == {
        '{"a": tru}': "m: not valid JSON near character 10: Unrecognized token 'tru': was expecting "
                      "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')",
        '{"a": 1,}': "m: not valid JSON near character 10: Unexpected character ('}' (code 125)): "
                     "was expecting double-quote to start field name",
        '{"a": [1, 2}': "m: not valid JSON near character 13: Unexpected close marker '}': expected ']' "
                        "(for Array starting at line: 1, column: 7)",
        '{"n": 1234567890123456789012345678901234567891}': "m: a JSON number has more than 38 significant digits",
        texts[4]: None,  # 38 digits, and trailing zeros are not significant
        '{"a": 1, "a": 2}': None,  # the last value, as jsonb and json.loads keep it (below)
        '{"s": "\\ud800"}': "m: a JSON string holds a lone surrogate \\ud800 (not Unicode text)",
        texts[7]: "m: nested deeper than DynamoDB's 32 levels",
        texts[8]: None,
        texts[9]: "m: a JSON number 1e126 is outside DynamoDB's range (1E-130 to 9.99E+125 in magnitude)",
        texts[10]: "m: a JSON number 1e-131 is outside DynamoDB's range (1E-130 to 9.99E+125 in magnitude)",
        '{"a": 1} x': "m: not valid JSON near character 11: Unrecognized token 'x': was expecting "
                      "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')",
    }


def test_a_key_given_twice_keeps_its_last_value(spark):
    doc = '{"a": 1, "b": [{"x": 1, "x": 2.50}], "a": {"deep": 12345678901234567890123456789012345678}}'
    df = spark.createDataFrame([(doc,)], "t string")
    [(_, j, size, p)] = compiled(df, "t", json_value(F.col("t"), "m"))
    assert p is None
    x = j["M"]["b"]["L"][0]["M"].pop("x")
    assert list(x) == ["N"] and Decimal(x["N"]) == Decimal("2.50")  # the value exactly; its spelling may change
    assert j == {"M": {"a": {"M": {"deep": {"N": "12345678901234567890123456789012345678"}}},
                       "b": {"L": [{"M": {}}]}}}


def test_json_strings_of_any_length_convert(spark):
    # The regex rewriting this replaced overflowed the executor's stack on a string of 10,000 characters.
    long_text = "x\\\"y" * 50_000
    df = spark.createDataFrame([('{"a": "' + long_text + '", "b": [' + ",".join(["1"] * 20_000) + "]}",)], "t string")
    [(_, j, size, p)] = compiled(df, "t", json_value(F.col("t"), "m"))
    assert p is None and j["M"]["a"] == {"S": 'x"y' * 50_000} and len(j["M"]["b"]["L"]) == 20_000
    assert size == 3 + (1 + 150_000 + 1) + (1 + 3 + 20_000 * 3 + 1)


def test_json_columns_by_kind_and_nulls(spark):
    df = with_kind(spark.createDataFrame([('{"a": [1]}',), (None,)], "t string"), "t", "json")
    assert [(j, p) for _, j, _, p in scalar(df, "t")] == [({"M": {"a": {"L": [{"N": "1"}]}}}, None), (None, None)]
    assert [j for _, j, _, _ in scalar(df, "t", options=KEEP_NULL)][1] == {"NULL": True}


# --- arrays, sets ----------------------------------------------------------------------------


def test_arrays_become_lists_with_null_elements_as_null(spark):
    df = spark.createDataFrame(
        [([1, None, 30], ["a", None], [Decimal("1.50"), None]), ([], [], None)],
        "ints array<int>, strs array<string>, decs array<decimal(10,2)>",
    )
    ints, strs, decs = (scalar(df, c) for c in df.columns)
    # 3 + (2 + 1) + (NULL 1 + 1) + (2 + 1)
    assert ints[0][1:] == ({"L": [{"N": "1"}, {"NULL": True}, {"N": "30"}]}, 11, None)
    assert ints[1][1:] == ({"L": []}, 3, None)
    assert strs[0][1:3] == ({"L": [{"S": "a"}, {"NULL": True}]}, 3 + (1 + 1) + (1 + 1))
    assert decs[0][1] == {"L": [{"N": "1.5"}, {"NULL": True}]}
    assert decs[1][1] is None  # a NULL array is a NULL attribute: omitted


def test_number_text_arrays_are_lists_of_exact_numbers(spark):
    df = with_kind(spark.createDataFrame([(["001.50", None, "1" * 39],)], "a array<string>"), "a", NUMBER_TEXT_ARRAY)
    [(_, j, _, p)] = scalar(df, "a")
    assert json.loads(j)["L"][:2] == [{"N": "1.5"}, {"NULL": True}]  # the item is quarantined; its JSON still parses
    assert p == f"x: number {'1' * 39} has 39 significant digits; DynamoDB holds at most 38"


def test_sets_deduplicate_drop_nulls_and_omit_when_empty(spark):
    df = spark.createDataFrame(
        [
            (["b", "a", "b", None], [Decimal("1.50"), Decimal("1.5"), Decimal("2"), None]),
            ([], []),
            ([None], [None]),
            (None, None),
        ],
        "tags array<string>, nums array<decimal(10,2)>",
    )
    tags = scalar(df, "tags", "string_set")
    nums = scalar(df, "nums", "number_set")
    assert sorted(tags[0][1]["SS"]) == ["a", "b"] and list(tags[0][1]) == ["SS"]
    assert sorted(nums[0][1]["NS"]) == ["1.5", "2"] and list(nums[0][1]) == ["NS"]
    # A set costs its members' sizes, no overhead (lists and maps have one): as transforms.wire counts it.
    assert (tags[0][2], nums[0][2]) == (1 + 1, 2 + 2) == (value_size(tags[0][1]), value_size(nums[0][1]))
    assert [j for _, j, _, _ in tags[1:]] == [None, None, None]  # DynamoDB rejects an empty set
    assert [j for _, j, _, _ in nums[1:]] == [None, None, None]
    assert all(p is None for *_, p in tags + nums)
    kept = scalar(df, "tags", "string_set", KEEP_NULL)
    assert [j for _, j, _, _ in kept[1:]] == [{"NULL": True}] * 3


def test_number_sets_hold_exponent_forms_and_refuse_non_numbers(spark):
    df = spark.createDataFrame([([1e-8, 2.5, 2.5],)], "d array<double>")
    [(_, j, _, p)] = scalar(df, "d", "number_set")
    assert p is None and sorted(j["NS"]) == ["1E-8", "2.5"]
    bad = spark.createDataFrame([(["1", "abc"],)], "s array<string>")
    [(_, j, _, p)] = scalar(bad, "s", "number_set")
    assert p == "x: set member value abc is not a number"


def test_sets_need_an_array_column():
    with pytest.raises(TypeError, match="'string_set' needs an array column, this one is string"):
        scalar_value(F.col("s"), T.StringType(), None, "string_set", OMIT, "x")


# --- dates and times -------------------------------------------------------------------------


def test_instants_carry_z_and_local_timestamps_do_not(spark):
    texts = ["2024-01-02 03:04:05.678901", "2024-02-29 23:59:59", None]
    df = spark.createDataFrame([(t,) for t in texts], "s string").select(
        F.col("s").cast("timestamp").alias("instant", metadata={KIND: INSTANT}),
        F.col("s").cast("timestamp").alias("local", metadata={KIND: LOCAL_TIMESTAMP}),
        F.col("s").cast("timestamp_ntz").alias("ntz"),
        F.col("s").cast("date").alias("day"),
    )
    got = {c: [j for _, j, _, _ in scalar(df, c)] for c in df.columns}
    assert got["instant"] == [{"S": "2024-01-02T03:04:05.678901Z"}, {"S": "2024-02-29T23:59:59.000000Z"}, None]
    assert got["local"] == [{"S": "2024-01-02T03:04:05.678901"}, {"S": "2024-02-29T23:59:59.000000"}, None]
    assert got["ntz"] == got["local"]
    assert got["day"] == [{"S": "2024-01-02"}, {"S": "2024-02-29"}, None]


def test_epoch_seconds_for_timestamps_and_dates(spark):
    texts = ["2024-01-01 00:00:00", "1970-01-01 00:00:01.999999", "1969-12-31 23:59:59"]
    df = spark.createDataFrame([(t,) for t in texts], "s string").select(
        F.col("s").cast("timestamp").alias("at", metadata={KIND: INSTANT}),
        F.col("s").cast("date").alias("day"),
    )
    at = [j for _, j, _, _ in scalar(df, "at", "epoch_seconds")]
    day = [j for _, j, _, _ in scalar(df, "day", "epoch_seconds")]
    assert at == [{"N": "1704067200"}, {"N": "1"}, {"N": "-1"}]
    assert day == [{"N": "1704067200"}, {"N": "0"}, {"N": "-86400"}]


# --- the null policy -------------------------------------------------------------------------


def test_null_policy_omits_or_stores_null(spark):
    df = spark.createDataFrame([(None, None, None)], "s string, n decimal(10,2), b boolean")
    for column in df.columns:
        [(_, j, size, p)] = scalar(df, column)
        assert (j, size, p) == (None, 0, None), column
        [(_, j, size, p)] = scalar(df, column, options=KEEP_NULL)
        assert (j, size, p) == ({"NULL": True}, 1, None), column
