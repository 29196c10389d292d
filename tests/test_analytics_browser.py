"""Headless Chromium opens each `journey analytics ... --html` page: the chart is drawn (offline) and the
numbers on the page equal the same command's `--json` output.

Screenshots are taken every run; with JOURNEY_UPDATE_SCREENSHOTS=1 they replace docs/analytics-*.png
(the README shows them), so an ordinary test run leaves the working tree clean.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from analytics_support import loaded_database
from browser import chromium, dump_dom, screenshot
from typer.testing import CliRunner

from engine.cli import app

DOCS = Path(__file__).resolve().parent.parent / "docs"
STEP_1 = "form_fill where event.form == 'lead-step-1'"
STEP_2 = "form_fill where event.form == 'lead-step-2'"
CLOSED_WON = "opportunity_stage_changed where event.stage == 'closed_won'"

COMMANDS: dict[str, list[str]] = {
    "canvas": ["canvas", STEP_1, STEP_2, "opportunity_created", CLOSED_WON],
    "cohort": ["cohort", "--include", "form_fill", "--return", "web_visit", "--grain", "week", "--periods", "4"],
    "flow": ["flow", "--starts-with", STEP_1, "--columns", "4", "--top", "3"],
    "nodes": ["nodes", "ai-seed-abm"],
    "timeline": ["timeline", "acme", "--solution-interest", "irrigation"],
}
HEIGHTS = {"canvas": 900, "cohort": 800, "flow": 1100, "nodes": 1500, "timeline": 800}


class TablesOnPage(HTMLParser):
    """Every <table data-table=...> on the page: its rows of cell values read from data-value."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[Any]]] = {}
        self._current: str | None = None
        self._body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("data-table"):
            self._current = found["data-table"]
            self.tables[self._current] = []
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._current is not None and self._body:
            self.tables[self._current].append([])
        elif tag == "td" and self._current is not None and "data-value" in found:
            self.tables[self._current][-1].append(json.loads(found["data-value"] or "null"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._current = None
        elif tag == "tbody":
            self._body = False


def expected_tables(report: dict[str, Any]) -> dict[str, list[list[Any]]]:
    """What the page must show, read from the --json output."""
    match report["report"]:
        case "canvas":
            keys = ["step", "label", "containers", "conversion_pct", "fallout", "overall_pct"]
            rows = [[s[k] for k in keys] + [s["median_seconds_from_previous"]] for s in report["steps"]]
            return {"steps": rows}
        case "cohort":
            rows = []
            for row in report["rows"]:
                cells = [row["cohort"], row["size"]]
                for count, share in zip(row["counts"], row["percents"], strict=True):
                    cells += [count, share]
                rows.append(cells)
            return {"cohorts": rows}
        case "flow":
            return {
                "links": [[li["column"], li["source"], li["target"], li["containers"]] for li in report["links"]],
                "paths": [[" → ".join(p["steps"]), p["containers"]] for p in report["paths"]],
            }
        case "nodes":
            return {
                "nodes": [
                    [
                        n["node"],
                        n["type"],
                        n["entered"],
                        n["entries"],
                        n["now"],
                        ", ".join(f"{b}: {c}" for b, c in n["left"].items()),
                    ]
                    for n in report["nodes"]
                ]
            }
        case "timeline":
            return {
                "entries": [
                    [
                        datetime.fromisoformat(e["occurred_at"]).strftime("%Y-%m-%d %H:%M:%S UTC"),
                        e["type"],
                        e["person"],
                        e["email"],
                        ", ".join(e["roles"]),
                        e["journey"],
                        e["node"],
                        e["detail"],
                    ]
                    for e in report["entries"]
                ]
            }
    raise AssertionError(f"unexpected report {report['report']}")


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    chromium()  # installs it, or skips the module with the reason
    with loaded_database("sqlite", tmp_path_factory.mktemp("pages"), None) as engine:
        yield engine.url.render_as_string(hide_password=False)


@pytest.mark.parametrize("report", list(COMMANDS))
def test_page_shows_the_json_numbers(
    report: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's tables hold exactly the --json numbers, and Chromium draws its chart without network."""
    monkeypatch.setenv("JOURNEY_DATABASE_URL", database_url)
    page = tmp_path / f"analytics-{report}.html"
    result = CliRunner().invoke(app, ["analytics", *COMMANDS[report], "--json", "--html", str(page)])
    assert result.exit_code == 0, result.output
    expected = expected_tables(json.loads(result.stdout))
    dom = dump_dom(page)
    parser = TablesOnPage()
    parser.feed(dom)
    assert parser.tables == expected
    assert any(rows for rows in expected.values())
    if report != "timeline":
        assert 'class="main-svg"' in dom  # plotly ran from the page itself and drew the chart
    png = screenshot(page, tmp_path / f"analytics-{report}.png", (1280, HEIGHTS[report]))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("JOURNEY_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(png, DOCS / png.name)
