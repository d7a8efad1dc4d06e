"""expectations.validate: built-in item rules, custom suites, severities and Data Docs.

Each validate_* call is one GX run (a handful of Spark jobs), so every test builds a
small cached DataFrame and validates it once.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from expectations import validate
from expectations.validate import (
    ExpectationOutcome,
    find_custom_suite,
    item_suite_spec,
    validate_items,
    validate_source,
)
from transforms.errors import MappingError

ITEM_SCHEMA = "entity string, pk string, sk string, item string, size long, pk_bytes int, sk_bytes int"


def item(pk: str | None, sk: str | None = "PROFILE", size: int = 120, pk_bytes: int | None = None) -> tuple:
    # Like transforms.items: coalesce(octet_length(key), 0).
    pk_len = len(pk.encode()) if pk is not None else 0
    sk_len = len(sk.encode()) if sk is not None else 0
    return ("customer", pk, sk, '{"PK":{"S":"x"}}', size, pk_bytes if pk_bytes is not None else pk_len, sk_len)


def good_items() -> list[tuple]:
    return [item(f"CUSTOMER#{n}") for n in range(1, 6)] + [item("PRODUCT#1", "DETAIL")]


@pytest.fixture
def items_df(spark):
    frames = []

    def build(rows: list[tuple]):
        frame = spark.createDataFrame(rows, ITEM_SCHEMA).cache()
        frames.append(frame)
        return frame

    yield build
    for frame in frames:
        frame.unpersist()


def outcome(report, name: str, column: str) -> ExpectationOutcome:
    (found,) = [o for o in report.outcomes if o.name == name and o.column == column]
    return found


def test_good_items_pass_every_built_in_rule(items_df):
    report = validate_items(items_df(good_items()), "store", has_sort_key=True, docs_dir=None)

    assert report.success
    assert report.suite == "items.store"
    assert report.evaluated_rows == 6
    assert [(o.name, o.column) for o in report.outcomes] == [
        (spec["type"], spec["kwargs"].get("column") or ",".join(spec["kwargs"]["column_list"]))
        for spec in item_suite_spec(has_sort_key=True)
    ]
    assert all(o.success and o.unexpected_count == 0 and o.severity == "critical" for o in report.outcomes)


NOT_NULL, UNIQUE, BETWEEN = (
    "expect_column_values_to_not_be_null",
    "expect_compound_columns_to_be_unique",
    "expect_column_values_to_be_between",
)
BROKEN = {
    # A NULL key has 0 key bytes, so it breaks the byte-length rule as well.
    "null pk": (item(None), {(NOT_NULL, "pk"): 1, (BETWEEN, "pk_bytes"): 1}),
    "null sk": (item("CUSTOMER#9", sk=None), {(NOT_NULL, "sk"): 1, (BETWEEN, "sk_bytes"): 1}),
    "duplicate key": (item("CUSTOMER#1"), {(UNIQUE, "pk,sk"): 2}),
    "item over 400 KB": (item("CUSTOMER#9", size=500_000), {(BETWEEN, "size"): 1}),
    "pk over 2048 bytes": (item("CUSTOMER#9", pk_bytes=3000), {(BETWEEN, "pk_bytes"): 1}),
}


@pytest.mark.parametrize("bad_row, expected_failures", BROKEN.values(), ids=BROKEN.keys())
def test_each_built_in_rule_fails_on_the_row_that_breaks_it(items_df, bad_row, expected_failures):
    report = validate_items(items_df(good_items() + [bad_row]), "store", has_sort_key=True, docs_dir=None)

    assert not report.success
    failures = {(o.name, o.column): o.unexpected_count for o in report.outcomes if not o.success}
    assert failures == expected_failures
    assert {o.severity for o in report.outcomes} == {"critical"}


def test_without_sort_key_pk_alone_is_the_unique_key(items_df):
    rows = [item(f"CUSTOMER#{n}", sk=None) for n in range(3)] + [item("CUSTOMER#1", sk=None)]

    report = validate_items(items_df(rows), "profiles", has_sort_key=False, docs_dir=None)

    assert not report.success
    # No sk rules: sk is NULL and sk_bytes 0 on every item of a table without a sort key.
    assert {o.column for o in report.outcomes} == {"pk", "size", "pk_bytes"}
    failures = {(o.name, o.column): o.unexpected_count for o in report.outcomes if not o.success}
    assert failures == {("expect_column_values_to_be_unique", "pk"): 2}


def test_failing_warning_from_custom_suite_is_reported_but_does_not_fail(items_df):
    # items.demo.json ships with the package: pk prefix (critical), size <= 350000 (warning).
    rows = good_items() + [item("PRODUCT#2", size=360_000)]

    report = validate_items(items_df(rows), "demo", has_sort_key=True, docs_dir=None)

    assert report.success
    failed = [o for o in report.outcomes if not o.success]
    assert failed == [ExpectationOutcome("expect_column_values_to_be_between", "size", False, 1, "warning")]
    regex = outcome(report, "expect_column_values_to_match_regex", "pk")
    assert (regex.success, regex.severity) == (True, "critical")


def test_data_docs_of_every_validation_land_in_docs_dir(items_df, tmp_path):
    docs = tmp_path / "data_docs"
    validate_items(items_df(good_items()), "first", has_sort_key=True, docs_dir=docs)
    validate_items(items_df(good_items() + [item(None)]), "second", has_sort_key=True, docs_dir=docs)

    index = (docs / "index.html").read_text()
    # The second build must not drop the first mapping's page.
    for mapping in ("first", "second"):
        (page,) = (docs / "validations" / "items" / mapping).rglob("*.html")
        assert page.relative_to(docs).as_posix() in index
    assert (docs / "expectations" / "items" / "first.html").is_file()


def test_source_suite_runs_when_its_file_exists(spark, monkeypatch):
    suite = {
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"},
             "meta": {"severity": "warning"}},
        ]
    }
    monkeypatch.setattr(validate, "find_custom_suite", {"source.public.customer": suite}.get)
    customers = spark.createDataFrame([(1, "a@x.io"), (2, None)], "customer_id int, email string").cache()

    report = validate_source(customers, "public.customer", docs_dir=None)
    missing = validate_source(customers, "public.orders", docs_dir=None)

    customers.unpersist()
    assert missing is None
    assert (report.suite, report.success, report.evaluated_rows) == ("source.public.customer", False, 2)
    email, broken = report.outcomes
    assert (email.column, email.success, email.unexpected_count, email.severity) == ("email", False, 1, "critical")
    assert (broken.success, broken.severity) == (False, "warning")
    assert "no_such_column" in broken.error


def test_shipped_demo_suite_round_trips_through_gx():
    import great_expectations as gx

    gx.get_context(mode="ephemeral")
    suite = find_custom_suite("items.demo")

    assert gx.ExpectationSuite(**suite).to_json_dict() == suite
    assert find_custom_suite("items.no_such_mapping") is None


@pytest.mark.parametrize(
    "expectation, path, message",
    [
        ({"type": "expect_column_values_to_be_nul", "kwargs": {"column": "pk"}}, "expectations[0]",
         "expect_column_values_to_be_nul not found"),
        ({"type": "expect_column_values_to_be_between", "kwargs": {"col": "size", "max_value": 1}},
         "expectations[0]", "col"),
        ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "pk"}, "meta": {"severity": "fatal"}},
         "expectations[0].meta.severity", "unknown severity 'fatal'"),
    ],
    ids=["misspelt type", "unknown kwarg", "unknown severity"],
)
def test_a_broken_custom_suite_is_a_mapping_error_not_a_silent_skip(monkeypatch, expectation, path, message):
    monkeypatch.setattr(validate, "find_custom_suite", {"items.broken": {"expectations": [expectation]}}.get)

    with pytest.raises(MappingError) as raised:
        validate_items(None, "broken", has_sort_key=True, docs_dir=None)

    (problem,) = raised.value.problems
    assert (problem.file, problem.path) == ("expectations/suites/items.broken.json", path)
    assert message in problem.message


def test_a_suite_file_that_is_not_json_names_file_and_line(monkeypatch, tmp_path):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "items.bad.json").write_text('{\n  "expectations": [,]\n}\n')
    monkeypatch.setattr(validate, "resources", SimpleNamespace(files=lambda package: tmp_path))

    with pytest.raises(MappingError, match=r"expectations/suites/items.bad.json:2: not valid JSON"):
        find_custom_suite("items.bad")


def test_item_suite_spec_is_plain_json():
    spec = item_suite_spec(has_sort_key=True)

    assert json.loads(json.dumps(spec)) == spec
    assert {s["severity"] for s in spec} == {"critical"}
    assert {"type": "expect_column_values_to_be_between",
            "kwargs": {"column": "size", "min_value": 1, "max_value": 409600},
            "severity": "critical"} in spec


def test_failing_data_docs_show_sample_unexpected_values_and_one_page_per_run(items_df, tmp_path):
    """A clean run skips the sample jobs (its samples are empty anyway); a run that met unexpected
    values runs again for them: its one page in the docs shows them."""
    docs = tmp_path / "data_docs"
    report = validate_items(items_df(good_items() + [item("CUSTOMER#9", size=987_654)]), "big", has_sort_key=True,
                            docs_dir=docs)
    assert not report.success
    assert outcome(report, "expect_column_values_to_be_between", "size").unexpected_count == 1
    (page,) = (docs / "validations" / "items" / "big").rglob("*.html")
    assert "987654" in page.read_text()
    assert page.relative_to(docs).as_posix() in (docs / "index.html").read_text()
