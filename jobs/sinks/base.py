"""The Sink protocol: what the pipeline asks of whatever puts the items into DynamoDB."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pyspark.sql import DataFrame, SparkSession

from jobs.runtimes import Runtime
from jobs.sinks.pacing import BudgetSpec
from jobs.sinks.table import TableAddress, TableSpec, check_table, dynamodb_client, ensure_table
from transforms.mapping import Mapping


@dataclass(frozen=True)
class SinkContext:
    """Everything a sink may use, given once when the pipeline makes it."""

    spark: SparkSession
    mapping: Mapping
    address: TableAddress
    budget: BudgetSpec | None  # the run's --write-rate, else the mapping's target.write_rate; None: the default
    report_dir: Path
    runtime: Runtime
    say: Callable[[str], None]  # a line of its own on the console, between the stage lines
    import_prefix: str | None = None  # --import-prefix: where --sink import-s3 puts its files (s3://...)


@dataclass(frozen=True)
class WriteOutcome:
    """What a sink did; the pipeline records it in the report and fails the run on a dead letter."""

    items_written: int
    detail: str  # the write stage line's detail
    wcu_consumed: float = 0.0  # as DynamoDB reported it (table and GSIs); 0 where the sink cannot know
    throttled_requests: int = 0
    retries: int = 0
    batches: int = 0
    failed: DataFrame | None = None  # dead letter rows: entity, pk, sk, item, reason
    failed_count: int = 0
    notes: tuple[str, ...] = ()  # printed after the stage line
    report: MappingABC[str, Any] = field(default_factory=dict)  # the sink's own sections of report.json


class Sink(Protocol):
    name: ClassVar[str]  # what --sink and --carve_sink call it

    def __init__(self, context: SinkContext) -> None: ...

    def check(self) -> None:
        """Before anything is read: can the target take these items (the endpoint answers, an
        existing table has the mapping's keys)? A SinkError that says what to do if not."""

    def prepare(self) -> None:
        """Make the table ready, after validation: create it (with its indexes) when it is missing."""

    def describe(self) -> str:
        """What the write stage does, for its progress line (the budget it resolved, the tasks)."""

    def write(self, items: DataFrame, live: Callable[[str], None]) -> WriteOutcome:
        """Write the items (entity, pk, sk, item, wcu, ...); `live` takes a short progress text."""


def check_target(context: SinkContext) -> None:
    """The check both DynamoDB-writing sinks make: the endpoint answers and the table fits."""
    check_table(context.address, TableSpec.of(context.mapping))


def prepare_table(context: SinkContext) -> Any:
    """Create the target table when it is missing, say so; the admin client, for the sink to keep."""
    client = dynamodb_client(context.address)
    if ensure_table(client, TableSpec.of(context.mapping)):
        address = context.address
        context.say(f"created table {address.table} (on-demand) at {address.endpoint_url or 'AWS'}")
    return client
