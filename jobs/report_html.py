"""report.html: report.json as a page people read, self-contained (no scripts, styles or images
from elsewhere; the plots are inline SVG), so it opens from a file or an S3 download.

`render(report)` takes the dict report.json holds and returns the page. Every figure the page
shows from report.json carries `data-figure="<path>"` (its place in report.json, parts joined by "/"), so a
test can check that the page says what the JSON says.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #1b1f24; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #eaeef2; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.status { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: 600; color: #fff; }
.ok { background: #1a7f37; } .failed, .interrupted { background: #cf222e; }
.error { background: #fff1f0; border: 1px solid #ffccc7; padding: 0.6em 1em; white-space: pre-wrap; }
.muted { color: #57606a; } code { font-size: 0.92em; } svg text { font: 11px system-ui, sans-serif; fill: #57606a; }
"""

SUMMARY = (
    ("items_built", "items built"), ("items_expected", "items expected in the table"),
    ("items_written", "items written"), ("items_rejected", "items rejected"), ("items_lost", "items lost"),
    ("items_mismatched", "items mismatched"), ("wcu_consumed", "write units consumed"),
    ("throttled_requests", "throttled requests"), ("retries", "retries"),
)


def write_html(report: Mapping[str, Any], path: Path) -> Path:
    """report.html beside report.json; links (quarantine, Data Docs) are made relative to it."""
    path.write_text(render(report, base=path.parent), encoding="utf-8")
    return path


def render(report: Mapping[str, Any], base: Path | None = None) -> str:
    title = f"carve {report.get('mode', 'run')}: {report.get('mapping', '?')} -> {report.get('table', '?')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _header(report),
        _summary(report),
        _stages(report.get("stages") or {}),
        _source_rows(report.get("source_rows")),
        _entities(report.get("by_entity")),
        _quarantine(report, base),
        _sizes(report.get("item_sizes")),
        _write_rate(report.get("write")),
        _reconcile(report.get("reconcile")),
        _validation(report.get("validation"), base),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _e(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return _e(value)


def _fig(path: str, value: Any) -> str:
    """A figure from report.json, marked with its place there."""
    return f'<span data-figure="{_e(path)}">{_num(value)}</span>'


def _link(target: Any, base: Path | None) -> str:
    text = str(target)
    href = os.path.relpath(text, base) if base is not None and "://" not in text else text
    return f'<a href="{_e(href)}">{_e(text)}</a>'


def _header(report: Mapping[str, Any]) -> str:
    status = str(report.get("status", "failed"))
    lines = [
        f'<p><span class="status {_e(status)}" data-figure="status">{_e(status)}</span> '
        f'<span class="muted">started {_e(report.get("started_at", "?"))}, '
        f'{_fig("seconds", report.get("seconds", 0.0))} s in all; sink {_e(report.get("sink", "?"))}; '
        f'mapping file <code>{_e(report.get("mapping_file", "?"))}</code></span></p>',
    ]
    if report.get("error"):
        lines.append(f'<div class="error" data-figure="error">{_e(report["error"])}</div>')
    return "\n".join(lines)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    th = "".join(f'<th class="{"n" if n else ""}">{_e(h)}</th>' for h, n in zip(head, numeric, strict=True))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if n else ""}">{c}</td>' for c, n in zip(row, numeric, strict=True))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _summary(report: Mapping[str, Any]) -> str:
    rows = [[_e(label), _fig(key, report[key])] for key, label in SUMMARY if key in report]
    return "<h2>Summary</h2>" + _table(["", "count"], rows, [False, True])


def _stages(stages: Mapping[str, Any]) -> str:
    if not stages:
        return ""
    longest = max((s.get("seconds", 0.0) for s in stages.values()), default=0.0) or 1.0
    rows = []
    for name, s in stages.items():
        width = max(1, round(200 * s.get("seconds", 0.0) / longest))
        bar = f'<svg width="204" height="12" role="img"><rect x="0" y="1" width="{width}" height="10" fill="#0969da"/></svg>'
        rows.append([_e(name), _fig(f"stages/{name}/rows", s.get("rows", 0)),
                     _fig(f"stages/{name}/seconds", s.get("seconds", 0.0)), bar])
    return "<h2>Stages</h2>" + _table(["stage", "rows", "seconds", ""], rows, [False, True, True, False])


def _source_rows(rows: Mapping[str, int] | None) -> str:
    if not rows:
        return ""
    body = [[f"<code>{_e(t)}</code>", _fig(f"source_rows/{t}", n)] for t, n in rows.items()]
    return "<h2>Source rows read</h2>" + _table(["table", "rows"], body, [False, True])


def _entities(by_entity: Mapping[str, Any] | None) -> str:
    if not by_entity:
        return ""
    body = [[_e(name), _fig(f"by_entity/{name}/built", c["built"]), _fig(f"by_entity/{name}/quarantined", c["quarantined"])]
            for name, c in by_entity.items()]
    return "<h2>Items per entity</h2>" + _table(["entity", "built", "quarantined"], body, [False, True, True])


def _quarantine(report: Mapping[str, Any], base: Path | None) -> str:
    reasons = report.get("quarantine_reasons")
    if reasons is None:
        return ""
    where = f" Every quarantined item, with its source key and reason: {_link(report['quarantine'], base)}." \
        if report.get("quarantine") else ""
    if not reasons:
        return f"<h2>Quarantine</h2><p>No item was quarantined.{where}</p>"
    body = []
    for i, r in enumerate(reasons):
        sample = r.get("sample") or {}
        key = " / ".join(_e(sample.get(k)) for k in ("entity", "pk", "sk") if sample.get(k) is not None)
        body.append([_fig(f"quarantine_reasons/{i}/items", r["items"]), _e(r["reason"]), f"<code>{key}</code>"])
    # items_rejected also counts the dead letter: the quarantine is the entities' quarantined items.
    quarantined = sum(c["quarantined"] for c in (report.get("by_entity") or {}).values())
    rest = quarantined - sum(r["items"] for r in reasons)
    more = f"<p>{rest:,} more items with other reasons.</p>" if rest > 0 else ""
    return (f"<h2>Quarantine</h2><p>By reason, the most frequent first.{where}</p>"
            + _table(["items", "reason", "an item (entity / pk / sk)"], body, [True, False, False]) + more)


def _sizes(sizes: Mapping[str, Any] | None) -> str:
    if not sizes:
        return ""
    stats = " ".join(f"{label} {_fig(f'item_sizes/{key}', sizes[key])} B;" for key, label in
                     (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("max", "max")) if key in sizes)
    buckets = sizes.get("histogram") or []
    chart = _bars([(_size_label(b["up_to"]), b["items"]) for b in buckets], "items", "item size up to")
    return f"<h2>Item sizes</h2><p>{stats} <span class='muted'>(bytes by DynamoDB's rules)</span></p>{chart}"


def _size_label(up_to: int) -> str:
    return f"{up_to // 1024} KB" if up_to >= 1024 else f"{up_to} B"


def _bars(points: Sequence[tuple[str, int]], y_label: str, x_label: str) -> str:
    if not points:
        return ""
    width, height, left, bottom = 760, 220, 60, 40
    top = max(n for _, n in points) or 1
    step = (width - left - 10) / len(points)
    shapes = []
    for i, (label, n) in enumerate(points):
        h = (height - bottom - 10) * n / top
        x = left + i * step
        shapes.append(f'<rect x="{x + 2:.1f}" y="{height - bottom - h:.1f}" width="{max(step - 4, 1):.1f}" '
                      f'height="{h:.1f}" fill="#0969da"><title>{_e(label)}: {n:,} {y_label}</title></rect>')
        shapes.append(f'<text x="{x + step / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">{_e(label)}</text>')
    shapes.append(f'<text x="{left}" y="{height - 8}">{_e(x_label)}</text>')
    shapes.append(f'<text x="4" y="14">{top:,} {_e(y_label)}</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#8c959f"/>'
            + "".join(shapes) + "</svg>")


def _write_rate(write: Mapping[str, Any] | None) -> str:
    if not write:
        return ""
    series = write.get("per_second") or []
    rate = write.get("rate") or {}
    lines = [f"<h2>Write rate</h2><p>Budget {_fig('write/budget_wcu_per_second', write.get('budget_wcu_per_second'))} "
             f"WCU/s ({_e(write.get('budget', ''))})."]
    if rate:
        lines.append(f" Steady state at {_fig('write/rate/steady_utilisation', rate.get('steady_utilisation'))} "
                     f"of the budget (1.0 is all of it), busiest second {_fig('write/rate/peak_share', rate.get('peak_share'))}.")
    lines.append("</p>")
    if series:
        lines.append(_rate_plot(series))
    return "".join(lines)


def _rate_plot(series: Sequence[Mapping[str, Any]]) -> str:
    width, height, left, bottom = 760, 240, 60, 30
    last = max(p["second"] for p in series) or 1
    top = max(max(p["wcu"] for p in series), max(p["budget"] or 0 for p in series)) or 1.0

    def x(second: float) -> float:
        return left + (width - left - 10) * second / last

    def y(value: float) -> float:
        return height - bottom - (height - bottom - 10) * value / top

    achieved = " ".join(f"{x(p['second']):.1f},{y(p['wcu']):.1f}" for p in series)
    budget = " ".join(f"{x(p['second']):.1f},{y(p['budget'] or 0):.1f}" for p in series)
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#8c959f"/>'
            f'<polyline points="{budget}" fill="none" stroke="#1b1f24" stroke-dasharray="5,4"/>'
            f'<polyline points="{achieved}" fill="none" stroke="#0969da" stroke-width="1.5"/>'
            f'<text x="4" y="14">{top:,.0f} WCU/s</text>'
            f'<text x="{left}" y="{height - 8}">0 s</text>'
            f'<text x="{width - 10}" y="{height - 8}" text-anchor="end">{last} s since the first write</text>'
            f'<text x="{width - 10}" y="14" text-anchor="end">blue: achieved; dashed: budget</text></svg>')


def _reconcile(rec: Mapping[str, Any] | None) -> str:
    if not rec:
        return ""
    figures = [[_e(k), _fig(f"reconcile/{k}", rec[k])] for k in ("expected", "found", "missing", "mismatched", "extra")
               if k in rec]
    out = "<h2>Reconciliation (the table read back)</h2>" + _table(["", "items"], figures, [False, True])
    for kind in ("missing", "mismatched", "extra"):
        sample = rec.get(f"{kind}_sample") or []
        if sample:
            keys = "".join(f"<li><code>{_e(' / '.join(str(p) for p in key))}</code></li>" for key in sample)
            out += f"<p>{_e(kind)}, a sample:</p><ul>{keys}</ul>"
    return out


def _validation(validation: Mapping[str, Any] | None, base: Path | None) -> str:
    if not validation:
        return ""
    rows = [[_e(o["name"]), f"<code>{_e(o.get('column') or '')}</code>", _e(o.get("severity", "")),
             "met" if o["success"] else "<strong>not met</strong>", _num(o.get("unexpected"))]
            for o in validation.get("expectations", [])]
    docs = f" Great Expectations Data Docs: {_link(validation['data_docs'], base)}." if validation.get("data_docs") else ""
    return (f"<h2>Validation</h2><p>Suite <code>{_e(validation.get('suite'))}</code>.{docs}</p>"
            + _table(["expectation", "column", "severity", "", "unexpected"], rows, [False, False, False, False, True]))
