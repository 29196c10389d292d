"""Headless Chromium opens a cohort page with every new table (retention, churn, latency, per --by value): its
heat maps are drawn offline and every table's numbers equal the `--json` numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, dump_dom, screenshot
from cohort_options_data import load
from test_analytics_browser import TablesOnPage
from typer.testing import CliRunner

from engine.cli import app
from engine.db import init_db, make_engine


def expected_tables(report: dict[str, Any]) -> dict[str, list[list[Any]]]:
    """Each table the page must show, read from the --json output: `<kind>` then `<kind>/<value>` per group."""
    found: dict[str, list[list[Any]]] = {}
    sets = [("", report), *((f"/{group['value']}", group) for group in report["groups"] or [])]
    for suffix, counted in sets:
        for kind, key in [("cohorts", "rows"), ("churn", "churn"), ("latency", "latency")]:
            if counted[key] is None:
                continue
            rows = []
            for row in counted[key]:
                cells = [row["cohort"], row["size"]]
                for count, share in zip(row["counts"], row["percents"], strict=True):
                    cells += [count, share]
                rows.append(cells)
            found[f"{kind}{suffix}"] = rows
    return found


def test_page_with_churn_latency_and_groups_shows_the_json_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium()  # installs it, or skips with the reason
    engine = make_engine(f"sqlite:///{tmp_path / 'cohort.db'}")
    init_db(engine)
    load(engine, tmp_path / "journeys")
    monkeypatch.setenv("JOURNEY_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    page = tmp_path / "analytics-cohort-options.html"
    options = ["--periods", "4", "--returns-after-inclusion", "--churn", "--latency", "--by", "industry"]
    command = ["analytics", "cohort", "--include", "form_fill", "--return", "web_visit", *options]
    result = CliRunner().invoke(app, [*command, "--json", "--html", str(page)])
    assert result.exit_code == 0, result.output
    expected = expected_tables(json.loads(result.stdout))
    assert list(expected) == [
        "cohorts",
        "churn",
        "latency",
        *(
            f"{kind}/{value}"
            for value in ["Agriculture", "Software", "(none)"]
            for kind in ["cohorts", "churn", "latency"]
        ),
    ]
    assert expected["latency/(none)"] == [
        ["2025-02-01", 1, 0, 0.0, 0, 0.0, 1, 100.0, 1, 100.0, 1, 100.0, 1, 100.0, 1, 100.0]
    ]
    dom = dump_dom(page)
    parser = TablesOnPage()
    parser.feed(dom)
    assert parser.tables == expected
    assert dom.count('class="main-svg"') >= 1 and dom.count("heatmaplayer") >= 3  # three heat maps drawn
    png = screenshot(page, tmp_path / "analytics-cohort-options.png", (1280, 1600))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    engine.dispose()
