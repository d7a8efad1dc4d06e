"""`carve reconcile`: rebuild the expected items from the source and compare with the table; write nothing."""

from __future__ import annotations

from rich.console import Console

from jobs.sources import resolve_connection
from jobs.spark import build_local_spark
from transforms.loader import load_mapping


def reconcile_mapping(mapping_file: str, options_args: dict, console: Console) -> int:
    from jobs.cli import _run_options, _summary
    from jobs.run import Run

    mapping = load_mapping(mapping_file)
    options = _run_options(mapping, **options_args)
    spark = build_local_spark(f"carve-reconcile-{mapping.name}")
    run = Run(spark, mapping, mapping_file, resolve_connection(mapping.source.connection), options, console)
    figures = run.reconcile_only()
    _summary(figures)
    return 0 if figures.get("status") == "ok" else 1
