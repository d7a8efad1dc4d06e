"""report.html: report.json as a page people read, self-contained (no scripts, styles or images
from elsewhere; the plots are inline SVG), so it opens from a file or an S3 download.

`render(report)` takes the dict report.json holds and returns the page. Every figure the page
shows from report.json carries `data-figure="<path>"` (its place in report.json, parts joined by "/"), so a
test can check that the page says what the JSON says.
"""

from __future__ import annotations

import html
import json
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
        _sync(report.get("sync")),
        _reconcile(report.get("reconcile")),
        _patterns(report.get("patterns")),
        _validation(report.get("validation"), base),
        *(_plan_sections(report) if report.get("mode") == "plan" else ()),
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


def _money(path: str, value: Any) -> str:
    """An amount of money from report.json: four decimals, as a load of a few cents is common."""
    shown = f"{value:,.4f}" if isinstance(value, (int, float)) else _e(value)
    return f'<span data-figure="{_e(path)}">{shown}</span>'


def _link(target: Any, base: Path | None) -> str:
    text = str(target)
    href = os.path.relpath(text, base) if base is not None and "://" not in text else text
    return f'<a href="{_e(href)}">{_e(text)}</a>'


def _header(report: Mapping[str, Any]) -> str:
    status = str(report.get("status", "failed"))
    lines = [
        f'<p><span class="status {_e(status)}" data-figure="status">{_e(status)}</span> '
        f'<span class="muted">started {_e(report.get("started_at", "?"))}, '
        f'{_fig("seconds", report.get("seconds", 0.0))} s in all; '
        f'{"nothing written" if report.get("mode") == "plan" else "sink " + _e(report.get("sink", "?"))}; '
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


def _sync(sync: Mapping[str, Any] | None) -> str:
    """A sync cycle: what changed per table, what it rewrote and deleted, where each table's position went."""
    if not sync:
        return ""
    figures = [[_e(label), _fig(f"sync/{key}", sync[key])] for key, label in (
        ("items_rewritten", "items rewritten"), ("items_deleted", "items deleted"),
        ("lag_seconds", "seconds behind the source at the end")) if key in sync]
    out = "<h2>Sync cycle</h2>" + _table(["", ""], figures, [False, True])
    if sync.get("caught_up") is False:
        out += "<p>This cycle stopped at its size: more changes wait, and the next cycle goes on from here.</p>"
    rows = []
    for table, operations in (sync.get("changes") or {}).items():
        changed = ", ".join(f"{op} {_fig(f'sync/changes/{table}/{op}', n)}" for op, n in operations.items())
        before = (sync.get("positions_before") or {}).get(table, {})
        after = (sync.get("positions_after") or {}).get(table, {})
        rows.append([f"<code>{_e(table)}</code>", changed, _e(_position(before)), _e(_position(after))])
    out += _table(["table", "changed rows", "position before", "position after"], rows, [False, True, False, False])
    full = sync.get("verify_full")
    if full:
        counts = ", ".join(f"{k} {_fig(f'sync/verify_full/{k}', full[k])}" for k in ("missing", "mismatched", "extra")
                           if k in full)
        out += f"<p>verify full: {_e(full.get('status'))} ({counts}); report <code>{_e(full.get('report'))}</code></p>"
    return out


def _position(value: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in value.items()) or "-"


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


def _patterns(patterns: Sequence[Mapping[str, Any]] | None) -> str:
    if not patterns:
        return ""
    rows = [[f"<strong>{_e(p['name'])}</strong><br>{_e(p.get('description') or '')}", f"<code>{_e(p['operation'])}</code>",
             _fig(f"patterns/{i}/samples", p["samples"]), _fig(f"patterns/{i}/passed", p["passed"]),
             _fig(f"patterns/{i}/failed", p["failed"]), _fig(f"patterns/{i}/compared", p["compared"]),
             _fig(f"patterns/{i}/quarantined_left_out", p["quarantined_left_out"])]
            for i, p in enumerate(patterns)]
    out = ("<h2>Access patterns (each asked of the table and of the source)</h2>"
           + _table(["pattern", "operation", "samples", "agree", "differ", "items compared", "quarantined, left out"],
                    rows, [False, False, True, True, True, True, True]))
    for p in patterns:
        for failure in p.get("failures") or []:
            shown = ", ".join(f"{k}={v}" for k, v in failure["parameters"].items())
            problems = "".join(f"<li>{_e(problem)}</li>" for problem in failure["problems"])
            out += f"<p><strong>{_e(p['name'])}</strong> with <code>{_e(shown)}</code>:</p><ul>{problems}</ul>"
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


# --- carve plan ------------------------------------------------------------------------------------


def _plan_sections(report: Mapping[str, Any]) -> list[str]:
    return [_plan_load(report), _plan_entities(report), _plan_largest(report), _plan_keys(report),
            _plan_costs(report), _plan_samples(report)]


def _plan_load(report: Mapping[str, Any]) -> str:
    sample = report.get("sample") or {}
    how = ("every row was read: the figures are exact" if sample.get("full") else
           f"a sample of about {sample.get('rows_per_entity', 0):,} rows per entity was read (whole partition keys "
           "with their embedded rows); totals are scaled by each entity's exact row count")
    units = report.get("write_units") or {}
    rows = [["table", _fig("write_units/table", units.get("table", 0))]]
    rows += [[f"index {_e(name)}", _fig(f"write_units/indexes/{name}", n)] for name, n in (units.get("indexes") or {}).items()]
    rows.append(["<strong>total</strong>", _fig("write_units/total", units.get("total", 0))])
    d = report.get("duration") or {}
    target = report.get("target") or {}
    return (f"<h2>The load</h2><p>{_e(how)}. Target table {_e(target.get('table', '?'))}: {_e(target.get('note', ''))}.</p>"
            + _table(["write units", ""], rows, [False, True])
            + f"<p>At the budget, {_fig('duration/budget_wcu_per_second', d.get('budget_wcu_per_second'))} WCU/s "
              f"({_e(d.get('budget', ''))}): {_fig('duration/seconds_at_budget', d.get('seconds_at_budget'))} s. "
              f"At the table's capacity, {_fig('duration/capacity_wcu_per_second', d.get('capacity_wcu_per_second'))} "
              f"WCU/s ({_e(d.get('capacity', ''))}): {_fig('duration/seconds_at_capacity', d.get('seconds_at_capacity'))} s. "
              f"The busiest partition key alone needs {_fig('duration/largest_key_seconds', d.get('largest_key_seconds'))} s "
              "at DynamoDB's 1,000 WCU/s per key.</p>")


def _plan_entities(report: Mapping[str, Any]) -> str:
    out = ["<h2>Item sizes per entity</h2>"]
    for name, e in (report.get("by_entity") or {}).items():
        sizes = e.get("sizes") or {}
        base = f"by_entity/{name}"
        stats = " ".join(f"{key} {_fig(f'{base}/sizes/{key}', sizes[key])} B;" for key in ("p50", "p90", "p99", "max")
                         if key in sizes)
        indexes = "".join(f", index {_e(i)} {_fig(f'{base}/index_write_units/{i}', n)}"
                          for i, n in (e.get("index_write_units") or {}).items())
        chart = _bars([(_size_label(b["up_to"]), b["items"]) for b in sizes.get("histogram") or []],
                      "items in the sample", "item size up to")
        out.append(f"<h3>{_e(name)}</h3><p>{_fig(f'{base}/built', e['built'])} items, "
                   f"{_fig(f'{base}/quarantined', e['quarantined'])} quarantined; {stats} "
                   f"write units {_fig(f'{base}/write_units', e['write_units'])}{indexes}; "
                   f"over 400 KB {_fig(f'{base}/over_400kb', e['over_400kb'])}, within 10 % of it "
                   f"{_fig(f'{base}/within_10pct_of_400kb', e['within_10pct_of_400kb'])}. "
                   f"<span class='muted'>Sample: {_fig(f'{base}/sample/rows', e['sample']['rows'])} items.</span></p>{chart}")
    return "".join(out)


def _plan_largest(report: Mapping[str, Any]) -> str:
    items = report.get("largest_items") or []
    if not items:
        return ""
    body = [[_e(i["entity"]), f"<code>{_e(i['pk'])}</code>", f"<code>{_e(i.get('sk') or '')}</code>",
             _fig(f"largest_items/{n}/size", i["size"]), _e(i.get("problem") or "")] for n, i in enumerate(items)]
    return ("<h2>The largest items</h2>"
            + _table(["entity", "pk", "sk", "bytes", "quarantined because"], body, [False, False, False, True, False]))


def _plan_keys(report: Mapping[str, Any]) -> str:
    out = []
    collections = report.get("collections") or {}
    for kind, title in (("by_items", "most items"), ("by_bytes", "most bytes")):
        rows = [[f"<code>{_e(c['pk'])}</code>", _fig(f"collections/{kind}/{n}/items", c["items"]),
                 _fig(f"collections/{kind}/{n}/bytes", c["bytes"])] for n, c in enumerate(collections.get(kind) or [])]
        if rows:
            out.append(f"<h2>Item collections with the {title}</h2>"
                       + _table(["partition key", "items", "bytes"], rows, [False, True, True]))
    hot = [[f"<code>{_e(h['pk'])}</code>", _fig(f"hot_keys/{n}/write_units", h["write_units"]),
            f"{h['share']:.2%}", _fig(f"hot_keys/{n}/seconds_at_partition_limit", h["seconds_at_partition_limit"])]
           for n, h in enumerate(report.get("hot_keys") or [])]
    if hot:
        out.append("<h2>Hot partition keys</h2><p>The keys that take the most of the load's table write units.</p>"
                   + _table(["partition key", "write units", "share of the load", "seconds at 1,000 WCU/s"], hot,
                            [False, True, True, True]))
    return "".join(out)


def _plan_costs(report: Mapping[str, Any]) -> str:
    costs = report.get("costs") or {}
    prices = costs.get("prices") or {}
    currency = _e(prices.get("currency", ""))
    rows = [["on-demand writes", f"{_money('costs/on_demand', costs.get('on_demand'))} {currency}"],
            [f"provisioned capacity ({_fig('costs/provisioned_hours', costs.get('provisioned_hours'))} h billed)",
             f"{_money('costs/provisioned', costs.get('provisioned'))} {currency}"],
            ["Import from S3", f"{_money('costs/import_s3', costs.get('import_s3'))} {currency}"]]
    rec = report.get("recommendation") or {}
    return ("<h2>Cost of the load</h2>"
            f"<p class='muted'>List prices for {_e(prices.get('region', '?'))}, {_e(prices.get('table_class', ''))} "
            f"table class, as of {_e(prices.get('as_of', '?'))} ({_e(prices.get('source', ''))}); "
            "<code>carve plan --prices FILE</code> overrides them.</p>"
            + _table(["path", "cost"], rows, [False, True])
            + f"<p><strong>Recommended: <span data-figure='recommendation/path'>{_e(rec.get('path', ''))}</span></strong>. "
              f"{_e(rec.get('reason', ''))}.</p>")


def _plan_samples(report: Mapping[str, Any]) -> str:
    samples = report.get("samples") or {}
    if not samples:
        return ""
    out = ["<h2>Sample items (DynamoDB JSON)</h2>"]
    for entity, items in samples.items():
        for item in items:
            out.append(f"<h3>{_e(entity)}</h3><pre>{_e(json.dumps(item, indent=2, ensure_ascii=False))}</pre>")
    return "".join(out)
