"""carve's own sink: the rate-controlled BatchWriteItem writer (jobs.sinks.writer) within the budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pyspark.sql import DataFrame

from jobs.aws import aws_errors
from jobs.sinks.base import SinkContext, WriteOutcome, check_target, prepare_table
from jobs.sinks.pacing import Budget, resolve_budget
from jobs.sinks.rate import plot_rate, rate_series, summarize_rate
from jobs.sinks.table import dynamodb_client
from jobs.sinks.writer import WriteResult, WriteSettings, task_slots, write_items
from transforms.errors import SinkError


class CarveSink:
    name: ClassVar[str] = "carve"

    def __init__(self, context: SinkContext) -> None:
        self.context = context
        self._client: Any = None
        self._first: Budget | None = None

    def check(self) -> None:
        check_target(self.context)

    def prepare(self) -> None:
        self._client = prepare_table(self.context)

    def budget(self) -> Budget:
        """The budget now: re-read while writing, so a share of capacity follows autoscaling."""
        if self._client is None:
            self._client = dynamodb_client(self.context.address)
        name = self.context.address.table
        with aws_errors(f"DescribeTable {name} (for the write budget)", SinkError):
            table = self._client.describe_table(TableName=name)["Table"]
        return resolve_budget(self.context.budget, table)

    def describe(self) -> str:
        self._first = self.budget()
        slots = task_slots(self.context.spark)
        return f"BatchWriteItem into {self.context.address.table}, {self._first.how}, {slots} tasks"

    def write(self, items: DataFrame, live: Callable[[str], None]) -> WriteOutcome:
        first = self._first or self.budget()
        address = self.context.address
        settings = WriteSettings(address.table, address.endpoint_url, address.region, first.units_per_second)
        result = write_items(items, settings, budget=self.budget, live=live)
        section, notes = self._rate_report(result, first)
        return WriteOutcome(
            items_written=result.items_written,
            detail=f"{result.wcu_consumed:,.0f} WCU, {result.throttled_requests} throttled, {result.retries} retries",
            wcu_consumed=result.wcu_consumed,
            throttled_requests=result.throttled_requests,
            retries=result.retries,
            batches=result.batches,
            failed=result.failed,
            failed_count=result.failed_count,
            notes=notes,
            report={"write": section},
        )

    def _rate_report(self, result: WriteResult, budget: Budget) -> tuple[dict, tuple[str, ...]]:
        """Achieved WCU/s per second against the budget: figures for the report, and write_rate.png."""
        mapping = self.context.mapping
        series = rate_series(result.timeline, result.budget_timeline)
        summary = summarize_rate(series)
        plot = plot_rate(series, self.context.report_dir / "write_rate.png",
                         f"{mapping.name}: write units per second into {mapping.target.table}")
        section = {
            "budget": budget.how,
            "budget_wcu_per_second": budget.units_per_second,
            "wcu_indexes": result.wcu_indexes,
            "rate": summary.as_report() if summary else None,
            "plot": str(plot) if plot else "not drawn: matplotlib is not installed",
            "per_second": [{k: p[k] for k in ("second", "wcu", "budget")} for p in series],
        }
        notes = ()
        if summary:
            notes = (f"write rate: {summary.steady_utilisation:.0%} of the budget in steady state, "
                     f"busiest second {summary.peak_share:.0%}; plot {plot or '(matplotlib missing)'}",)
        return section, notes
