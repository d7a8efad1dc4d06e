"""`carve plan` against what a run then does, on the real databases and dynalite.

Per engine: the demo store at scale 0.2, planned in full and from a small sample, then run into a
fresh dynalite table. The full plan must predict exactly the write units DynamoDB's rules give for
the items in the table (and be within 1 % of what dynalite reports consumed: it counts the table's
units, not the indexes', in its own way), a small sample within 5 % of that; the sample's items must be
the items the run wrote, byte for byte; the plan writes nothing.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.devtools.commands import demo_connection
from jobs.devtools.demo_data import HUGE_ORDER_ID, DemoDatabase, create_demo_database
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.pipeline import Pipeline, RunOptions
from jobs.plan.planner import Planner, PlanOptions
from jobs.sinks.table import delete_table
from tests.support.browser import assert_figures_match, open_report
from tests.support.databases import drop_database
from tests.support.dynamodb import dynamodb_client, scan_all
from transforms.mapping import load_mapping
from transforms.wire import canonical, item_size, write_units

pytestmark = pytest.mark.integration

SCALE = 0.2
SAMPLE_ROWS = 300  # of about 400 customers and 2,400 orders: both entities are sampled


@dataclass(frozen=True)
class Planned:
    engine: str
    full: dict[str, Any]
    sample: dict[str, Any]
    sample_dir: Path
    run: dict[str, Any]
    table_items: dict[tuple[str, str], dict[str, Any]]
    tables_before_run: list[str]
    table: str


def as_wire(value: Any) -> Any:
    """An item as boto3 scans it, binary values back in base64 as DynamoDB's wire JSON has them."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: as_wire(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [as_wire(v) for v in value]
    return value


def plan(spark, mapping, mapping_file: str, target: DemoDatabase, endpoint: str, report_dir: Path,
         sample_rows: int | None) -> dict[str, Any]:
    options = PlanOptions(report_dir, sample_rows=sample_rows, endpoint_url=endpoint)
    return Planner(spark, mapping, mapping_file, demo_connection(target), options,
                   Console(highlight=False, width=160)).execute().as_dict()


@pytest.fixture(scope="module", params=("postgres", "mariadb"))
def planned(request, spark, dynamodb_endpoint, tmp_path_factory) -> Iterator[Planned]:
    engine = request.param
    target = DemoDatabase(engine, database=f"carve_plan_{engine}")
    drop_database(target)
    create_demo_database(target, scale=SCALE, seed=7)
    spark.sparkContext.environment.update({name: os.environ[name] for name in LOCAL_AWS_ENV})
    mapping_file = packaged_mapping(DEMO_MAPPINGS[engine])
    mapping = load_mapping(mapping_file)
    table = f"CarvePlan-{engine}-{uuid.uuid4().hex[:8]}"
    mapping = mapping.model_copy(update={"target": mapping.target.model_copy(update={"table": table})})
    client = dynamodb_client(dynamodb_endpoint)
    base = tmp_path_factory.mktemp(f"plan-{engine}")
    try:
        full = plan(spark, mapping, mapping_file, target, dynamodb_endpoint, base / "full", None)
        sample = plan(spark, mapping, mapping_file, target, dynamodb_endpoint, base / "sample", SAMPLE_ROWS)
        tables_before_run = client.list_tables()["TableNames"]
        run = Pipeline(spark, mapping, mapping_file, demo_connection(target),
                       RunOptions(base / "run", endpoint_url=dynamodb_endpoint),
                       Console(highlight=False, width=160)).execute().as_dict()
        items = {(i["PK"]["S"], i["SK"]["S"]): as_wire(i) for i in scan_all(client, table)}
        yield Planned(engine, full, sample, base / "sample", run, items, tables_before_run, table)
    finally:
        delete_table(client, table)
        drop_database(target)


def test_the_plan_writes_nothing(planned: Planned) -> None:
    assert planned.table not in planned.tables_before_run
    for report in (planned.full, planned.sample):
        assert report["status"] == "ok", report.get("error")
        assert report["target"]["exists"] is False


def test_a_full_plan_predicts_exactly_what_the_run_writes_and_consumes(planned: Planned) -> None:
    full, run = planned.full, planned.run
    assert run["status"] == "ok", run.get("error")
    assert "wcu_indexes" not in run or not run["wcu_indexes"], "dynalite now reports index units: compare the totals"
    by_rules = sum(write_units(item_size(i)) for i in planned.table_items.values())
    assert full["write_units"]["table"] == by_rules, "the plan's units are DynamoDB's rules applied to the table"
    # dynalite's own count is close, not exact: it measures strings in UTF-16 code units, not UTF-8 bytes.
    assert abs(full["write_units"]["table"] - run["wcu_consumed"]) / run["wcu_consumed"] <= 0.01
    assert full["items_expected"] == run["items_expected"] == run["items_written"]
    for name, counts in run["by_entity"].items():
        assert full["by_entity"][name]["built"] == counts["built"], name
        assert full["by_entity"][name]["quarantined"] == counts["quarantined"], name
    # The demo's one order over 400 KB is found, and is the largest item.
    assert full["by_entity"]["order"]["over_400kb"] == 1
    largest = full["largest_items"][0]
    assert largest["entity"] == "order" and largest["size"] > 409_600 and "at most 409600" in largest["problem"]
    assert largest["sk"].endswith(f"#{HUGE_ORDER_ID:08d}"), largest


def test_a_sampled_plan_is_close_to_the_run_and_reads_less(planned: Planned) -> None:
    sample, run = planned.sample, planned.run
    predicted, consumed = sample["write_units"]["table"], run["wcu_consumed"]
    # 300 rows of an entity is a small sample: 5 % here; the default sample at scale 1 is measured in the README.
    assert abs(predicted - consumed) / consumed <= 0.05, (predicted, consumed)
    assert sample["by_entity"]["order"]["sample"]["share"] < 0.5
    assert sample["stages"]["measure"]["rows"] < run["items_built"] / 2
    assert {n: e["built"] for n, e in sample["by_entity"].items()} == {n: c["built"] for n, c in run["by_entity"].items()}


def test_sampled_items_are_exactly_the_items_the_run_wrote(planned: Planned) -> None:
    shown = [item for items in planned.sample["samples"].values() for item in items]
    assert len(shown) >= 3
    for item in shown:
        key = (item["PK"]["S"], item["SK"]["S"])
        assert key in planned.table_items, key
        assert canonical(item) == canonical(planned.table_items[key]), key


def test_collections_and_hot_keys_are_whole_partitions(planned: Planned) -> None:
    """A sampled partition key comes with all its items (every entity hashes the same key columns
    into nested bucket ranges): the largest collection's and the hottest key's figures equal the table's."""
    by_pk: dict[str, list[dict[str, Any]]] = {}
    for (pk, _), item in planned.table_items.items():
        by_pk.setdefault(pk, []).append(item)
    for report in (planned.full, planned.sample):
        top = report["collections"]["by_items"][0]
        assert top["items"] == len(by_pk[top["pk"]]) > 1, top
        assert top["bytes"] == sum(item_size(i) for i in by_pk[top["pk"]]), top
        hot = report["hot_keys"][0]
        assert hot["write_units"] == sum(write_units(item_size(i)) for i in by_pk[hot["pk"]]), hot
    assert planned.full["collections"]["by_items"][0]["items"] == max(len(v) for v in by_pk.values())
    full_hot, sample_hot = planned.full["hot_keys"][0], planned.sample["hot_keys"][0]
    if sample_hot["pk"] == full_hot["pk"]:  # the sample's share is of the estimated load
        assert sample_hot["share"] == pytest.approx(full_hot["share"], rel=0.03)


def test_the_plan_page_renders_in_chromium_with_report_json_s_figures(planned: Planned) -> None:
    page = open_report(planned.sample_dir)
    assert page.errors == [] and page.outside == [], (page.errors, page.outside)
    assert page.report["mode"] == "plan" and "carve plan" in page.title
    paths = {path for path, _ in page.shown}
    for needed in ("write_units/table", "write_units/total", "duration/seconds_at_budget", "costs/on_demand",
                   "costs/import_s3", "recommendation/path", "hot_keys/0/write_units",
                   "collections/by_items/0/items", "largest_items/0/size",
                   *(f"by_entity/{e}/sizes/p99" for e in page.report["by_entity"])):
        assert needed in paths, f"the plan page does not show {needed}"
    assert_figures_match(page)
    assert json.loads((planned.sample_dir / "report.json").read_text())["status"] == "ok"


def test_the_plan_command_in_a_jvm_of_its_own_gives_the_same_figures(planned: Planned, dynamodb_endpoint: str,
                                                                      tmp_path: Path) -> None:
    # `carve plan` launches its JVM while it imports (LocalRuntime.start), as a short JVM that
    # keeps the Java objects Python drops: the figures must be those of the plan the suite made
    # in its own session.
    conn = demo_connection(DemoDatabase(planned.engine, database=f"carve_plan_{planned.engine}"))
    prefix = f"CARVE_CONNECTION_{conn.name.upper()}_"
    env = {name: value for name, value in os.environ.items() if not name.startswith("CARVE_CONNECTION_")}
    env |= LOCAL_AWS_ENV | {prefix + "URL": conn.url, prefix + "USER": conn.user or "",
                            prefix + "PASSWORD": conn.password.get_secret_value()}
    carve = Path(sys.executable).parent / "carve"
    done = subprocess.run([str(carve), "plan", packaged_mapping(DEMO_MAPPINGS[planned.engine]), "--sample",
                           str(SAMPLE_ROWS), "--endpoint-url", dynamodb_endpoint, "--report-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    own = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    for key in ("by_entity", "write_units", "import_bytes", "largest_items", "collections", "hot_keys", "samples"):
        assert own[key] == planned.sample[key], key
