"""`journey validate | graph | show | schema`: check and draw journey files. Nothing here touches Temporal or
the database, and these commands load only the journey language."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer

from engine.cli.common import EXIT_PROBLEMS, data_table, one_plan, out, validated


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"


class SchemaKind(StrEnum):
    journey = "journey"
    buying_groups = "buying-groups"
    services = "services"
    limits = "limits"


def validate(
    paths: list[Path] = typer.Argument(None, help="journey files or folders; default: journeys/"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print problems only"),
) -> None:
    """Check journey files and report every problem at once as path:line:col: node 'id': message."""
    result = validated(paths or [Path("journeys")])
    for issue in result.issues:
        print(issue.render(), file=sys.stderr)
    if result.issues:
        count = len(result.issues)
        print(f"{count} problem{'s' if count != 1 else ''} in {len(result.checked)} journey file(s)", file=sys.stderr)
        raise typer.Exit(EXIT_PROBLEMS)
    if not quiet:
        for plan in result.plans:
            print(f"ok  {plan.source}  {plan.journey}  version {plan.version}  {len(plan.nodes)} nodes")


def graph(
    file: Path = typer.Argument(..., help="a journey file"),
    format: GraphFormat = typer.Option(GraphFormat.mermaid, "--format", "-f", help="mermaid or dot"),
) -> None:
    """Print the journey as a graph: nodes with their type and settings, edges with their branch."""
    from engine.language import render

    plan = one_plan(file)
    print(render.mermaid(plan) if format is GraphFormat.mermaid else render.dot(plan), end="")


def schema(
    kind: SchemaKind = typer.Argument(SchemaKind.journey, help="journey, buying-groups, services or limits"),
) -> None:
    """Print the JSON Schema of a file kind, for editor autocompletion (yaml-language-server)."""
    from pydantic import BaseModel

    from engine.language.limits import LimitsFile
    from engine.language.model import BuyingGroupsFile, JourneyFile, ServicesFile

    models: dict[SchemaKind, type[BaseModel]] = {
        SchemaKind.journey: JourneyFile,
        SchemaKind.buying_groups: BuyingGroupsFile,
        SchemaKind.services: ServicesFile,
        SchemaKind.limits: LimitsFile,
    }
    document = models[kind].model_json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    print(json.dumps(document, indent=2))


def show(file: Path = typer.Argument(..., help="a journey file")) -> None:
    """Show a journey's nodes as a table: what each does and where each branch goes."""
    from engine.language import render

    plan = one_plan(file)
    table = data_table("node", "type", "does", "goes to", title=f"{plan.name} ({plan.journey}, version {plan.version})")
    for node_id, node in plan.nodes.items():
        branches = ", ".join(f"{edge.label} → {edge.target}" for edge in plan.edges[node_id])
        table.add_row(node_id, node.type, render.node_summary(node), branches)
    out().print(table)


def register(app: typer.Typer) -> None:
    for command in (validate, graph, schema, show):
        app.command()(command)
