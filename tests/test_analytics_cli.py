"""`journey analytics ...` on the hand-made data set: tables, JSON, and mistakes reported plainly."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from analytics_support import loaded_database
from typer.testing import CliRunner

from engine.cli import app


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with loaded_database("sqlite", tmp_path_factory.mktemp("cli"), None) as engine:
        yield engine.url.render_as_string(hide_password=False)


@pytest.fixture
def journey(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


class TestAnalyticsCommand:
    """Reports print as tables or JSON; a bad selector, date or option exits non-zero with one clear line."""

    def test_table(self, journey: CliRunner) -> None:
        result = journey.invoke(app, ["analytics", "nodes", "ai-seed-abm"])
        assert result.exit_code == 0, result.output
        assert "Journey ai-seed-abm (graph of version" in result.stdout
        assert any(
            [cell.strip() for cell in line.split("│")[1:6]] == ["assign", "assign_buying_group", "2", "3", "1"]
            for line in result.stdout.splitlines()
        )

    def test_json(self, journey: CliRunner) -> None:
        result = journey.invoke(
            app, ["analytics", "canvas", "web_visit", "form_fill", "--container", "person", "--json"]
        )
        assert result.exit_code == 0, result.output
        assert [s["containers"] for s in json.loads(result.stdout)["steps"]] == [3, 3]

    def test_filters(self, journey: CliRunner) -> None:
        args = ["analytics", "cohort", "--include", "opportunity_created", "--return", "opportunity_stage_changed"]
        result = journey.invoke(app, [*args, "--since", "2026-02-01", "--json", "--periods", "2"])
        report = json.loads(result.stdout)
        assert (report["filters"], report["rows"]) == (
            {"since": "2026-02-01T00:00:00+00:00"},
            [{"cohort": "2026-02-01", "size": 1, "counts": [0, 0], "percents": [0.0, 0.0]}],
        )

    @pytest.mark.parametrize(
        ("args", "code", "message"),
        [
            (
                ["canvas", "form_fill where event.from == 'x'"],
                1,
                "journey: selector 'form_fill where event.from == 'x'': unknown attribute 'event.from' "
                "(did you mean 'form'?)\n",
            ),
            (
                ["timeline", "acme", "--since", "last week"],
                1,
                "journey: --since 'last week' is not a date: use YYYY-MM-DD or an ISO time\n",
            ),
            (
                ["flow", "--dimension", "type"],
                2,
                "journey: give exactly one of --starts-with, --ends-with and --contains\n",
            ),
        ],
    )
    def test_mistakes(self, journey: CliRunner, args: list[str], code: int, message: str) -> None:
        result = journey.invoke(app, ["analytics", *args])
        assert (result.exit_code, result.stderr, result.stdout) == (code, message, "")
