"""Access patterns on the demo, on the real databases and dynalite.

Per engine, the demo mapping (its four patterns: a customer's profile, a customer's orders in date
order, an order by id through GSI1, a product's recent reviews) is run at scale 0.2; the run's
last stage asks DynamoDB each pattern for 50 sampled parameter values and compares the answers
with the pattern's SQL. Then a deliberately wrong mapping (order sort keys with the date written
day first, so they no longer sort by date) must fail its date-order pattern with a readable
difference, and `carve check-patterns` must say the same about that table without writing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.devtools.commands import demo_connection
from jobs.devtools.demo_data import HUGE_ORDER_ID, DemoDatabase, create_demo_database
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.pipeline import Pipeline, RunOptions
from jobs.sinks.table import delete_table
from tests.support.databases import drop_database
from tests.support.dynamodb import dynamodb_client
from transforms.mapping import load_mapping

pytestmark = pytest.mark.integration

SCALE = 0.2
DEMO_PATTERNS = {"customer_profile", "customer_orders", "order_by_id", "product_recent_reviews"}


def with_table(mapping, table: str, order_sort_key: str | None = None):
    target = mapping.target.model_copy(update={"table": table})
    entities = dict(mapping.entities)
    if order_sort_key:
        order = entities["order"]
        entities["order"] = order.model_copy(update={"key": order.key | {"SK": order_sort_key}})
    return mapping.model_copy(update={"target": target, "entities": entities})


def execute(spark, mapping, engine: str, target: DemoDatabase, endpoint: str, report_dir: Path,
            write: bool = True) -> dict[str, Any]:
    pipeline = Pipeline(spark, mapping, packaged_mapping(DEMO_MAPPINGS[engine]), demo_connection(target),
                        RunOptions(report_dir, endpoint_url=endpoint), Console(highlight=False, width=200))
    report = pipeline.execute(write=write, reconcile=write)
    return report.as_dict() | {"summary": report.summary_lines()}


@pytest.fixture(scope="module", params=("postgres", "mariadb"))
def demo(request, spark, dynamodb_endpoint, tmp_path_factory) -> Iterator[tuple[str, Any, DemoDatabase, dict]]:
    engine = request.param
    target = DemoDatabase(engine, database=f"carve_patterns_{engine}")
    drop_database(target)
    create_demo_database(target, scale=SCALE, seed=11)
    spark.sparkContext.environment.update({name: os.environ[name] for name in LOCAL_AWS_ENV})
    mapping = with_table(load_mapping(packaged_mapping(DEMO_MAPPINGS[engine])), f"CarvePatterns-{uuid.uuid4().hex[:8]}")
    # One more: the order over 400 KB, which the run quarantines, asked for by its id.
    by_id = mapping.patterns["order_by_id"]
    huge = by_id.model_copy(update={"parameters": f"{by_id.parameters} WHERE order_id = {HUGE_ORDER_ID}"})
    mapping = mapping.model_copy(update={"patterns": mapping.patterns | {"huge_order": huge}})
    client = dynamodb_client(dynamodb_endpoint)
    try:
        report = execute(spark, mapping, engine, target, dynamodb_endpoint, tmp_path_factory.mktemp(f"patterns-{engine}"))
        yield engine, mapping, target, report
    finally:
        delete_table(client, mapping.target.table)
        drop_database(target)


def test_every_demo_pattern_agrees_with_the_source_over_50_samples(demo) -> None:
    _engine, _mapping, _target, report = demo
    assert report["status"] == "ok", report.get("error")
    patterns = {p["name"]: p for p in report["patterns"]}
    assert set(patterns) == DEMO_PATTERNS | {"huge_order"}
    for name in DEMO_PATTERNS:
        pattern = patterns[name]
        assert pattern["samples"] == 50 and pattern["passed"] == 50, (name, pattern["failures"])
    # Answers were compared, not just empty ones: a profile each, several orders per customer, ten reviews.
    assert patterns["customer_profile"]["compared"] == patterns["order_by_id"]["compared"] == 50
    assert patterns["customer_orders"]["compared"] > 100
    assert patterns["product_recent_reviews"]["compared"] > 100
    assert report["stages"]["patterns"]["rows"] == sum(p["samples"] for p in patterns.values())
    assert patterns["order_by_id"]["operation"] == "Query GSI1: GSI1PK = ORDER#{order_id:08d}"


def test_a_quarantined_item_is_left_out_of_the_answer_and_counted(demo) -> None:
    huge = {p["name"]: p for p in demo[3]["patterns"]}["huge_order"]
    assert (huge["samples"], huge["passed"], huge["quarantined_left_out"], huge["compared"]) == (1, 1, 1, 0)


# What a wrong mapping looks like depends on no engine: MariaDB only, for the suite's time.
@pytest.mark.parametrize("demo", ["mariadb"], indirect=True)
def test_a_wrong_sort_key_fails_the_date_order_pattern_with_a_readable_difference(demo, spark, dynamodb_endpoint,
                                                                                  tmp_path) -> None:
    engine, mapping, target, _report = demo
    wrong = with_table(mapping, f"CarvePatternsWrong-{uuid.uuid4().hex[:8]}",
                       order_sort_key="ORDER#{placed_at:%d-%m-%Y}#{order_id:08d}")
    client = dynamodb_client(dynamodb_endpoint)
    try:
        run = execute(spark, wrong, engine, target, dynamodb_endpoint, tmp_path / "run")
        checked = execute(spark, wrong, engine, target, dynamodb_endpoint, tmp_path / "check", write=False)
    finally:
        delete_table(client, wrong.target.table)
    for report in (run, checked):
        assert report["status"] == "failed"
        assert report["items_lost"] == 0 and report["items_mismatched"] == 0  # the data is all there...
        patterns = {p["name"]: p for p in report["patterns"]}
        orders = patterns["customer_orders"]  # ...but not in the order the service asks for
        assert orders["failed"] > 0 and not orders["ok"]
        problem = orders["failures"][0]["problems"][0]
        assert problem.startswith("out of order at position "), problem
        assert "got CUSTOMER#" in problem and ", expected CUSTOMER#" in problem
        assert all(patterns[n]["ok"] for n in DEMO_PATTERNS - {"customer_orders"})
        assert "access patterns that disagree with the source: customer_orders" in report["error"]
        assert any(line.startswith("pattern customer_orders:") and "out of order" in line for line in report["summary"])
    assert "write" not in checked["stages"] and "reconcile" not in checked["stages"]
