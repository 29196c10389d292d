"""The `journey` command: validate, draw and inspect journeys; set up the database and demo data."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from engine import catalog, cli_operators, cli_runtime, cli_service, render, runtime
from engine.analytics import cli as analytics_cli
from engine.model import BuyingGroupsFile, JourneyFile, ServicesFile

app = typer.Typer(
    help="B2B account journeys on Temporal: validate, draw and run journey files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The journey database (SQLite under .journey/ or JOURNEY_DATABASE_URL).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(analytics_cli.app, name="analytics")
out = Console()

EXIT_PROBLEMS = 1
EXIT_USAGE = 2


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"


class SchemaKind(StrEnum):
    journey = "journey"
    buying_groups = "buying-groups"
    services = "services"


SCHEMA_MODELS: dict[SchemaKind, type[BaseModel]] = {
    SchemaKind.journey: JourneyFile,
    SchemaKind.buying_groups: BuyingGroupsFile,
    SchemaKind.services: ServicesFile,
}


def _validate(paths: list[Path]) -> catalog.Catalog:
    try:
        return catalog.validate(paths)
    except FileNotFoundError as error:
        print(f"journey: no such file or folder: {error.args[0]}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def validate(
    paths: list[Path] = typer.Argument(None, help="journey files or folders; default: journeys/"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print problems only"),
) -> None:
    """Check journey files and report every problem at once as path:line:col: node 'id': message."""
    result = _validate(paths or [Path("journeys")])
    for issue in result.issues:
        print(issue.render(), file=sys.stderr)
    if result.issues:
        count = len(result.issues)
        print(f"{count} problem{'s' if count != 1 else ''} in {len(result.checked)} journey file(s)", file=sys.stderr)
        raise typer.Exit(EXIT_PROBLEMS)
    if not quiet:
        for plan in result.plans:
            print(f"ok  {plan.source}  {plan.journey}  version {plan.version}  {len(plan.nodes)} nodes")


@app.command()
def graph(
    file: Path = typer.Argument(..., help="a journey file"),
    format: GraphFormat = typer.Option(GraphFormat.mermaid, "--format", "-f", help="mermaid or dot"),
) -> None:
    """Print the journey as a graph: nodes with their type and settings, edges with their branch."""
    result = _validate([file])
    if result.issues or not result.plans:
        for issue in result.issues:
            print(issue.render(), file=sys.stderr)
        raise typer.Exit(EXIT_PROBLEMS)
    plan = result.plans[0]
    print(render.mermaid(plan) if format is GraphFormat.mermaid else render.dot(plan), end="")


@app.command()
def schema(kind: SchemaKind = typer.Argument(SchemaKind.journey, help="journey, buying-groups or services")) -> None:
    """Print the JSON Schema of a file kind, for editor autocompletion (yaml-language-server)."""
    model = SCHEMA_MODELS[kind]
    document = model.model_json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    print(json.dumps(document, indent=2))


@app.command()
def show(file: Path = typer.Argument(..., help="a journey file")) -> None:
    """Show a journey's nodes as a table: what each does and where each branch goes."""
    result = _validate([file])
    if result.issues or not result.plans:
        for issue in result.issues:
            print(issue.render(), file=sys.stderr)
        raise typer.Exit(EXIT_PROBLEMS)
    plan = result.plans[0]
    table = Table(title=f"{plan.name} ({plan.journey}, version {plan.version})")
    for column in ("node", "type", "does", "goes to"):
        table.add_column(column)
    for node_id, node in plan.nodes.items():
        branches = ", ".join(f"{edge.label} → {edge.target}" for edge in plan.edges[node_id])
        table.add_row(node_id, node.type, render.node_summary(node), branches)
    out.print(table)


@db_app.command("init")
def db_init() -> None:
    """Create the tables that are missing (safe to run again)."""
    from engine.db import database_url, init_db, make_engine

    init_db(make_engine())
    print(f"database ready: {_safe_url(database_url())}")


@app.command("demo-data")
def demo_data() -> None:
    """Load the deterministic demo data set (accounts, people, solution interests); safe to run again."""
    from engine.db import database_url, init_db, make_engine
    from engine.demo import load_demo_data

    engine = make_engine()
    init_db(engine)
    counts = load_demo_data(engine)
    summary = ", ".join(f"{count} {name}" for name, count in counts.items())
    print(f"demo data loaded into {_safe_url(database_url())}: {summary}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


app.command("publish")(cli_runtime.publish_command)
app.command("event")(cli_runtime.event_command)
app.command("dev")(cli_runtime.dev_command)
app.command("buying-group")(cli_runtime.buying_group_command)
app.command("handoffs")(cli_runtime.handoffs_command)
app.command("scores")(cli_runtime.scores_command)
app.command("assign-role")(cli_runtime.assign_role_command)
app.command("move-stage")(cli_runtime.move_stage_command)
for name in ("status", "stuck", "skip", "pause", "resume", "cancel"):
    app.command(name)(getattr(cli_operators, f"{name}_command"))
app.add_typer(cli_operators.setup_app, name="setup")
cli_service.register(app)


def main() -> None:
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not runtime.connected:
            raise
        # The Temporal client's Rust threads can abort the interpreter's teardown (SIGABRT, sdk-python
        # issue #300): once everything is printed, a command that talked to Temporal leaves at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
