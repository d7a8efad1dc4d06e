"""Great Expectations checks on items and source tables: the only module in carve that imports GX.

Callers get plain frozen dataclasses back, never GX objects, so the rest of carve stays
independent of the GX API (which changed completely between 0.x and 1.x).
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.data_context.data_context.context_factory import project_manager
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.exceptions import GreatExpectationsError
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from pyspark.sql import DataFrame

from transforms.errors import MappingError, Problem
from transforms.wire import MAX_ITEM_BYTES, MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES

CRITICAL = "critical"
WARNING = "warning"
# GX 1.x severities; "info" does not stop a run either, so carve reports it as a warning.
_SEVERITIES = {"critical": CRITICAL, "warning": WARNING, "info": WARNING}


# BASIC is the cheapest format with unexpected_count. Sample values cost one or two Spark
# jobs per expectation (a filtered take()), so they are fetched only for the Data Docs, and
# only when some expectation met unexpected values: otherwise every sample is empty anyway.
_DOCS_SAMPLE_VALUES = 10

logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass(frozen=True)
class ExpectationOutcome:
    name: str
    column: str | None
    success: bool
    unexpected_count: int | None
    severity: str  # "critical" | "warning"
    # Why GX could not evaluate it at all (e.g. a custom suite names a column that is not there).
    error: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    suite: str
    success: bool  # every critical expectation passed; warnings never fail a report
    outcomes: tuple[ExpectationOutcome, ...]
    evaluated_rows: int


def item_suite_spec(has_sort_key: bool) -> list[dict]:
    """The built-in checks every items DataFrame must pass: DynamoDB's own key and size limits."""

    def spec(type_: str, **kwargs: Any) -> dict:
        return {"type": type_, "kwargs": kwargs, "severity": CRITICAL}

    key = ["pk", "sk"] if has_sort_key else ["pk"]
    rules = [spec("expect_column_values_to_not_be_null", column=column) for column in key]
    # Column-map expectations skip NULLs, so the not-null rules above carry the NULL keys.
    if has_sort_key:
        rules.append(spec("expect_compound_columns_to_be_unique", column_list=key))
    else:
        rules.append(spec("expect_column_values_to_be_unique", column="pk"))
    rules.append(spec("expect_column_values_to_be_between", column="size", min_value=1, max_value=MAX_ITEM_BYTES))
    rules.append(spec("expect_column_values_to_be_between", column="pk_bytes", min_value=1, max_value=MAX_PARTITION_KEY_BYTES))
    if has_sort_key:
        # Without a sort key every item has sk NULL and sk_bytes 0: nothing to check.
        rules.append(
            spec("expect_column_values_to_be_between", column="sk_bytes", min_value=1, max_value=MAX_SORT_KEY_BYTES)
        )
    return rules


def find_custom_suite(name: str) -> dict | None:
    """expectations/suites/<name>.json as a dict, or None; read as package data so it works from a wheel."""
    resource = resources.files(__package__) / "suites" / f"{name}.json"
    if not resource.is_file():
        return None
    try:
        suite = json.loads(resource.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MappingError([Problem(_suite_file(name), exc.lineno, "", f"not valid JSON: {exc.msg}")]) from None
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise MappingError(
            [Problem(_suite_file(name), None, "expectations", "a suite is an object with an 'expectations' list")]
        )
    return suite


def validate_items(df: DataFrame, mapping_name: str, has_sort_key: bool, docs_dir: Path | None) -> ValidationReport:
    """The built-in item rules plus expectations/suites/items.<mapping_name>.json, in one GX run."""
    suite_name = f"items.{mapping_name}"
    custom = find_custom_suite(suite_name)
    expectations = item_suite_spec(has_sort_key)
    if custom is not None:
        expectations += _custom_expectations(suite_name, custom)
    return _validate(df, suite_name, expectations, docs_dir)


def validate_source(df: DataFrame, table: str, docs_dir: Path | None) -> ValidationReport | None:
    """expectations/suites/source.<schema.table>.json against a source table, or None without that file."""
    suite_name = f"source.{table}"
    custom = find_custom_suite(suite_name)
    if custom is None:
        return None
    return _validate(df, suite_name, _custom_expectations(suite_name, custom), docs_dir)


def _suite_file(name: str) -> str:
    return f"expectations/suites/{name}.json"


def _custom_expectations(name: str, suite: dict) -> list[dict]:
    """The suite's expectations with `meta.severity` moved into GX's own `severity` field.

    `suite.to_json_dict()` always writes GX's field (default "critical"), so `meta.severity`
    wins when both are there. Every expectation is built here once, because
    `gx.ExpectationSuite(expectations=...)` only logs one it cannot build and drops it.
    """
    expectations, problems = [], []
    for index, expectation in enumerate(suite["expectations"]):
        where = f"expectations[{index}]"
        if not isinstance(expectation, dict):
            message = "an expectation is an object with 'type' and 'kwargs'"
            problems.append(Problem(_suite_file(name), None, where, message))
            continue
        meta = expectation.get("meta") or {}
        severity = meta.get("severity", expectation.get("severity", CRITICAL))
        if severity not in _SEVERITIES:
            field = "meta.severity" if "severity" in meta else "severity"
            message = f"unknown severity {severity!r}; use 'critical' or 'warning'"
            problems.append(Problem(_suite_file(name), None, f"{where}.{field}", message))
            continue
        # A suite exported from a file context carries expectation ids; this context assigns its own.
        normalized = {key: value for key, value in expectation.items() if key != "id"}
        normalized["severity"] = _SEVERITIES[severity]
        try:
            ExpectationConfiguration(**normalized).to_domain_obj()
        except (GreatExpectationsError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            message = getattr(exc, "message", None) or " ".join(str(exc).split())
            problems.append(Problem(_suite_file(name), None, where, f"not a valid GX 1.x expectation: {message}"))
            continue
        expectations.append(normalized)
    if problems:
        raise MappingError(problems)
    return expectations


@functools.cache
def _context() -> Any:
    """One ephemeral GX context for the whole process.

    Rebuilding Data Docs deletes every page whose result the building context does not
    hold, so a fresh context per call would wipe the pages of the mappings validated
    before it into the same docs_dir.
    """
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _docs_site(context: Any, docs_dir: Path) -> str:
    """The name of the Data Docs site writing to docs_dir, added on first use."""
    base = str(Path(docs_dir).resolve())
    site_name = f"carve:{base}"
    if site_name not in context.list_data_docs_sites():
        context.add_data_docs_site(
            site_name=site_name,
            site_config={
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": base},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return site_name


def _validate(df: DataFrame, suite_name: str, expectations: list[dict], docs_dir: Path | None) -> ValidationReport:
    context = _context()
    # GX stores results and builds docs in the process's current context, which is the last
    # one gx.get_context made: ours again, whatever else in the process made one since.
    project_manager.set_project(context)
    # Names are unique per call: the context lives as long as the process.
    run_name = f"{suite_name}-{uuid.uuid4().hex[:8]}"
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    # persist=False: GX would cache the frame and never unpersist it; the caller caches it.
    datasource = context.data_sources.add_spark(name=run_name, persist=False)
    try:
        batch = datasource.add_dataframe_asset(name="rows").add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=run_name, data=batch, suite=suite))

        def run(samples: int) -> Any:
            checkpoint = context.checkpoints.add(gx.Checkpoint(
                name=f"{run_name}-{samples}", validation_definitions=[definition], actions=[],
                result_format={"result_format": "BASIC", "partial_unexpected_count": samples}))
            return checkpoint.run(batch_parameters={"dataframe": df})

        result = run(0)
        if docs_dir:
            if _met_unexpected_values(result):  # again, with the samples the docs show
                for key in result.run_results:
                    context.validation_results_store.remove_key(key)
                result = run(_DOCS_SAMPLE_VALUES)
            UpdateDataDocsAction(name="docs", site_names=[_docs_site(context, docs_dir)]).run(checkpoint_result=result)
    finally:
        # The datasource's execution engine keeps the loaded batch (df) until it is dropped.
        context.data_sources.delete(run_name)
    (suite_result,) = result.run_results.values()
    # GX returns results in the order its metrics resolved; report them in suite order.
    position = {expectation.id: index for index, expectation in enumerate(suite.expectations)}
    results = sorted(suite_result.results, key=lambda r: position.get(r.expectation_config.id, len(position)))
    return _report(suite_name, results, df)


def _met_unexpected_values(result: Any) -> bool:
    return any((r.result or {}).get("unexpected_count") or _exception_message(r.exception_info or {})
               for suite in result.run_results.values() for r in suite.results)


def _report(suite_name: str, results: list[Any], df: DataFrame) -> ValidationReport:
    outcomes = tuple(_outcome(r) for r in results)
    counts = [r.result.get("element_count") for r in results]
    counts = [c for c in counts if c is not None]
    # Every map expectation already counted the rows; count again only for table-level suites.
    rows = max(counts) if counts else df.count()
    success = all(o.success for o in outcomes if o.severity == CRITICAL)
    return ValidationReport(suite=suite_name, success=success, outcomes=outcomes, evaluated_rows=rows)


def _outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or (",".join(kwargs["column_list"]) if kwargs.get("column_list") else None)
    error = _exception_message(result.exception_info or {})
    return ExpectationOutcome(
        name=config.type,
        column=column,
        success=bool(result.success),
        unexpected_count=result.result.get("unexpected_count"),
        severity=_SEVERITIES[str(getattr(config.severity, "value", config.severity))],
        error=error,
    )


def _exception_message(info: dict) -> str | None:
    # GX 1.x nests one entry per failed metric; older code paths give a single flat entry.
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [e.get("exception_message") for e in entries if isinstance(e, dict) and e.get("raised_exception")]
    return messages[0] if messages else None
