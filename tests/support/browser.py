"""report.html in a real headless Chromium (Debian's, installed by scripts/ensure-browser)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class Page:
    report: dict[str, Any]  # report.json beside the page
    shown: list[tuple[str, str]]  # (data-figure path, text shown)
    links: list[str]
    title: str
    errors: list[str]  # console errors and page errors
    outside: list[str]  # requests to anything but the file itself


def open_report(report_dir: Path) -> Page:
    """Open report_dir/report.html; a full-page screenshot lands in report_dir/report.png."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/ensure-browser (make test does)"
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith("file://") else None)
            page.goto((report_dir / "report.html").as_uri())
            shown = page.eval_on_selector_all("[data-figure]", "els => els.map(e => [e.dataset.figure, e.textContent])")
            links = page.eval_on_selector_all("a", "els => els.map(e => e.href)")
            title = page.title()
            page.screenshot(path=str(report_dir / "report.png"), full_page=True)
        finally:
            browser.close()
    return Page(report, [tuple(s) for s in shown], links, title, errors, outside)


def figure(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for part in path.split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def assert_figures_match(page: Page) -> None:
    """Every figure the page marks says what report.json says (thousands separators, one decimal)."""
    for path, text in page.shown:
        value = figure(page.report, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            assert text == str(value), (path, text, value)
        else:
            # Shown to the digits on the page: within half its last digit (30.25 may show as 30.2).
            digits = len(text.rpartition(".")[2]) if "." in text else 0
            assert float(text.replace(",", "")) == pytest.approx(value, abs=0.5 * 10**-digits + 1e-9), (path, text, value)
