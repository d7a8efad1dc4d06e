"""The packaged demo mappings, end to end: demo database -> Pipeline -> dynalite -> report.

For PostgreSQL and MariaDB: the demo store at scale 0.05, migrated by mappings/demo.yaml /
mappings/demo_mariadb.yaml into a fresh dynalite table. Nothing may be lost or different,
the quarantine must hold exactly the generator's deliberate bad rows, and the report must
carry its figures. One failure path: a mapping that allows no rejected items stops before
writing anything, and still writes its report.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.devtools.capacity_proxy import ProxyConfig, start_proxy
from jobs.devtools.commands import demo_connection
from jobs.devtools.demo_data import (
    BAD_ORDER_NULL_CUSTOMER,
    DUPLICATE_SKU,
    DUPLICATE_SKU_PRODUCT_IDS,
    HUGE_ORDER_ID,
    DemoDatabase,
    create_demo_database,
)
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.pipeline import Pipeline, RunOptions
from jobs.sinks.table import delete_table
from jobs.storage import read_json_lines
from tests.support.browser import assert_figures_match, open_report
from tests.support.databases import drop_database, query
from tests.support.dynamodb import dynamodb_client, table_count
from transforms.errors import ValidationFailedError
from transforms.mapping import Mapping, load_mapping

pytestmark = pytest.mark.integration

ENGINES = ("postgres", "mariadb")
SCALE = 0.05
SEED = 42
MAX_DIGITS = 38
REPORT_KEYS = ("items_expected", "items_written", "items_rejected", "items_lost", "items_mismatched",
               "wcu_consumed", "throttled_requests", "retries", "stages")
STAGES = ("compile", "read", "transform", "validate", "write", "reconcile")


# --- databases ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_database() -> Iterator[Callable[[str], DemoDatabase]]:
    """The demo store per engine, created on first use, dropped when the module is done."""
    made: dict[str, DemoDatabase] = {}

    def get(engine: str) -> DemoDatabase:
        if engine not in made:
            target = DemoDatabase(engine, database=f"carve_e2e_{engine}")
            drop_database(target)
            made[engine] = target
            create_demo_database(target, scale=SCALE, seed=SEED)
        return made[engine]

    yield get
    for target in made.values():
        drop_database(target)


def oversized_lifetime_values(target: DemoDatabase) -> set[int]:
    """Customers whose lifetime_value has more than 38 significant digits, as the database holds it."""
    text = "lifetime_value::text" if target.engine == "postgres" else "CAST(lifetime_value AS CHAR)"
    rows = query(target, f"SELECT customer_id, {text} FROM customer WHERE lifetime_value IS NOT NULL")
    return {cid for cid, value in rows
            if len(format(Decimal(value).copy_abs(), "f").replace(".", "").strip("0")) > MAX_DIGITS}


# --- the run -----------------------------------------------------------------------------------


def demo_mapping(engine: str, table: str, **policy: Any) -> tuple[Mapping, str]:
    mapping_file = packaged_mapping(DEMO_MAPPINGS[engine])
    mapping = load_mapping(mapping_file)
    update: dict[str, Any] = {"target": mapping.target.model_copy(update={"table": table})}
    if policy:
        update["policy"] = mapping.policy.model_copy(update=policy)
    return mapping.model_copy(update=update), mapping_file


def new_run(spark, engine: str, target: DemoDatabase, endpoint: str, report_dir: Path, **policy: Any) -> Pipeline:
    # The executors' boto3 needs the dummy credentials even if Spark started before they were set.
    spark.sparkContext.environment.update({name: os.environ[name] for name in LOCAL_AWS_ENV})
    table = f"CarveDemo-{engine}-{uuid.uuid4().hex[:8]}"
    mapping, mapping_file = demo_mapping(engine, table, **policy)
    return Pipeline(spark, mapping, mapping_file, demo_connection(target), RunOptions(report_dir, endpoint_url=endpoint),
               Console(highlight=False, width=160))


@dataclass(frozen=True)
class DemoRun:
    engine: str
    target: DemoDatabase
    figures: dict
    report_dir: Path
    client: Any
    table: str


@pytest.fixture(scope="module", params=ENGINES)
def demo_run(request, spark, dynamodb_endpoint, demo_database, tmp_path_factory) -> Iterator[DemoRun]:
    engine = request.param
    target = demo_database(engine)
    report_dir = tmp_path_factory.mktemp(f"e2e-{engine}")
    run = new_run(spark, engine, target, dynamodb_endpoint, report_dir)
    client = dynamodb_client(dynamodb_endpoint)
    try:
        figures = run.execute().as_dict()
        yield DemoRun(engine, target, figures, report_dir, client, run.mapping.target.table)
    finally:
        delete_table(client, run.mapping.target.table)


# --- tests -------------------------------------------------------------------------------------


def test_every_expected_item_is_in_the_table_intact(demo_run: DemoRun) -> None:
    f = demo_run.figures
    assert f["status"] == "ok", f.get("error")
    assert f["items_lost"] == 0, f["reconcile"]["missing_sample"]
    assert f["items_mismatched"] == 0, f["reconcile"]["mismatched_sample"]
    assert f["items_expected"] > 0
    assert f["items_written"] == f["items_expected"]
    assert table_count(demo_run.client, demo_run.table) == f["items_expected"]


def test_report_json_has_the_figures(demo_run: DemoRun) -> None:
    report = json.loads((demo_run.report_dir / "report.json").read_text(encoding="utf-8"))
    missing = [key for key in REPORT_KEYS if key not in report]
    assert not missing, f"report.json lacks {missing}"
    assert report["status"] == "ok"
    for key in REPORT_KEYS[:-1]:
        assert report[key] == demo_run.figures[key], key
    assert report["wcu_consumed"] >= report["items_written"] > 0  # at least 1 WCU per item
    assert set(STAGES) <= set(report["stages"]), f"stages: {list(report['stages'])}"
    for name, stage in report["stages"].items():
        assert isinstance(stage["rows"], int) and stage["rows"] >= 0, (name, stage)
        assert isinstance(stage["seconds"], (int, float)) and stage["seconds"] >= 0, (name, stage)
    assert report["stages"]["write"]["rows"] == report["items_written"]


def expected_bad_rows(target: DemoDatabase) -> Counter:
    """(entity, source row, reason pattern) for every deliberate bad row of the demo store."""
    bad = Counter({
        ("order", HUGE_ORDER_ID, r"item is \d+ bytes"): 1,
        ("order", BAD_ORDER_NULL_CUSTOMER, r"key PK is NULL"): 1,
        ("product", DUPLICATE_SKU, r"duplicate key"): len(DUPLICATE_SKU_PRODUCT_IDS),
    })
    for customer_id in oversized_lifetime_values(target):
        bad[("customer", customer_id, r"lifetime_value: number \d+\.\d+ has \d+ significant digits; DynamoDB holds at most 38")] += 1
    return bad


def source_row(line: dict[str, Any]) -> Any:
    key = json.loads(line["source_key"])
    return {"order": key.get("order_id"), "product": key.get("sku"), "customer": key.get("customer_id")}.get(
        line["entity"], key)


def test_the_quarantine_holds_exactly_the_deliberate_bad_rows(demo_run: DemoRun) -> None:
    expected = expected_bad_rows(demo_run.target)
    assert sum(1 for entity, *_ in expected if entity == "customer") >= 1, "the demo store has oversized customers"
    found: Counter = Counter()
    unexplained = []
    for line in list(read_json_lines(demo_run.report_dir / "quarantine")):
        row = source_row(line)
        matches = [k for k in expected if k[:2] == (line["entity"], row) and re.search(k[2], line["reason"])]
        if matches:
            found[matches[0]] += 1
        else:
            unexplained.append((line["entity"], row, line["reason"]))
    assert not unexplained, f"quarantined but not a deliberate bad row (or the wrong reason): {unexplained}"
    assert found == expected
    assert demo_run.figures["items_rejected"] == sum(expected.values())


def test_data_docs_are_written(demo_run: DemoRun) -> None:
    index = demo_run.report_dir / "data_docs" / "index.html"
    assert index.is_file() and index.stat().st_size > 0
    assert demo_run.figures["validation"]["success"] is True


def test_over_the_rejected_share_nothing_is_written_and_the_report_says_failed(
    spark, dynamodb_endpoint, demo_database, tmp_path
) -> None:
    run = new_run(spark, "postgres", demo_database("postgres"), dynamodb_endpoint, tmp_path, max_rejected_share=0.0)
    client = dynamodb_client(dynamodb_endpoint)
    try:
        with pytest.raises(ValidationFailedError, match="max_rejected_share"):
            run.execute()
        try:
            assert table_count(client, run.mapping.target.table) == 0
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
    finally:
        delete_table(client, run.mapping.target.table)
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed"
    assert "max_rejected_share" in report["error"]
    assert report["items_written"] == 0
    assert report["items_rejected"] > 0
    assert "write" not in report["stages"]


def test_a_demo_run_through_a_throttling_failing_endpoint_loses_nothing(spark, dynamodb_endpoint, demo_database,
                                                                        tmp_path) -> None:
    """The issue's fault mix: 20 % throttles, 10 % partial UnprocessedItems, 2 % 5xx, 1 % dropped
    connections, on the writes and on the reconciling Scan alike (jobs.capacity_proxy)."""
    faults = ProxyConfig(seed=21, throttle_rate=0.20, unprocessed_rate=0.10, error_500_rate=0.01,
                         error_503_rate=0.01, drop_rate=0.01)
    client = dynamodb_client(dynamodb_endpoint)
    with start_proxy(dynamodb_endpoint, faults) as proxy:
        run = new_run(spark, "postgres", demo_database("postgres"), proxy.url, tmp_path)
        try:
            figures = run.execute().as_dict()
            injected = proxy.stats()["tables"][run.mapping.target.table]["totals"]["faults"]
        finally:
            delete_table(client, run.mapping.target.table)

    assert figures["status"] == "ok", figures.get("error")
    assert (figures["items_lost"], figures["items_mismatched"]) == (0, 0)
    assert figures["items_written"] == figures["items_expected"] > 0
    assert injected["throttle"] > 0 and injected["unprocessed"] > 0
    assert figures["throttled_requests"] > 0 and figures["retries"] > 0


def test_report_json_counts_the_quarantine_by_reason_and_the_item_sizes(demo_run: DemoRun) -> None:
    f = demo_run.figures
    reasons = f["quarantine_reasons"]
    assert sum(r["items"] for r in reasons) == f["items_rejected"]  # the demo has fewer than 20 reasons
    assert [r["items"] for r in reasons] == sorted((r["items"] for r in reasons), reverse=True)
    lines = list(read_json_lines(demo_run.report_dir / "quarantine"))
    by_reason = Counter(line["reason"] for line in lines)
    assert {r["reason"]: r["items"] for r in reasons} == dict(by_reason)
    for r in reasons:  # the sample is one of the items quarantined for that reason
        assert any((line["entity"], line.get("pk"), line.get("sk")) == (r["sample"]["entity"], r["sample"]["pk"], r["sample"]["sk"])
                   and line["reason"] == r["reason"] for line in lines), r
    sizes = f["item_sizes"]
    assert sum(b["items"] for b in sizes["histogram"]) == f["items_expected"]
    assert 0 < sizes["p50"] <= sizes["p90"] <= sizes["p99"] <= sizes["max"] <= 409_600
    assert sizes["histogram"][-1]["up_to"] >= sizes["max"] and sizes["histogram"][-1]["items"] > 0


def test_report_html_renders_in_chromium_and_shows_report_json_s_figures(demo_run: DemoRun) -> None:
    page = open_report(demo_run.report_dir)
    report = page.report
    assert page.errors == [] and page.outside == [], (page.errors, page.outside)
    assert f"{report['mapping']} -> {report['table']}" in page.title
    paths = {path for path, _ in page.shown}
    for needed in ("status", "items_written", "items_lost", "items_mismatched", "reconcile/missing",
                   "reconcile/mismatched", "stages/write/seconds", "item_sizes/p99", "quarantine_reasons/0/items",
                   "write/budget_wcu_per_second", *(f"by_entity/{e}/built" for e in report["by_entity"])):
        assert needed in paths, f"report.html does not show {needed}"
    assert_figures_match(page)
    links = page.links
    docs = [u for u in links if u.endswith("data_docs/index.html")]
    assert docs and Path(docs[0].removeprefix("file://")).is_file(), links
