"""One mapping, end to end: compile, read, transform, validate, write, reconcile, report."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from rich.console import Console

from expectations.validate import validate_items, validate_source
from jobs.dynamo import (IndexSpec, TableSpec, WriteResult, WriteSettings, dynamodb_client, ensure_table, task_slots,
                         write_items)
from jobs.pacing import Budget, BudgetSpec, resolve_budget
from jobs.rate_report import plot_rate, rate_series, summarize
from jobs.progress import Stages
from jobs.reconcile import expected_digests, reconcile, scan_digests
from jobs.sources import Connection, full_schema_frames, read_sources, unpersist
from jobs.storage import write_json_lines
from transforms.errors import CarveError, ValidationFailedError, WriteFailedError
from transforms.items import CompileError, build_items, referenced_columns
from transforms.loader import located
from transforms.mapping import Mapping


@dataclass(frozen=True)
class RunOptions:
    report_dir: Path
    endpoint_url: str | None = None
    region: str = "us-east-1"
    write_rate: str | None = None  # '1500' WCU/s or '80%' of capacity; overrides the mapping's
    create_table: bool = True


def default_report_dir(mapping: Mapping) -> Path:
    return Path("reports") / f"{mapping.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


def table_spec(mapping: Mapping) -> TableSpec:
    target = mapping.target
    indexes = tuple(IndexSpec(ix.name, ix.partition, ix.sort) for ix in target.indexes)
    return TableSpec(target.table, target.key.partition, target.key.sort, indexes)


def budget_spec(mapping: Mapping, options: RunOptions) -> BudgetSpec | None:
    """The run's --write-rate, else the mapping's target.write_rate, else None (the default rule)."""
    if options.write_rate is not None:
        return BudgetSpec.parse(options.write_rate)
    rate = mapping.target.write_rate
    return BudgetSpec(rate.units_per_second, rate.share_of_capacity) if rate else None


def write_settings(mapping: Mapping, options: RunOptions, units_per_second: float | None = None) -> WriteSettings:
    return WriteSettings(mapping.target.table, options.endpoint_url, options.region, units_per_second)


def compile_check(spark: SparkSession, conn: Connection, mapping: Mapping, mapping_file: str) -> None:
    """Compile against the source schemas (no rows read): a wrong column fails here, with its line."""
    try:
        build_items(mapping, *full_schema_frames(spark, conn, mapping))
    except CompileError as exc:
        raise located(mapping_file, exc.errors) from None


class Run:
    """The state of one run; `report()` is written whatever happens."""

    def __init__(self, spark: SparkSession, mapping: Mapping, mapping_file: str, conn: Connection,
                 options: RunOptions, console: Console) -> None:
        self.spark = spark
        self.mapping = mapping
        self.mapping_file = mapping_file
        self.conn = conn
        self.options = options
        self.console = console
        self.stages = Stages(console, spark.sparkContext)
        self.figures: dict = {
            "mapping": mapping.name,
            "mapping_file": mapping_file,
            "table": mapping.target.table,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "items_expected": 0,
            "items_written": 0,
            "items_rejected": 0,
            "items_lost": 0,
            "items_mismatched": 0,
            "wcu_consumed": 0.0,
            "throttled_requests": 0,
            "retries": 0,
        }
        options.report_dir.mkdir(parents=True, exist_ok=True)

    # --- stages ----------------------------------------------------------------------------

    def execute(self, write: bool = True) -> dict:
        """The run; with write=False (carve reconcile) it only compares the table with the source."""
        started = time.monotonic()
        try:
            with self.stages.stage("compile", "checking the mapping against the source schemas"):
                compile_check(self.spark, self.conn, self.mapping, self.mapping_file)
            items = self._transform(self._read())
            if write:
                self._validate(items)
                self._write(items)
            self._reconcile(items)
            self.figures["status"] = "ok" if self._clean() else "failed"
        except CarveError as exc:
            self.figures["status"] = "failed"
            self.figures["error"] = str(exc)
            raise
        finally:
            self.figures["seconds"] = round(time.monotonic() - started, 3)
            self.figures["stages"] = self.stages.as_report()
            self._write_report()
        return self.figures

    def _clean(self) -> bool:
        f = self.figures
        return f["items_lost"] == 0 and f["items_mismatched"] == 0

    def _read(self) -> dict[str, DataFrame]:
        with self.stages.stage("read", f"reading the source tables over JDBC ({self.conn.engine})") as stage:
            frames = read_sources(self.spark, self.conn, self.mapping, referenced_columns(self.mapping))
            counts = {name: df.count() for name, df in frames.items()}
            stage.rows = sum(counts.values())
            stage.detail = ", ".join(f"{name} {n:,}" for name, n in counts.items())
        self.figures["source_rows"] = counts
        self._validate_sources(frames)
        return frames

    def _validate_sources(self, frames: dict[str, DataFrame]) -> None:
        """Custom source suites (expectations/suites/source.<table>.json), where there are any."""
        docs = self.options.report_dir / "data_docs"
        reports = [r for name, df in frames.items() if (r := validate_source(df, name, docs)) is not None]
        self.figures["source_validation"] = [
            {"suite": r.suite, "success": r.success,
             "failed": [f"{o.name}({o.column})" for o in r.outcomes if not o.success]} for r in reports
        ]
        failed = [r.suite for r in reports if not r.success]
        if failed:
            raise ValidationFailedError(f"critical source expectations failed in {', '.join(failed)}; nothing was written")

    def _transform(self, frames: dict[str, DataFrame]) -> DataFrame:
        policy = self.mapping.policy
        with self.stages.stage("transform", "building items") as stage:
            items = build_items(self.mapping, frames).persist(StorageLevel.MEMORY_AND_DISK)
            total = items.count()
            unpersist(frames.values())
            rejected = items.where(F.col("problem").isNotNull())
            rejected_count = self._quarantine(rejected)
            stage.rows = total
            stage.detail = f"{rejected_count:,} quarantined"
        accepted = items.where(F.col("problem").isNull()).drop("problem")
        self.figures["items_built"] = total
        self.figures["items_rejected"] = rejected_count
        self.figures["items_expected"] = total - rejected_count
        self.figures["by_entity"] = {r.entity: {"built": r.built, "quarantined": r.quarantined} for r in
                                     items.groupBy("entity").agg(F.count(F.lit(1)).alias("built"),
                                                                 F.count("problem").alias("quarantined")).collect()}
        if policy.duplicates == "fail" and rejected.where(F.col("problem").contains("duplicate key")).limit(1).count():
            raise ValidationFailedError(f"duplicate keys and the mapping's policy is duplicates: fail; see {self.figures['quarantine']}")
        share = rejected_count / total if total else 0.0
        if share > policy.max_rejected_share:
            raise ValidationFailedError(
                f"{rejected_count:,} of {total:,} items ({share:.2%}) were quarantined; the mapping allows "
                f"{policy.max_rejected_share:.2%} (policy.max_rejected_share). Nothing was written. "
                f"Reasons are in {self.figures['quarantine']}"
            )
        return accepted

    def _quarantine(self, rejected: DataFrame) -> int:
        path = self.options.report_dir / "quarantine"
        rows = rejected.select("entity", "pk", "sk", F.col("problem").alias("reason"), "source_key", "item")
        # Streamed to the driver: on a cluster, df.write would leave the file on an executor's disk.
        write_json_lines(rows, path)
        self.figures["quarantine"] = str(path)
        return rejected.count()

    def _validate(self, items: DataFrame) -> None:
        with self.stages.stage("validate", "Great Expectations on the items") as stage:
            docs = self.options.report_dir / "data_docs"
            report = validate_items(items, self.mapping.name, self.mapping.target.key.sort is not None, docs)
            stage.rows = report.evaluated_rows
            failed = [o for o in report.outcomes if not o.success]
            stage.detail = f"{len(report.outcomes) - len(failed)}/{len(report.outcomes)} expectations met"
        self.figures["validation"] = {
            "suite": report.suite,
            "success": report.success,
            "data_docs": str(docs / "index.html"),
            "expectations": [
                {"name": o.name, "column": o.column, "success": o.success, "unexpected": o.unexpected_count,
                 "severity": o.severity}
                for o in report.outcomes
            ],
        }
        if not report.success:
            names = ", ".join(f"{o.name}({o.column})" for o in failed if o.severity == "critical")
            raise ValidationFailedError(f"critical expectations failed: {names}; nothing was written. See {docs}/index.html")

    def _write(self, items: DataFrame) -> None:
        settings = write_settings(self.mapping, self.options)
        client = dynamodb_client(settings)
        if self.options.create_table and ensure_table(client, table_spec(self.mapping)):
            self.console.print(f"  created table {settings.table} (on-demand) at {settings.endpoint_url or 'AWS'}")
        spec = budget_spec(self.mapping, self.options)

        def budget() -> Budget:  # re-read while writing: a share of capacity follows autoscaling
            return resolve_budget(spec, client.describe_table(TableName=settings.table)["Table"])

        first = budget()
        settings = write_settings(self.mapping, self.options, first.units_per_second)
        slots = task_slots(self.spark)
        with self.stages.stage("write", f"BatchWriteItem into {settings.table}, {first.how}, {slots} tasks") as stage:
            result = write_items(items, settings, budget=budget, live=lambda text: setattr(stage, "live", text))
            stage.rows = result.items_written
            stage.detail = f"{result.wcu_consumed:,.0f} WCU, {result.throttled_requests} throttled, {result.retries} retries"
        self.figures.update(
            items_written=result.items_written,
            wcu_consumed=result.wcu_consumed,
            throttled_requests=result.throttled_requests,
            retries=result.retries,
            batches=result.batches,
        )
        self._rate_report(result, first)
        if result.failed_count:
            path = self.options.report_dir / "dead_letter"
            write_json_lines(result.failed, path)
            self.figures["dead_letter"] = str(path)
            self.figures["items_dead_letter"] = result.failed_count
            self.figures["items_rejected"] += result.failed_count
            raise WriteFailedError(result.failed_count, str(path))

    def _rate_report(self, result: WriteResult, budget: Budget) -> None:
        """Achieved WCU/s per second against the budget: figures in the report, and write_rate.png."""
        series = rate_series(result.timeline, result.budget_timeline)
        summary = summarize(series)
        plot = plot_rate(series, self.options.report_dir / "write_rate.png",
                         f"{self.mapping.name}: write units per second into {self.mapping.target.table}")
        self.figures["write"] = {
            "budget": budget.how,
            "budget_wcu_per_second": budget.units_per_second,
            "wcu_indexes": result.wcu_indexes,
            "rate": summary.as_report() if summary else None,
            "plot": str(plot) if plot else "not drawn: matplotlib is not installed",
            "per_second": [{k: p[k] for k in ("second", "wcu", "budget")} for p in series],
        }
        if summary:
            self.console.print(f"  write rate: {summary.steady_utilisation:.0%} of the budget in steady state, "
                               f"busiest second {summary.peak_share:.0%}; plot {plot or '(matplotlib missing)'}")

    def _reconcile(self, items: DataFrame) -> None:
        settings = write_settings(self.mapping, self.options)
        key = self.mapping.target.key
        with self.stages.stage("reconcile", f"scanning {settings.table} and comparing item digests") as stage:
            expected = expected_digests(items)
            actual = scan_digests(self.spark, settings, max(2, task_slots(self.spark)), key.partition, key.sort)
            result = reconcile(expected, actual)
            stage.rows = result.found + result.extra
            stage.detail = f"{result.missing} missing, {result.mismatched} different, {result.extra} extra"
        items.unpersist()
        self.figures.update(items_lost=result.missing, items_mismatched=result.mismatched)
        self.figures["reconcile"] = {
            "expected": result.expected,
            "found": result.found,
            "missing": result.missing,
            "mismatched": result.mismatched,
            "extra": result.extra,
            "by_entity": result.by_entity,
            "missing_sample": [list(k) for k in result.missing_sample],
            "mismatched_sample": [list(k) for k in result.mismatched_sample],
            "extra_sample": [list(k) for k in result.extra_sample],
        }

    def _write_report(self) -> None:
        path = self.options.report_dir / "report.json"
        path.write_text(json.dumps(self.figures, indent=2, default=str) + "\n", encoding="utf-8")
        self.figures["report"] = str(path)
