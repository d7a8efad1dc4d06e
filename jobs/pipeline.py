"""One mapping, end to end, as ordered stages: compile, read, transform, validate, write, reconcile.

Each stage returns a typed result and records its figures in the run's `RunReport`, which is
written as report.json whatever happens. Where the items go is the sink's business
(jobs.sinks): the pipeline takes one by name and never changes shape for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from rich.console import Console

from expectations.validate import ValidationReport, validate_items, validate_source
from jobs import interrupts
from jobs.interrupts import cancel_jobs_on_ctrl_c
from jobs.preflight import budget_spec, compile_check, writable_dir
from jobs.progress import Stages
from jobs.report import EntityCounts, RunReport
from jobs.runtimes import Runtime, current
from jobs.sinks.base import SinkContext, WriteOutcome
from jobs.sinks.registry import DEFAULT_SINK, make_sink
from jobs.sinks.table import TableAddress
from jobs.sinks.writer import task_slots
from jobs.sizes import item_sizes
from jobs.sources.connections import Connection
from jobs.sources.jdbc import read_sources, unpersist
from jobs.storage import write_json_lines
from jobs.sync.start import full_load_positions
from jobs.verify.patterns import PatternChecker, PatternResult
from jobs.verify.reconcile import ReconcileResult, expected_digests, reconcile, scan_digests
from transforms.errors import CarveError, ValidationFailedError, WriteFailedError, WriteInterrupted
from transforms.items import CompileError, build_items
from transforms.mapping import Mapping, located, referenced_columns


@dataclass(frozen=True)
class RunOptions:
    report_dir: Path
    endpoint_url: str | None = None
    region: str = "us-east-1"
    write_rate: str | None = None  # '1500' WCU/s or '80%' of capacity; overrides the mapping's
    sink: str = DEFAULT_SINK
    import_prefix: str | None = None  # s3://bucket/prefix/ for --sink import-s3


@dataclass(frozen=True)
class ReadResult:
    frames: dict[str, DataFrame]  # cached, one per source table or query
    rows: dict[str, int]


@dataclass(frozen=True)
class TransformResult:
    accepted: DataFrame  # the items to write (cached with the rejected ones)
    items: DataFrame  # every item built, `problem` set on the quarantined ones
    built: int
    rejected: int
    by_entity: dict[str, EntityCounts]


class Pipeline:
    """One run of one mapping; `report` is written to report.json whatever happens."""

    def __init__(self, spark: SparkSession, mapping: Mapping, mapping_file: str, conn: Connection,
                 options: RunOptions, console: Console, runtime: Runtime | None = None) -> None:
        self.spark = spark
        self.mapping = mapping
        self.mapping_file = mapping_file
        self.conn = conn
        self.options = options
        self.console = console
        self.address = TableAddress(mapping.target.table, options.endpoint_url, options.region)
        self.sink = make_sink(options.sink, SinkContext(
            spark, mapping, self.address, budget_spec(mapping, options.write_rate), options.report_dir,
            runtime or current(), say=lambda line: console.print(f"  {line}", markup=False),
            import_prefix=options.import_prefix))
        self.stages = Stages(console, spark.sparkContext)
        self.report = RunReport(mapping.name, mapping_file, mapping.target.table, options.sink)
        writable_dir(options.report_dir)

    @property
    def docs_dir(self) -> Path:
        return self.options.report_dir / "data_docs"

    def execute(self, write: bool = True, reconcile: bool = True) -> RunReport:
        """The run; with write=False (carve reconcile) it only compares the table with the source,
        and with reconcile=False too (carve check-patterns) it only checks the access patterns."""
        def stages() -> None:
            self.compile()
            recording = nullcontext()
            if write and self.mapping.sync:  # a full load is where `carve sync` starts
                recording = full_load_positions(self.spark, self.conn, self.mapping, self.address,
                                                lambda line: self.console.print(f"  {line}", markup=False))
            with recording as positions:
                transformed = self.transform(self.read())
                if write:
                    self.validate(transformed.accepted)
                    self.write(transformed.accepted)
                if reconcile:
                    self.reconcile(transformed.accepted)
                if self.mapping.patterns:
                    self.check_patterns(transformed.items)
                transformed.items.unpersist()
                self._conclude()
                if positions is not None and self.report.ok:
                    positions.save()

        return self.reported(stages)

    def reported(self, stages: Callable[[], None], cancel_on_ctrl_c: bool = True) -> RunReport:
        """Run `stages`; report.json is written whatever happens, with the status and error.
        Ctrl-C cancels the Spark jobs at once, unless the caller handles it (a sync finishes its cycle)."""
        started = time.monotonic()
        try:
            with cancel_jobs_on_ctrl_c(self.spark.sparkContext) if cancel_on_ctrl_c else nullcontext():
                stages()
        except BaseException as exc:
            self._record_failure(exc)
            if interrupts.asked() and not isinstance(exc, KeyboardInterrupt):
                raise KeyboardInterrupt from None  # the cancelled job's failure is the interrupt
            raise
        finally:
            self.report.seconds = time.monotonic() - started
            self.report.stages = self.stages.figures()
            self.report.save(self.options.report_dir / "report.json")
        return self.report

    def _conclude(self) -> None:
        """ok only when nothing is lost or different and every access pattern agrees with the source."""
        report = self.report
        lost, mismatched = report.items_lost, report.items_mismatched
        failed = [p for p in report.patterns or [] if not p.ok]
        report.status = "ok" if lost == 0 and mismatched == 0 and not failed else "failed"
        if lost or mismatched:
            report.error = (f"{lost:,} expected items are not in {self.address.table} and {mismatched:,} "
                            "hold other content; samples are under reconcile in this report")
        elif failed:
            report.error = (f"access patterns that disagree with the source: "
                            f"{', '.join(f'{p.name} ({p.failed} of {p.samples} samples)' for p in failed)}; "
                            "the differences are under patterns in this report")

    def _record_failure(self, exc: BaseException) -> None:
        """status and error in the report, whatever went wrong."""
        report = self.report
        if isinstance(exc, WriteInterrupted):
            report.status = "interrupted"
            if exc.items_acknowledged is not None:
                report.items_written = exc.items_acknowledged
            report.error = (f"interrupted (Ctrl-C) while writing: DynamoDB had acknowledged at least "
                            f"{exc.items_acknowledged or 0:,} items; the writes are idempotent, run again to finish")
        elif isinstance(exc, KeyboardInterrupt) or interrupts.asked():
            report.status = "interrupted"
            report.error = f"interrupted (Ctrl-C) in the {self._stage()} stage; nothing more was written"
        elif isinstance(exc, CarveError):
            report.status, report.error = "failed", str(exc)
        else:  # a defect in carve or its libraries: still a report that says so
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            report.status, report.error = "failed", f"unexpected {type(exc).__name__} in the {self._stage()} stage: {first}"

    def _stage(self) -> str:
        return self.stages.done[-1].name if self.stages.done else "first"

    # --- the stages, in order ----------------------------------------------------------------

    def compile(self) -> None:
        with self.stages.stage("compile", "checking the target table and the mapping against the source schemas"):
            self.sink.check()
            compile_check(self.spark, self.conn, self.mapping, self.mapping_file)

    def read(self, mapping: Mapping | None = None) -> ReadResult:
        """The source rows of the mapping's items (`mapping`: of some of them, a subset of it)."""
        mapping = mapping or self.mapping
        with self.stages.stage("read", f"reading the source tables over JDBC ({self.conn.engine})") as stage:
            frames = read_sources(self.spark, self.conn, mapping, referenced_columns(mapping))
            rows = {name: df.count() for name, df in frames.items()}
            stage.rows = sum(rows.values())
            stage.detail = ", ".join(f"{name} {n:,}" for name, n in rows.items())
        self.report.source_rows = rows
        self._validate_sources(frames)
        return ReadResult(frames, rows)

    def _validate_sources(self, frames: dict[str, DataFrame]) -> None:
        """Custom source suites (expectations/suites/source.<table>.json), where there are any."""
        reports = [r for name, df in frames.items() if (r := validate_source(df, name, self.docs_dir)) is not None]
        self.report.source_validation = reports
        failed = [r.suite for r in reports if not r.success]
        if failed:
            raise ValidationFailedError(f"critical source expectations failed in {', '.join(failed)}; nothing was written")

    def transform(self, read: ReadResult, mapping: Mapping | None = None) -> TransformResult:
        """The items, checked against the mapping's policy; those of `mapping` (a subset: some of
        them, where the share quarantined says nothing of the whole) without the share check."""
        policy = self.mapping.policy
        with self.stages.stage("transform", "building items") as stage:
            items = build_items(mapping or self.mapping, read.frames).persist(StorageLevel.MEMORY_AND_DISK)
            # Every count in one job: it builds the items into the cache.
            by_entity = {r.entity: EntityCounts(r.built, r.quarantined) for r in
                         items.groupBy("entity").agg(F.count(F.lit(1)).alias("built"),
                                                     F.count("problem").alias("quarantined")).collect()}
            total = sum(e.built for e in by_entity.values())
            rejected_count = sum(e.quarantined for e in by_entity.values())
            unpersist(read.frames.values())
            rejected = items.where(F.col("problem").isNotNull())
            self._quarantine(rejected, rejected_count)
            stage.rows = total
            stage.detail = f"{rejected_count:,} quarantined"
        report = self.report
        report.items_built, report.items_rejected, report.items_expected = total, rejected_count, total - rejected_count
        report.by_entity = by_entity
        report.quarantine_reasons = quarantine_reasons(rejected) if rejected_count else []
        report.item_sizes = item_sizes(items.where(F.col("problem").isNull()))
        if policy.duplicates == "fail" and rejected.where(F.col("problem").contains("duplicate key")).limit(1).count():
            raise ValidationFailedError(f"duplicate keys and the mapping's policy is duplicates: fail; see {report.quarantine}")
        share = rejected_count / total if total else 0.0
        if mapping is None and share > policy.max_rejected_share:
            raise ValidationFailedError(
                f"{rejected_count:,} of {total:,} items ({share:.2%}) were quarantined; the mapping allows "
                f"{policy.max_rejected_share:.2%} (policy.max_rejected_share). Nothing was written. "
                f"Reasons are in {report.quarantine}"
            )
        accepted = items.where(F.col("problem").isNull()).drop("problem")
        return TransformResult(accepted, items, total, rejected_count, by_entity)

    def _quarantine(self, rejected: DataFrame, count: int) -> None:
        path = self.options.report_dir / "quarantine"
        rows = rejected.select("entity", "pk", "sk", F.col("problem").alias("reason"), "source_key", "item")
        # Streamed to the driver: on a cluster, df.write would leave the file on an executor's disk.
        # Nothing to stream (a job per partition) when nothing was quarantined: an empty file.
        write_json_lines(rows if count else rows.limit(0), path)
        self.report.quarantine = path

    def validate(self, items: DataFrame) -> ValidationReport:
        with self.stages.stage("validate", "Great Expectations on the items") as stage:
            result = validate_items(items, self.mapping.name, self.mapping.target.key.sort is not None, self.docs_dir)
            stage.rows = result.evaluated_rows
            failed = [o for o in result.outcomes if not o.success]
            stage.detail = f"{len(result.outcomes) - len(failed)}/{len(result.outcomes)} expectations met"
        self.report.validation = result
        self.report.data_docs = self.docs_dir / "index.html"
        if not result.success:
            names = ", ".join(f"{o.name}({o.column})" for o in failed if o.severity == "critical")
            raise ValidationFailedError(
                f"critical expectations failed: {names}; nothing was written. See {self.docs_dir}/index.html")
        return result

    def write(self, items: DataFrame) -> WriteOutcome:
        self.sink.prepare()
        with self.stages.stage("write", self.sink.describe()) as stage:
            outcome = self.sink.write(items, live=lambda text: setattr(stage, "live", text))
            stage.rows = outcome.items_written
            stage.detail = outcome.detail
        for note in outcome.notes:
            self.console.print(f"  {note}", markup=False)
        self.report.write = outcome
        self.report.items_written = outcome.items_written
        if outcome.failed_count:
            path = self.options.report_dir / "dead_letter"
            write_json_lines(outcome.failed, path)
            self.report.dead_letter = path
            self.report.items_dead_letter = outcome.failed_count
            self.report.items_rejected += outcome.failed_count
            raise WriteFailedError(outcome.failed_count, str(path))
        return outcome

    def reconcile(self, items: DataFrame) -> ReconcileResult:
        key = self.mapping.target.key
        with self.stages.stage("reconcile", f"scanning {self.address.table} and comparing item digests") as stage:
            expected = expected_digests(items)
            actual = scan_digests(self.spark, self.address, max(2, task_slots(self.spark)), key.partition, key.sort)
            result = reconcile(expected, actual)
            stage.rows = result.found + result.extra
            stage.detail = f"{result.missing} missing, {result.mismatched} different, {result.extra} extra"
        self.report.reconcile = result
        self.report.items_lost, self.report.items_mismatched = result.missing, result.mismatched
        return result


    def check_patterns(self, items: DataFrame) -> list[PatternResult]:
        rejected = items.where(F.col("problem").isNotNull()).select("pk", "sk").collect()
        with self.stages.stage("patterns", f"{len(self.mapping.patterns)} access patterns against the source") as stage:
            checker = PatternChecker(self.spark, self.conn, self.mapping, self.address,
                                     {(r.pk, r.sk) for r in rejected}, live=lambda text: setattr(stage, "live", text))
            try:
                results = checker.check_all()
            except CompileError as exc:
                raise located(self.mapping_file, exc.errors) from None
            stage.rows = sum(r.samples for r in results)
            stage.detail = ", ".join(f"{r.name} {r.passed}/{r.samples}" for r in results)
        self.report.patterns = results
        return results


QUARANTINE_REASONS_SHOWN = 20


def quarantine_reasons(rejected: DataFrame) -> list[dict]:
    """The most frequent reasons, each with its count and one item (the lowest key) as a sample."""
    rows = (rejected.groupBy("problem")
            .agg(F.count(F.lit(1)).alias("items"), F.min(F.struct("entity", "pk", "sk")).alias("sample"))
            .orderBy(F.desc("items"), "problem").limit(QUARANTINE_REASONS_SHOWN).collect())
    return [{"reason": r.problem, "items": r["items"], "sample": r.sample.asDict()} for r in rows]
