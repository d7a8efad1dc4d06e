"""What a run and a plan check before they read anything: the report folder, the write budget
and the mapping against the source's schemas.

Kept apart from jobs.pipeline so that `carve plan` and `carve validate` start without the
run's heavier imports (Great Expectations alone takes seconds).
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from jobs.sinks.pacing import BudgetSpec
from jobs.sources.connections import Connection
from jobs.sources.jdbc import full_schema_frames
from transforms.errors import CarveError
from transforms.items import CompileError, build_items
from transforms.mapping import Mapping, located


def budget_spec(mapping: Mapping, write_rate: str | None) -> BudgetSpec | None:
    """--write-rate, else the mapping's target.write_rate, else None (the sink's default)."""
    if write_rate is not None:
        return BudgetSpec.parse(write_rate)
    rate = mapping.target.write_rate
    return BudgetSpec(rate.units_per_second, rate.share_of_capacity) if rate else None


def writable_dir(path: Path) -> None:
    """Make the report folder, or say why it cannot be: before anything starts, not after the write."""
    probe = path / ".carve-write-test"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise CarveError(f"cannot write the report in {path}: {exc.strerror}; choose another --report-dir") from None


def compile_check(spark: SparkSession, conn: Connection, mapping: Mapping, mapping_file: str) -> None:
    """Compile against the source schemas (no rows read): a wrong column fails here, with its line."""
    schema = full_schema_frames(spark, conn, mapping)
    try:
        build_items(mapping, schema.frames, schema.missing, schema.bad_filters)
    except CompileError as exc:
        raise located(mapping_file, exc.errors) from None
