"""Item digests: the wire JSON we send and what a Scan returns digest alike; reconcile's joins on small frames."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import Row

from jobs.verify.reconcile import DIGEST_SCHEMA, EXPECTED_SCHEMA, expected_digests, reconcile
from transforms.wire import canonical, canonical_number, item_digest

SENT = {
    "PK": {"S": "CUSTOMER#1"},
    "SK": {"S": "PROFILE"},
    "n": {"N": "1.50"},
    "big": {"N": "12345678901234567890123456789012345678"},
    "m": {"M": {"b": {"N": "100"}, "a": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": False}]}}},
    "b": {"B": "AAE="},
    "bs": {"BS": ["/w==", "AAE="]},
    "ss": {"SS": ["b", "a"]},
    "ns": {"NS": ["2.0", "10", "-1"]},
    "empty": {"S": ""},
}

# The same item as boto3's low-level client returns it from a Scan.
SCANNED = {
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["10", "-1", "2"]},
    "bs": {"BS": [b"\x00\x01", b"\xff"]},
    "b": {"B": b"\x00\x01"},
    "m": {"M": {"a": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": False}]}, "b": {"N": "100"}}},
    "big": {"N": "12345678901234567890123456789012345678"},
    "n": {"N": "1.5"},
    "SK": {"S": "PROFILE"},
    "PK": {"S": "CUSTOMER#1"},
    "empty": {"S": ""},
}


def with_value(item: dict, name: str, value: dict) -> dict:
    return {**item, name: value}


def test_sent_and_scanned_spellings_of_one_item_digest_alike():
    assert canonical(SENT) == canonical(SCANNED)
    assert item_digest(SENT) == item_digest(SCANNED)


def test_digest_is_sha256_hex():
    digest = item_digest(SENT)

    assert len(digest) == 64 and int(digest, 16) >= 0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1.50", "1.5"),
        ("0012.3400", "12.34"),
        ("100", "1E+2"),
        ("1E2", "1E+2"),
        ("-0.000", "0"),
        ("0", "0"),
        ("-1.10", "-1.1"),
        ("0.000001", "0.000001"),
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("1.2345678901234567890123456789012345678E+125", "1.2345678901234567890123456789012345678E+125"),
    ],
)
def test_numbers_are_normalized_exactly(text, expected):
    assert canonical_number(text) == expected


def test_numbers_that_differ_in_the_38th_digit_digest_differently():
    a = with_value(SENT, "big", {"N": "12345678901234567890123456789012345678"})
    b = with_value(SENT, "big", {"N": "12345678901234567890123456789012345679"})

    assert item_digest(a) != item_digest(b)


def test_values_that_look_alike_but_differ_in_type_or_content_digest_differently():
    base = item_digest(SENT)
    variants = [
        with_value(SENT, "n", {"S": "1.5"}),  # string, not number
        with_value(SENT, "n", {"N": "1.51"}),
        with_value(SENT, "ss", {"SS": ["a", "b", "c"]}),
        with_value(SENT, "ss", {"L": [{"S": "a"}, {"S": "b"}]}),  # a list is not a set
        with_value(SENT, "b", {"B": "AAI="}),
        with_value(SENT, "empty", {"NULL": True}),
        {k: v for k, v in SENT.items() if k != "empty"},
        with_value(SENT, "m", {"M": {"b": {"N": "100"}, "a": {"L": [{"NULL": True}, {"S": "x"}, {"BOOL": False}]}}}),
    ]

    assert all(item_digest(v) != base for v in variants)


def test_list_order_matters_but_set_and_map_order_do_not():
    a = {"l": {"L": [{"N": "1"}, {"N": "2"}]}, "s": {"NS": ["1", "2"]}, "m": {"M": {"x": {"S": "1"}, "y": {"S": "2"}}}}
    b = {"m": {"M": {"y": {"S": "2"}, "x": {"S": "1"}}}, "s": {"NS": ["2", "1"]}, "l": {"L": [{"N": "1"}, {"N": "2"}]}}
    c = {**a, "l": {"L": [{"N": "2"}, {"N": "1"}]}}

    assert item_digest(a) == item_digest(b)
    assert item_digest(a) != item_digest(c)


def test_unknown_types_are_refused():
    with pytest.raises(ValueError, match="unknown DynamoDB type"):
        item_digest({"x": {"Q": "1"}})


# --- on Spark ----------------------------------------------------------------------------------


def test_expected_digests_hash_the_item_json(spark):
    items = spark.createDataFrame(
        [Row(entity="customer", pk="CUSTOMER#1", sk="PROFILE", item=json.dumps(SENT), size=120, wcu=1)]
    )

    rows = expected_digests(items).collect()

    assert [tuple(r) for r in rows] == [("customer", "CUSTOMER#1", "PROFILE", item_digest(SCANNED))]


def test_reconcile_counts_missing_extra_and_mismatched_keys(spark):
    expected = spark.createDataFrame(
        [
            ("customer", "C#1", "PROFILE", "d1"),
            ("customer", "C#2", "PROFILE", "d2"),  # missing
            ("order", "C#1", "ORDER#1", "d3"),
            ("order", "C#1", "ORDER#2", "d4"),  # mismatched
            ("order", "C#1", "ORDER#3", "d5"),  # missing
        ],
        EXPECTED_SCHEMA,
    )
    actual = spark.createDataFrame(
        [
            ("C#1", "PROFILE", "d1"),
            ("C#1", "ORDER#1", "d3"),
            ("C#1", "ORDER#2", "changed"),
            ("C#9", "PROFILE", "d9"),  # extra
        ],
        DIGEST_SCHEMA,
    )

    result = reconcile(expected, actual)

    assert (result.expected, result.found, result.missing, result.extra, result.mismatched) == (5, 3, 2, 1, 1)
    assert result.by_entity == {
        "customer": {"expected": 2, "missing": 1, "mismatched": 0},
        "order": {"expected": 3, "missing": 1, "mismatched": 1},
    }
    assert result.missing_sample == (("C#1", "ORDER#3"), ("C#2", "PROFILE"))
    assert result.extra_sample == (("C#9", "PROFILE"),)
    assert result.mismatched_sample == (("C#1", "ORDER#2"),)
    assert not result.ok


def test_reconcile_matches_tables_without_a_sort_key(spark):
    expected = spark.createDataFrame(
        [("user", "U#1", None, "a"), ("user", "U#2", None, "b")], EXPECTED_SCHEMA
    )
    actual = spark.createDataFrame([("U#1", None, "a"), ("U#2", None, "b")], DIGEST_SCHEMA)

    result = reconcile(expected, actual)

    assert result.ok and (result.expected, result.found) == (2, 2)
    assert result.by_entity == {"user": {"expected": 2, "missing": 0, "mismatched": 0}}


def test_reconcile_samples_at_most_20_keys(spark):
    expected = spark.createDataFrame(
        [("user", f"U#{n:03d}", None, "a") for n in range(50)], EXPECTED_SCHEMA
    )
    actual = spark.createDataFrame([], DIGEST_SCHEMA)

    result = reconcile(expected, actual)

    assert result.missing == 50
    assert result.missing_sample == tuple((f"U#{n:03d}", None) for n in range(20))
