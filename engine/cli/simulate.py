"""`journey simulate FILE --scenario S.yaml`: run a journey for made-up (or copied) accounts on a simulated clock and
see where they go, with no email sent, no service called and the real database untouched."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engine.cli.common import EXIT_PROBLEMS, data_table, err, one_plan, out, run_async

if TYPE_CHECKING:
    from engine.language.plan import Plan
    from engine.simulate.expectations import Expectation
    from engine.simulate.scenario import Scenario


def simulate_command(
    file: Path = typer.Argument(..., help="the journey file"),
    scenario_file: Path = typer.Option(..., "--scenario", help="the scenario: accounts, events, duration, expect"),
    from_db: bool = typer.Option(
        False, "--from-db", help="take the accounts from a copy of the journey database (JOURNEY_DATABASE_URL)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON (for CI)"),
    html: Path | None = typer.Option(None, "--html", help="also write the graph with its counts to this HTML file"),
) -> None:
    """Simulate a journey: the real workflow on a time-skipping Temporal server, effects simulated. Exits 1 when an
    expectation fails."""
    from engine import logs
    from engine.db import database_url
    from engine.language.durations import format_duration
    from engine.simulate import html as html_page
    from engine.simulate import report, runner
    from engine.simulate.sandbox import SandboxError

    logs.configure(level=os.environ.get("JOURNEY_LOG_LEVEL", "WARNING"))
    plan = one_plan(file)
    scenario, expectations = _checked(plan, scenario_file, from_db)
    if not as_json:
        accounts = "the database's" if from_db else str(len(scenario.accounts))
        err().print(f"simulating {accounts} accounts over {format_duration(scenario.duration)}...", markup=False)
    try:
        simulation = run_async(runner.run(plan, scenario, database_url() if from_db else None))
    except SandboxError as error:
        print(f"journey: {error}", file=sys.stderr)
        raise typer.Exit(EXIT_PROBLEMS) from None
    summary = report.summary(plan, scenario, simulation, expectations)
    if html is not None:
        html.write_text(html_page.render(summary), encoding="utf-8")
    if as_json:
        print(json.dumps(summary))
    else:
        _print(summary, html)
    if not summary["passed"]:
        raise typer.Exit(EXIT_PROBLEMS)


def _checked(plan: Plan, path: Path, from_db: bool) -> tuple[Scenario, list[Expectation]]:
    """The scenario and its expectations, or every located problem printed and exit 1."""
    from engine.language.errors import Issue, did_you_mean
    from engine.simulate import expectations as grammar
    from engine.simulate.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(path, accounts_from_db=from_db)
    except ScenarioError as error:
        for issue in error.issues:
            print(issue.render(), file=sys.stderr)
        raise typer.Exit(EXIT_PROBLEMS) from None
    problems: list[Issue] = []
    accounts = None if from_db else [account.id for account in scenario.accounts]
    parsed = []
    for text, (line, col) in zip(scenario.expect, scenario.expect_at, strict=True):
        try:
            parsed.append(grammar.parse(text, plan.nodes, accounts))
        except grammar.ExpectationError as error:
            problems.append(Issue(scenario.path, line, col, f"expect: {error}"))
    answerable = {node.id for node in plan.nodes.values() if node.type == "external_action"} | set(plan.services)
    for name, (line, col) in scenario.services_at.items():
        if name not in answerable:
            hint = did_you_mean(name, answerable)
            message = f"services: '{name}' is no external_action node or service of the journey{hint}"
            problems.append(Issue(scenario.path, line, col, message))
    if problems:
        for issue in sorted(problems):
            print(issue.render(), file=sys.stderr)
        raise typer.Exit(EXIT_PROBLEMS)
    return scenario, parsed


def _print(summary: dict[str, Any], html: Path | None) -> None:
    console = out()
    accounts = summary["accounts"]
    console.print(
        f"{summary['journey']} ({summary['version']}): {accounts['entered']} accounts entered, "
        f"{len(accounts['not_in_audience'])} not in the audience; {summary['events']['sent']} events sent over "
        f"{summary['duration']} (seed {summary['seed']}), simulated in {summary['seconds']} s",
        markup=False,
        highlight=False,
    )
    nodes = data_table("node", "type", "accounts", "entries", "left by", "still there", "emails", title="Nodes")
    for node in summary["nodes"]:
        left = ", ".join(f"{branch}: {count}" for branch, count in node["left"].items())
        nodes.add_row(
            node["node"],
            node["type"],
            str(node["entered"]),
            str(node["entries"]),
            left,
            str(node["waiting"]),
            str(node["emails"]),
        )
    console.print(nodes)
    paths = data_table("accounts", "path", title="Paths")
    for path in summary["paths"]:
        paths.add_row(str(path["accounts"]), " → ".join(path["nodes"]))
    console.print(paths)
    if summary["handoffs"]:
        handoffs = data_table("account", "node", "after entry", title="Handoffs")
        for handoff in summary["handoffs"]:
            handoffs.add_row(handoff["account"], handoff["node"], handoff["after"])
        console.print(handoffs)
    else:
        console.print("no handoffs", highlight=False)
    for item in summary["expectations"]:
        mark = "ok    " if item["passed"] else "FAILED"
        console.print(f"{mark} {item['expect']} ({item['found']})", markup=False, highlight=False)
    if html is not None:
        console.print(f"graph written to {html}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
