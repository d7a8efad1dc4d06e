"""The planner: reads the sample, builds and measures its items, prices the load (see jobs.plan)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from rich.console import Console

from jobs.interrupts import cancel_jobs_on_ctrl_c
from jobs.plan.costs import LoadCosts, Prices, load_costs, recommend
from jobs.plan.figures import LoadFigures, measure, measured
from jobs.plan.sample import BUCKETS, DEFAULT_SAMPLE_ROWS, EntitySample, buckets_for, count_rows, sampled_mapping
from jobs.preflight import budget_spec, compile_check, writable_dir
from jobs.progress import Stages
from jobs.report_html import write_html
from jobs.runtimes.gateway import session_threads
from jobs.sinks.pacing import BudgetSpec, resolve_budget
from jobs.sinks.table import TableAddress, TableSpec, check_table
from jobs.sources.connections import Connection
from jobs.sources.jdbc import fill, jdbc_rows, read_sources, unpersist
from transforms.errors import CarveError, SourceError
from transforms.items import CompileError, build_items
from transforms.mapping import Mapping, located, referenced_columns

# A sample is a few thousand rows: Spark's machinery for big data (adaptive re-planning, many
# shuffle partitions, whole-stage code generation) costs more than the work on a cold JVM. The
# same expressions are evaluated either way; measured on the demo, the first evaluation of the
# items takes about half as long.
SAMPLE_SETTINGS = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.codegen.wholeStage": "false",
    # The sample's tables are cached while the items compile: compressing a few thousand rows
    # only costs time (about 0.3 s of the plan).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
}


@contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """`settings` for the block; the session's own afterwards (one session may serve many plans)."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


@dataclass(frozen=True)
class PlanOptions:
    report_dir: Path
    sample_rows: int | None = DEFAULT_SAMPLE_ROWS  # per entity; None reads everything (--full)
    endpoint_url: str | None = None
    region: str = "us-east-1"
    write_rate: str | None = None
    prices: str | None = None  # a file overriding jobs/plan/prices.json


@dataclass
class PlanReport:
    mapping: str
    mapping_file: str
    table: str
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    status: str = "failed"
    error: str | None = None
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)  # the plan's sections, in report.json's order
    stages: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"mode": "plan", "mapping": self.mapping, "mapping_file": self.mapping_file, "table": self.table,
               "started_at": self.started_at, **self.figures, "status": self.status}
        if self.error is not None:
            out["error"] = self.error
        out["seconds"] = round(self.seconds, 3)
        out["stages"] = {name: {"rows": s.rows, "seconds": round(s.seconds, 3)} for name, s in self.stages.items()}
        return out

    def save(self, path: Path) -> None:
        figures = self.as_dict()
        path.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
        write_html(figures, path.with_name("report.html"))
        self.report = path


class Planner:
    def __init__(self, spark: SparkSession, mapping: Mapping, mapping_file: str, conn: Connection,
                 options: PlanOptions, console: Console) -> None:
        self.spark = spark
        self.mapping = mapping
        self.mapping_file = mapping_file
        self.conn = conn
        self.options = options
        self.console = console
        self.prices = Prices.load(options.prices)  # a bad price file fails before anything is read
        self.address = TableAddress(mapping.target.table, options.endpoint_url, options.region)
        self.stages = Stages(console, spark.sparkContext)
        self.report = PlanReport(mapping.name, mapping_file, mapping.target.table)
        writable_dir(options.report_dir)

    def execute(self) -> PlanReport:
        started = time.monotonic()
        try:
            settings = {} if self.options.sample_rows is None else SAMPLE_SETTINGS
            with cancel_jobs_on_ctrl_c(self.spark.sparkContext), session_settings(self.spark, settings):
                table = self.target()
                samples = self.sample()
                figures = self.build(samples)
                self.estimate(figures, table)
            self.report.status = "ok"
        except KeyboardInterrupt:
            self.report.status, self.report.error = "interrupted", "interrupted (Ctrl-C); nothing was written"
            raise
        except CarveError as exc:
            self.report.error = str(exc)
            raise
        finally:
            self.report.seconds = time.monotonic() - started
            self.report.stages = self.stages.figures()
            self.report.save(self.options.report_dir / "report.json")
        return self.report

    def target(self) -> dict[str, Any] | None:
        """The target table's description, or None: a new table (or one carve could not look at)."""
        spec = TableSpec.of(self.mapping)
        try:
            table = check_table(self.address, spec)
            note = "exists" if table else "does not exist yet: the plan is for a new on-demand table"
        except CarveError as exc:
            table, note = None, f"not checked ({exc}); the plan assumes a new on-demand table"
        self.report.figures["target"] = {"table": spec.name, "exists": table is not None, "note": note}
        self.console.print(f"  target table {spec.name}: {note}", markup=False)
        return table

    def sample(self) -> dict[str, EntitySample]:
        """Per entity, its rows in the source and the share the plan reads."""
        wanted = self.options.sample_rows
        if wanted is None:
            samples = {name: EntitySample(0, BUCKETS) for name in self.mapping.entities}
            self.report.figures["sample"] = {"full": True}
            return samples
        with self.stages.stage("count", "counting each entity's rows in the source") as stage:
            def query(sql: str) -> list[tuple]:
                return jdbc_rows(self.spark, self.conn, sql)

            rows = {name: count_rows(query, self.conn, entity) for name, entity in self.mapping.entities.items()}
            samples = {name: EntitySample(n, buckets_for(n, wanted)) for name, n in rows.items()}
            stage.rows = sum(rows.values())
            stage.detail = ", ".join(f"{name} {n:,} ({samples[name].fraction:.1%})" for name, n in rows.items())
        self.report.figures["sample"] = {"full": False, "rows_per_entity": wanted}
        return samples

    def build(self, samples: dict[str, EntitySample]) -> LoadFigures:
        """The items of the sample (or of everything), built by the run's transforms, measured.

        No stage of its own checks the mapping against the source first, as a run's compile
        does: building the items checks it. When the source refuses something (a missing table,
        a filter it cannot evaluate), the run's check says where in the mapping file.
        """
        full = self.options.sample_rows is None
        mapping = self.mapping if full else sampled_mapping(self.mapping, self.conn, samples)
        what = "every row" if full else "the sample"
        with self.stages.stage("measure", f"building the items of {what} and measuring them ({self.conn.engine})") as stage:
            try:
                frames = read_sources(self.spark, self.conn, mapping, referenced_columns(mapping), cache=not full,
                                      partitioned=full)
                # A sample's tables are small: they are read into the cache while the driver
                # compiles the items (seconds of Python), instead of after it.
                with session_threads(self.spark, 1, "carve-read") as pool:
                    read = None if full else pool.submit(fill, frames.values())
                    items = measured(build_items(mapping, frames), self.mapping)
                    if read is not None:
                        read.result()
                # The items are computed once, here, before the figures' jobs run over them
                # together. Over a cache, each of those jobs analyses and plans the whole items
                # query again to find the cache; a local checkpoint cuts that query off, so they
                # plan over rows alone. Its blocks live only on the executors, with no lineage to
                # recompute them: fine for a sample, but a full read on a cluster that loses an
                # executor would fail, so `--full` caches.
                if full:
                    items = items.persist(StorageLevel.MEMORY_AND_DISK)
                    items.count()
                else:
                    items = items.localCheckpoint()
            except CompileError as exc:
                raise located(self.mapping_file, exc.errors) from None
            except SourceError:
                compile_check(self.spark, self.conn, self.mapping, self.mapping_file)  # says where, if it can
                raise
            figures = measure(items, self.mapping, samples)
            items.unpersist()
            unpersist(frames.values())
            stage.rows = sum(e["sample"]["rows"] for e in figures.by_entity.values())
            stage.detail = "every item" if full else f"{stage.rows:,} items in the sample"
        return figures

    def estimate(self, figures: LoadFigures, table: dict[str, Any] | None) -> None:
        spec = budget_spec(self.mapping, self.options.write_rate)
        budget = resolve_budget(spec, table or {})
        capacity = resolve_budget(BudgetSpec(share=1.0), table or {})
        units = figures.write_units
        costs = load_costs(units["total"], figures.import_bytes, budget.units_per_second, self.prices)
        hottest = figures.hot_keys[0]["seconds_at_partition_limit"] if figures.hot_keys else 0.0
        self.report.figures |= {
            "by_entity": figures.by_entity,
            "items_expected": sum(e["built"] - e["quarantined"] for e in figures.by_entity.values()),
            "write_units": units,
            "import_bytes": figures.import_bytes,
            "largest_items": figures.largest_items,
            "collections": figures.collections,
            "hot_keys": figures.hot_keys,
            "duration": {
                "budget_wcu_per_second": budget.units_per_second, "budget": budget.how,
                "seconds_at_budget": costs.seconds_at_budget,
                "capacity_wcu_per_second": capacity.units_per_second, "capacity": capacity.how,
                "seconds_at_capacity": _seconds(units["total"], capacity.units_per_second),
                "largest_key_seconds": hottest,
            },
            "costs": {**costs.as_dict(), "prices": self.prices.as_dict()},
            "recommendation": recommend(costs, table is not None, self.prices.currency),
            "samples": figures.samples,
        }
        self._print(figures, costs)

    def _print(self, figures: LoadFigures, costs: LoadCosts) -> None:
        say = self.console.print
        f = self.report.figures
        approx = "about " if figures.sampled else ""
        for name, e in figures.by_entity.items():
            sizes = e["sizes"] or {}
            say(f"  {name}: {approx}{e['built']:,} items, {e['quarantined']:,} quarantined; size p50 {sizes.get('p50', 0):,} B, "
                f"p99 {sizes.get('p99', 0):,} B, max {sizes.get('max', 0):,} B; {e['write_units']:,} WCU"
                + "".join(f", {n} {u:,}" for n, u in e["index_write_units"].items())
                + (f"; {e['over_400kb']:,} over 400 KB" if e["over_400kb"] else "")
                + (f"; {e['within_10pct_of_400kb']:,} within 10% of 400 KB" if e["within_10pct_of_400kb"] else ""),
                markup=False)
        units = f["write_units"]
        say(f"  write units: {approx}{units['total']:,} (table {units['table']:,}"
            + "".join(f", {n} {u:,}" for n, u in units["indexes"].items()) + ")", markup=False)
        d = f["duration"]
        say(f"  duration: {_clock(d['seconds_at_budget'])} at the budget ({d['budget']}), "
            f"{_clock(d['seconds_at_capacity'])} at the table's capacity ({d['capacity']})", markup=False)
        if figures.hot_keys:
            hot = figures.hot_keys[0]
            say(f"  hottest partition key {hot['pk']}: {hot['write_units']:,} WCU, {hot['share']:.2%} of the load "
                f"(at least {hot['seconds_at_partition_limit']:.1f} s at 1,000 WCU/s per key)", markup=False)
        cur = self.prices.currency
        say(f"  cost ({self.prices.region} list prices of {self.prices.as_of}): on-demand {costs.on_demand:,.4f} {cur}, "
            f"provisioned {costs.provisioned:,.4f} {cur} ({costs.provisioned_hours} h), "
            f"Import from S3 {costs.import_s3:,.4f} {cur}", markup=False)
        say(f"  recommended: {f['recommendation']['path']}: {f['recommendation']['reason']}", markup=False)


def _seconds(units: float, rate: float) -> float:
    return units / rate if rate > 0 else math.inf


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    if seconds < 120:
        return f"{seconds:,.1f} s"
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min" if hours else f"{minute} min {second:02d} s"
