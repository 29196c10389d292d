"""`journey simulate`: the real journey workflow on the time-skipping server, effects simulated, nothing real hit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import SmtpInbox, add_account, add_person
from typer.testing import CliRunner

from engine.cli.app import app
from engine.db import ActivityEvent, JourneyAccount, OutboxMessage
from engine.language.compiler import compile_file
from engine.simulate import expectations
from engine.simulate.runner import planned_events
from engine.simulate.scenario import AccountSpec, ScenarioError, load_scenario

REPO = Path(__file__).resolve().parent.parent
JOURNEY = REPO / "journeys" / "ai_seed_abm.yaml"
runner = CliRunner()

# acme-corp's buying group is 80% complete (no champion: engagement is computed from events, and there are none yet)
# and it asks for a demo on day 2: the gate, then the handoff. beta (large revenue) never answers: LinkedIn (answering
# 500 here), the reminder, the second wait, done. gamma (a small group) never answers either, and its one person
# without a role (Pat) gets the missing-roles email. tiny is outside the audience. The intro goes to each account's
# decision maker (CEO, CTO, CEO): 3 emails.
SCENARIO = """\
seed: 7
duration: 40d
accounts:
  - id: acme-corp
    name: Acme Corp
    industry: Agriculture
    employees: 250
    people:
      - {email: ceo@acme.example, first_name: Ann, job_title: CEO}
      - {email: eli@acme.example, first_name: Eli, job_title: Software Engineer}
      - {email: fay@acme.example, first_name: Fay, job_title: Solutions Architect}
      - {email: cfo@acme.example, first_name: Gus, job_title: CFO, department: Finance}
      - {email: it@acme.example, first_name: Hal, job_title: IT Manager, department: IT}
  - id: beta
    name: Beta
    industry: Biotech
    employees: 300
    annual_revenue: 90000000
    people:
      - {email: cto@beta.example, first_name: Cy, job_title: CTO}
  - id: gamma
    name: Gamma
    industry: Agriculture
    employees: 220
    people:
      - {email: ceo@gamma.example, first_name: Gia, job_title: CEO}
      - {email: ops@gamma.example, first_name: Ola, job_title: Operator, department: Operations}
      - {email: pat@gamma.example, first_name: Pat, job_title: Gardener}
  - id: tiny
    name: Tiny
    industry: Retail
    employees: 5
services:
  linkedin: {status: 500}
events:
  - {type: form_fill, payload: {form: demo-request}, after: 2d, account: acme-corp}
expect:
  - acme-corp reaches handoff within 3d
  - beta does not reach handoff
  - node intro sends 3 emails
  - exactly 2 time out at wait_demo
  - at least 30% reach handoff within 5d
  - gamma reaches handoff
"""


def write(folder: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


class TestSimulation:
    """A scenario over an example journey: exact counts per node, expectations checked, the JSON and HTML written."""

    def test_known_outcomes(self, tmp_path: Path) -> None:
        """Run as a process: stdout must hold the JSON alone (the SDK's core logs there unless told otherwise)."""
        html = tmp_path / "graph.html"
        scenario = write(tmp_path, SCENARIO)
        command = ["simulate", str(JOURNEY), "--scenario", str(scenario), "--json", "--html", str(html)]
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli", *command],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "JOURNEY_HOME": str(tmp_path / "home")},
            timeout=600,
        )
        assert result.returncode == 1, result.stderr  # 'gamma reaches handoff' fails
        summary = json.loads(result.stdout)
        nodes = {node["node"]: (node["entered"], node["left"], node["emails"]) for node in summary["nodes"]}
        assert nodes == {
            "assign": (3, {"next": 3}, 0),
            "intro": (3, {"next": 3}, 3),
            "wait_demo": (3, {"on_event": 1, "on_timeout": 2}, 0),
            "size_split": (
                2,
                {"when account.annual_revenue >= 50000000": 1, "when buying_group.completeness < 50": 1},
                0,
            ),
            "linkedin": (1, {"on_error": 1}, 0),
            "fill_roles": (1, {"next": 1}, 1),
            "reminder": (2, {"next": 2}, 0),
            "wait_demo_again": (2, {"on_timeout": 2}, 0),
            "gate": (1, {"on_complete": 1}, 0),
            "handoff": (1, {"next": 1}, 0),
            "done": (3, {"(ended)": 3}, 0),
        }
        assert summary["accounts"] == {"entered": 3, "not_in_audience": ["tiny"]}
        assert summary["events"] == {"sent": 1, "unmatched": 0}
        assert [handoff["account"] for handoff in summary["handoffs"]] == ["acme-corp"]
        assert 2 * 86_400 <= summary["handoffs"][0]["after_seconds"] < 3 * 86_400
        assert summary["positions"] == {"ended at done": 3}
        assert summary["emails"] == {"total": 4, "by_node": {"fill_roles": 1, "intro": 3}, "handed_to_mailer": 4}
        assert Counter(path["accounts"] for path in summary["paths"]) == Counter({1: 3})
        assert [(item["expect"], item["passed"]) for item in summary["expectations"]] == [
            ("acme-corp reaches handoff within 3d", True),
            ("beta does not reach handoff", True),
            ("node intro sends 3 emails", True),
            ("exactly 2 time out at wait_demo", True),
            ("at least 30% reach handoff within 5d", True),
            ("gamma reaches handoff", False),
        ]
        assert summary["passed"] is False
        assert set(summary) >= {"journey", "version", "seed", "duration", "nodes", "paths", "handoffs", "seconds"}
        page = html.read_text()
        assert "Simulation of ai-seed-abm" in page and "plotly" in page and "acme-corp" in page

    def test_nothing_real_is_touched(
        self, engine: Engine, smtp: tuple[str, SmtpInbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--from-db reads the journey database (SQLite and PostgreSQL) and writes nothing to it; with an SMTP server
        configured, no message reaches it; the expectations hold, so the exit code is 0."""
        add_account(engine, "acme-corp")
        add_person(engine, "acme-corp", "ceo@acme.example", first_name="Ann", job_title="CEO")
        add_account(engine, "outsider", industry="Retail")
        url, inbox = smtp
        monkeypatch.setenv("JOURNEY_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        monkeypatch.setenv("JOURNEY_SMTP_URL", url)
        monkeypatch.setenv("JOURNEY_HOME", str(tmp_path / "home"))
        scenario = write(
            tmp_path,
            """\
            duration: 30d
            events:
              - {type: form_fill, payload: {form: demo-request}, after: 1d}
            expect:
              - acme-corp reaches gate
              - node intro sends 1 email
            """,
        )
        result = runner.invoke(app, ["simulate", str(JOURNEY), "--scenario", str(scenario), "--from-db", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["accounts"] == {"entered": 1, "not_in_audience": ["outsider"]}
        assert inbox.messages == []
        with Session(engine) as session:
            for table in (ActivityEvent, OutboxMessage, JourneyAccount):
                assert session.execute(select(func.count()).select_from(table)).scalar_one() == 0


class TestScenarioFile:
    """A broken scenario is refused with every problem located, before anything runs."""

    def test_located_errors(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            duration: 9x
            accounts:
              - id: acme-corp
                name: Acme
                employes: 5
            events:
              - {type: form_fil, after: 2d}
            """,
        )
        with pytest.raises(ScenarioError) as caught:
            load_scenario(path)
        assert [issue.render() for issue in caught.value.issues] == [
            f"{path}:1:11: duration: invalid duration '9x': expected a number and a unit s, m, h, d or w"
            " (e.g. '30m', '7d')",
            f"{path}:5:5: unknown key 'employes'",
            f"{path}:7:12: events.0.type: unknown event type 'form_fil': expected one of "
            "form_fill, email_open, email_click, web_visit, person_added, person_updated, opportunity_created, "
            "opportunity_stage_changed, account_updated, buying_group_updated, member_removed, member_added",
        ]

    def test_cli_prints_located_problems(self, tmp_path: Path) -> None:
        """Expectations and service answers are checked against the journey: unknown names are located too."""
        path = write(
            tmp_path,
            """\
            duration: 10d
            accounts:
              - {id: acme-corp, name: Acme}
            services:
              linkdin: {status: 200}
            expect:
              - acme-corp reaches handof
              - most accounts are happy
            """,
        )
        result = runner.invoke(app, ["simulate", str(JOURNEY), "--scenario", str(path)])
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"{path}:5:3: services: 'linkdin' is no external_action node or service of the journey"
            " (did you mean 'linkedin'?)",
            f"{path}:7:5: expect: unknown node 'handof' (did you mean 'handoff'?)",
            f"{path}:8:5: expect: cannot read 'most accounts are happy': {expectations.GRAMMAR}",
        ]

    def test_event_after_the_end(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            duration: 10d
            accounts: [{id: a, name: A}]
            events: [{type: web_visit, after: 11d}]
            """,
        )
        with pytest.raises(ScenarioError, match=r":3:35: the event comes after the simulation ends"):
            load_scenario(path)

    def test_event_from_unknown_account(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            duration: 10d
            accounts: [{id: acme-corp, name: A}]
            events: [{type: web_visit, after: 1d, account: acme-crop}]
            """,
        )
        with pytest.raises(ScenarioError) as caught:
            load_scenario(path)
        assert [issue.render() for issue in caught.value.issues] == [
            f"{path}:3:48: unknown account 'acme-crop' (did you mean 'acme-corp'?)"
        ]


class TestSeededEvents:
    """Seeded randomness: the same seed picks the same accounts, whatever the other rules."""

    def test_same_seed_same_events(self, tmp_path: Path) -> None:
        text = """\
            seed: 42
            duration: 30d
            accounts: [{id: a, name: A}]
            events:
              - {type: form_fill, payload: {form: demo-request}, after: 2d, probability: 0.3}
            """
        scenario = load_scenario(write(tmp_path, text))
        accounts = [f"account-{index}" for index in range(1_000)]
        first = planned_events(scenario, accounts, {})
        assert planned_events(scenario, accounts, {}) == first
        assert 250 <= len(first) <= 350
        other = load_scenario(write(tmp_path, text.replace("seed: 42", "seed: 43"), "other.yaml"))
        assert planned_events(other, accounts, {}) != first
        more = scenario.model_copy(update={"events": [*scenario.events, *scenario.events]})
        assert [item for item in planned_events(more, accounts, {}) if item.rule == 0] == first


class TestExpectations:
    """The expectation grammar: each form parsed, unknown names refused with a suggestion."""

    nodes = ("intro", "wait_demo", "handoff")

    def test_forms(self) -> None:
        parsed = [
            expectations.parse(text, self.nodes, ["acme-corp"])
            for text in (
                "acme-corp reaches handoff within 14d",
                "acme-corp does not reach handoff",
                "node intro sends at least 2 emails",
                "at most 10% time out at wait_demo",
                "exactly 3 of accounts reach handoff",
            )
        ]
        assert [(item.kind, item.node, item.comparison, item.amount, item.percent) for item in parsed] == [
            ("reaches", "handoff", "exactly", 0, False),
            ("not_reaches", "handoff", "exactly", 0, False),
            ("sends", "intro", "at least", 2, False),
            ("share_timeout", "wait_demo", "at most", 10, True),
            ("share_reach", "handoff", "exactly", 3, False),
        ]

    def test_unknown_account(self) -> None:
        with pytest.raises(expectations.ExpectationError, match="unknown account 'acme' \\(did you mean 'acme-corp'"):
            expectations.parse("acme reaches intro", self.nodes, ["acme-corp"])

    def test_account_fields(self) -> None:
        with pytest.raises(ValueError):
            AccountSpec.model_validate({"id": "a", "name": "A", "people": [{"mail": "x"}]})

    def test_compiles(self) -> None:
        assert "handoff" in compile_file(JOURNEY).nodes
