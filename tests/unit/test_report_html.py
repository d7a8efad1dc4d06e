"""report.html from report.json's figures: escaped, self-contained, links relative to the page.

The page in a real browser, against a real run's report.json: tests/integration/test_end_to_end.py.
"""

from __future__ import annotations

import re

from jobs.report import RunReport
from jobs.report_html import render


def test_text_from_the_data_is_escaped_and_nothing_is_loaded_from_elsewhere(tmp_path):
    report = {
        "mapping": "m", "table": "T", "status": "failed", "error": "boom <script>alert(1)</script>",
        "items_rejected": 3,
        "quarantine": str(tmp_path / "quarantine"),
        "quarantine_reasons": [{"reason": "<img src=x onerror=alert(1)>", "items": 3,
                                "sample": {"entity": "e", "pk": "A&B", "sk": None}}],
    }
    page = render(report, base=tmp_path)
    assert "<script>" not in page and "<img" not in page
    assert "boom &lt;script&gt;" in page and "A&amp;B" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no external assets
    assert 'href="quarantine"' in page  # relative to the page, so the folder can move


def test_a_report_that_failed_before_any_stage_still_renders(tmp_path):
    failed = RunReport("m", "m.yaml", "T", "carve", error="connection refused")
    failed.save(tmp_path / "report.json")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<span class="status failed" data-figure="status">failed</span>' in page
    assert 'data-figure="error">connection refused<' in page
    assert page.rstrip().endswith("</html>")


def test_every_shown_figure_names_its_place_in_report_json():
    report = {"mapping": "m", "table": "T", "status": "ok", "items_written": 1234567, "wcu_consumed": 10.25,
              "stages": {"read": {"rows": 10, "seconds": 1.5}},
              "item_sizes": {"p50": 100, "p90": 200, "p99": 300, "max": 5000,
                             "histogram": [{"up_to": 128, "items": 1}, {"up_to": 8192, "items": 2}]}}
    page = render(report)
    shown = dict(re.findall(r'data-figure="([^"]+)">([^<]*)<', page))
    assert shown["items_written"] == "1,234,567"
    assert shown["wcu_consumed"] == "10.2"  # one decimal (banker's rounding of the float)
    assert shown["stages/read/seconds"] == "1.5"
    assert shown["item_sizes/max"] == "5,000"
    assert "8 KB" in page and "<svg" in page


def test_dead_letter_items_are_not_counted_as_quarantine_reasons_left_out():
    report = {"mapping": "m", "table": "T", "status": "failed", "items_rejected": 5, "items_dead_letter": 2,
              "by_entity": {"a": {"built": 10, "quarantined": 2}, "b": {"built": 4, "quarantined": 1}},
              "quarantine_reasons": [{"reason": "x", "items": 2, "sample": {}}, {"reason": "y", "items": 1, "sample": {}}]}
    assert "more items with other reasons" not in render(report)
    report["by_entity"]["b"]["quarantined"] = 4  # 3 quarantined items beyond the reasons listed
    assert "3 more items with other reasons" in render(report)


def test_a_sync_cycle_shows_its_changes_and_positions():
    report = {"mapping": "m", "table": "T", "status": "ok", "mode": "sync",
              "sync": {"changes": {"public.product": {"upsert": 1}, "public.orders": {"upsert": 0}},
                       "items_rewritten": 3, "items_deleted": 1, "lag_seconds": 12.5,
                       "positions_before": {"public.product": {"upto": "4"}, "public.orders": {"upto": "9"}},
                       "positions_after": {"public.product": {"upto": "5"}, "public.orders": {"upto": "9"}}}}
    page = render(report)
    shown = dict(re.findall(r'data-figure="([^"]+)">([^<]*)<', page))
    assert shown["sync/items_rewritten"] == "3" and shown["sync/items_deleted"] == "1"
    assert shown["sync/changes/public.product/upsert"] == "1"
    assert "<title>carve sync: m -&gt; T</title>" in page
    assert "upto 4" in page and "upto 5" in page
    assert "more changes wait" not in page


def test_a_cycle_that_stopped_at_its_size_says_that_more_changes_wait():
    report = {"mapping": "m", "table": "T", "status": "ok", "mode": "sync",
              "sync": {"changes": {"public.orders": {"insert": 2, "delete": 1}}, "items_rewritten": 2,
                       "items_deleted": 1, "lag_seconds": 1.0, "caught_up": False,
                       "positions_before": {"public.orders": {"slot": "s", "lsn": "0/1"}},
                       "positions_after": {"public.orders": {"slot": "s", "lsn": "0/2"}}}}
    page = render(report)
    assert "more changes wait, and the next cycle goes on from here" in page
    assert 'data-figure="sync/changes/public.orders/delete">1<' in page
