"""What a run reports: one typed record, filled stage by stage, written as report.json whatever happens."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from expectations.validate import ValidationReport
from jobs.progress import StageFigures
from jobs.report_html import write_html
from jobs.sinks.base import WriteOutcome
from jobs.verify.patterns import PatternResult
from jobs.verify.reconcile import ReconcileResult

SUMMARY_FIGURES = ("items_expected", "items_written", "items_rejected", "items_lost", "items_mismatched",
                   "wcu_consumed", "throttled_requests", "retries")


@dataclass(frozen=True)
class EntityCounts:
    built: int
    quarantined: int


@dataclass
class RunReport:
    """report.json: the figures of one run. `status` is "ok" only when nothing was lost or different."""

    mapping: str
    mapping_file: str
    table: str
    sink: str
    mode: str = "run"  # run, reconcile, check-patterns or sync
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    items_built: int | None = None
    items_expected: int = 0  # items that passed the checks and should be in the table
    items_written: int = 0
    items_rejected: int = 0  # quarantined + dead letter
    items_dead_letter: int | None = None
    items_lost: int = 0  # expected but not in the table
    items_mismatched: int = 0  # in the table with other content
    source_rows: dict[str, int] | None = None
    source_validation: list[ValidationReport] | None = None
    by_entity: dict[str, EntityCounts] | None = None
    quarantine_reasons: list[dict[str, Any]] | None = None  # [{reason, items, sample}], most items first
    item_sizes: dict[str, Any] | None = None  # p50, p90, p99, max and a histogram of the accepted items
    validation: ValidationReport | None = None
    write: WriteOutcome | None = None
    reconcile: ReconcileResult | None = None
    patterns: list[PatternResult] | None = None  # the mapping's access patterns, checked against the table
    sync: dict[str, Any] | None = None  # a sync cycle: changes per table and operation, items rewritten
    # and deleted, lag, positions before and after
    quarantine: Path | None = None
    dead_letter: Path | None = None
    data_docs: Path | None = None
    status: str = "failed"
    error: str | None = None
    seconds: float = 0.0
    stages: dict[str, StageFigures] = field(default_factory=dict)
    report: Path | None = None  # where report.json was written

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def wcu_consumed(self) -> float:
        return self.write.wcu_consumed if self.write else 0.0

    @property
    def throttled_requests(self) -> int:
        return self.write.throttled_requests if self.write else 0

    @property
    def retries(self) -> int:
        return self.write.retries if self.write else 0

    def as_dict(self) -> dict[str, Any]:
        """The report as report.json holds it (absent parts are left out)."""
        out: dict[str, Any] = {
            "mapping": self.mapping, "mapping_file": self.mapping_file, "table": self.table, "sink": self.sink,
            "mode": self.mode, "started_at": self.started_at,
            **{name: getattr(self, name) for name in SUMMARY_FIGURES},
        }
        optional = {
            "items_built": self.items_built,
            "items_dead_letter": self.items_dead_letter,
            "source_rows": self.source_rows,
            "source_validation": None if self.source_validation is None else [
                {"suite": r.suite, "success": r.success,
                 "failed": [f"{o.name}({o.column})" for o in r.outcomes if not o.success]}
                for r in self.source_validation],
            "by_entity": None if self.by_entity is None else {
                name: {"built": c.built, "quarantined": c.quarantined} for name, c in self.by_entity.items()},
            "quarantine_reasons": self.quarantine_reasons,
            "item_sizes": self.item_sizes,
            "validation": None if self.validation is None else _validation(self.validation, self.data_docs),
            "reconcile": None if self.reconcile is None else _reconcile(self.reconcile),
            "patterns": None if self.patterns is None else [p.as_dict() for p in self.patterns],
            "sync": self.sync,
            "quarantine": self.quarantine,
            "dead_letter": self.dead_letter,
        }
        out |= {k: v for k, v in optional.items() if v is not None}
        if self.write is not None:
            out["batches"] = self.write.batches
            out |= dict(self.write.report)
        out["status"] = self.status
        if self.error is not None:
            out["error"] = self.error
        out["seconds"] = round(self.seconds, 3)
        out["stages"] = {name: {"rows": s.rows, "seconds": round(s.seconds, 3)} for name, s in self.stages.items()}
        if self.report is not None:
            out["report"] = self.report
        return _paths_as_text(out)

    def save(self, path: Path) -> None:
        """report.json, and report.html beside it: the same figures as a page people read."""
        figures = self.as_dict()
        path.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
        write_html(figures, path.with_name("report.html"))
        self.report = path

    def summary_lines(self) -> list[str]:
        """What the console shows at the end of a run."""
        figures = ", ".join(
            f"{name}={value:,}" if isinstance(value, int) else f"{name}={value:,.1f}"
            for name, value in ((name, getattr(self, name)) for name in SUMMARY_FIGURES))
        lines = [f"summary: {figures}"]
        for label, path in (("quarantine", self.quarantine), ("dead letter", self.dead_letter),
                            ("report", self.report), ("readable report", self.report and self.report.with_name("report.html"))):
            if path:
                lines.append(f"{label}: {path}")
        if self.validation is not None and self.data_docs is not None:
            lines.append(f"data docs: {self.data_docs}")
        for pattern in self.patterns or []:
            line = f"pattern {pattern.name}: {pattern.passed} of {pattern.samples} samples agree with the source"
            if pattern.failures:
                first = pattern.failures[0]
                shown = ", ".join(f"{k}={v}" for k, v in first["parameters"].items())
                line += f"; {pattern.failed} differ, first {shown}: {'; '.join(first['problems'])}"
            lines.append(line)
        if self.sync is not None:
            changed = ", ".join(f"{table} {sum(ops.values()):,}" for table, ops in self.sync["changes"].items()
                                if sum(ops.values())) or "none"
            lines.append(f"sync: changed rows {changed}; {self.sync['items_rewritten']:,} items rewritten, "
                         f"{self.sync['items_deleted']:,} deleted; {self.sync['lag_seconds']:,.1f} s behind the source"
                         + ("" if self.sync.get("caught_up", True) else
                            "; more changes wait: the next cycle goes on from here"))
        lines.append(f"status: {self.status}")
        return lines


def _validation(report: ValidationReport, data_docs: Path | None) -> dict[str, Any]:
    return {
        "suite": report.suite,
        "success": report.success,
        "data_docs": data_docs,
        "expectations": [
            {"name": o.name, "column": o.column, "success": o.success, "unexpected": o.unexpected_count,
             "severity": o.severity}
            for o in report.outcomes
        ],
    }


def _reconcile(result: ReconcileResult) -> dict[str, Any]:
    return {
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


def _paths_as_text(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _paths_as_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_paths_as_text(v) for v in value]
    return value

