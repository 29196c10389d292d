"""`journey diff FILE`: what publishing FILE would change in the live journey, and how many running accounts wait
at the nodes it removes or changes. `journey publish` prints the same summary before it starts anyone.

`--json` prints one object (a stable shape, for CI):
  journey, old_version (null: no live version), new_version, new_journey, unchanged: as named;
  added / removed: [{node, type}];
  changed: [{node, type, fields: [{field, old, new}], templates: [{old_path, new_path, lines_added, lines_removed,
    diff: [unified diff lines], truncated}], edges: [{kind, node, label, old_target, new_target}]}];
  edges: every changed node's edges, in one list;
  settings: [{field, old, new}] (name, audience.*, send_window, limits.*, ...);
  impact: null, or {complete, running, running_by_version: {version: n}, nodes: [{node, total, by_version}]}
    ("older" stands for versions past the 20 newest); impact_error: why impact is null, or null;
  pinned: true (running accounts stay on the version they started on).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engine.cli.common import database, one_plan, out, run_async

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text
    from sqlalchemy.engine import Engine
    from temporalio.client import Client

    from engine.language.plan import Plan
    from engine.runtime.diff_impact import Impact
    from engine.runtime.plan_diff import FieldChange, NodeChange, PlanDiff

SHOWN_VALUE = 80  # characters of a changed value in the text summary (--json has them whole)
PINNED = (
    "Accounts already in the journey stay on the version they started on: a republish does not move them "
    "(`journey publish FILE --migrate` moves those waiting at a step the new version has)."
)


def diff_command(
    file: Path = typer.Argument(..., help="the journey file"),
    as_json: bool = typer.Option(False, "--json", help="print the changes as one JSON object, for CI"),
) -> None:
    """Compare FILE with the live (latest published) version of its journey, and count the accounts it touches."""
    plan = one_plan(file)
    changes = run_async(_changes(plan))
    if as_json:
        print(json.dumps(changes[0]))
    else:
        show(*changes[1:])


async def _changes(plan: Plan) -> tuple[dict[str, Any], PlanDiff, Impact | None, str | None]:
    from engine.runtime import temporal

    with database() as engine:
        found, _, _ = await changes_with(None, engine, plan)
        if found.is_new:
            return changes_json(found, None, None), found, None, None
        try:
            temporal_client = await temporal.connect(engine=engine)
        except RuntimeError as error:
            unreached = f"cannot reach Temporal ({error}): start it with `journey dev`, or set TEMPORAL_ADDRESS"
            return changes_json(found, None, unreached), found, None, unreached
        found, impact, problem = await changes_with(temporal_client, engine, plan)
        return changes_json(found, impact, problem), found, impact, problem


async def changes_with(
    temporal_client: Client | None, engine: Engine, plan: Plan
) -> tuple[PlanDiff, Impact | None, str | None]:
    """The changes from the live version to `plan`, with the accounts they touch (None and why, when visibility
    cannot be asked; None without a client). Call it before the new version is stored."""
    import asyncio

    from temporalio.service import RPCError

    from engine.runtime import diff_impact, plan_diff, publish

    live = await asyncio.to_thread(publish.latest_version, engine, plan.journey)
    found = plan_diff.diff(live, plan)
    if live is None or temporal_client is None:
        return found, None, None
    try:
        impact = await diff_impact.impact(temporal_client, engine, plan.journey, found.affected_nodes())
    except RPCError as error:
        return found, None, f"Temporal visibility did not answer ({error.message})"
    return found, impact, None


def changes_json(found: PlanDiff, impact: Impact | None, problem: str | None) -> dict[str, Any]:
    return found.as_json() | {
        "impact": impact.as_json() if impact is not None else None,
        "impact_error": problem,
        "pinned": True,
    }


def show(found: PlanDiff, impact: Impact | None, problem: str | None) -> None:
    for part in summary(found, impact, problem):
        out().print(part)


def summary(found: PlanDiff, impact: Impact | None, problem: str | None) -> list[RenderableType]:
    """The changes for a marketer: a headline, then each node, then the journey's settings."""
    from rich.text import Text

    if found.is_new:
        parts: list[RenderableType] = [
            Text.assemble(
                "journey ", (found.journey, "bold"), f" has no live version: all {len(found.added)} nodes are new"
            )
        ]
        parts.extend(Text.assemble("  + ", (node.node, "green"), f" ({node.type})") for node in found.added)
        return parts
    head = Text.assemble(
        "journey ", (found.journey, "bold"), f": live version {found.old_version} -> new version {found.new_version}"
    )
    if found.unchanged:
        return [head, Text("no changes")]
    waiting = {node.node: node for node in impact.nodes} if impact is not None else {}
    parts = [head, Text(_headline(found, impact))]
    if found.removed:
        parts.append(Text("removed", style="bold"))
    for removed in found.removed:
        parts.append(
            Text.assemble("  - ", (removed.node, "red"), f" ({removed.type})", _waiting(waiting, removed.node))
        )
    if found.added:
        parts.append(Text("added", style="bold"))
    parts.extend(Text.assemble("  + ", (node.node, "green"), f" ({node.type})") for node in found.added)
    if found.changed:
        parts.append(Text("changed", style="bold"))
    for node in found.changed:
        parts.extend(_node_lines(node, _waiting(waiting, node.node)))
    if found.settings:
        parts.append(Text("journey settings", style="bold"))
        parts.extend(_field_line(change, "    ") for change in found.settings)
    parts.extend(_impact_lines(impact, problem))
    return parts


def _headline(found: PlanDiff, impact: Impact | None) -> str:
    """3 nodes changed, 1 removed (12 accounts are waiting there now), 1 added; 2 branches re-pointed; ..."""
    counts = {node.node: node.total for node in impact.nodes} if impact is not None else {}
    said = []
    for nodes, verb in ((found.changed, "changed"), (found.removed, "removed")):
        if nodes:
            waiting = sum(counts.get(node.node, 0) for node in nodes)
            there = f" ({_accounts(waiting)} waiting there now)" if impact is not None else ""
            said.append(f"{_nodes(len(nodes))} {verb}{there}")
    if found.added:
        said.append(f"{_nodes(len(found.added))} added")
    kinds: dict[str, int] = {}
    for edge in found.edges:
        kinds[edge.kind] = kinds.get(edge.kind, 0) + 1
    branches = [f"{number} branch{'es' if number != 1 else ''} {kind}" for kind, number in sorted(kinds.items())]
    settings = [f"{len(found.settings)} journey setting{'s' if len(found.settings) != 1 else ''} changed"]
    return "; ".join(
        filter(None, [", ".join(said), ", ".join(branches), ", ".join(settings if found.settings else [])])
    )


def _nodes(number: int) -> str:
    return f"{number} node{'s' if number != 1 else ''}"


def _accounts(number: int) -> str:
    return f"{number} account{' is' if number == 1 else 's are'}"


def _waiting(waiting: dict[str, Any], node: str) -> str:
    found = waiting.get(node)
    if found is None or not found.total:
        return ""
    versions = ", ".join(f"{number} on {version}" for version, number in found.by_version.items())
    return f": {_accounts(found.total)} waiting here now ({versions})"


def _node_lines(node: NodeChange, waiting: str) -> list[Text]:
    from rich.text import Text

    lines = [Text.assemble("  ~ ", (node.node, "yellow"), f" ({node.type})", waiting)]
    lines.extend(_field_line(change, "      ") for change in node.fields)
    for template in node.templates:
        name = template.new_path or template.old_path or ""
        if template.old_path and template.new_path and template.old_path != template.new_path:
            name = f"{template.old_path} -> {template.new_path}"
        lines.append(
            Text(
                f"      template {name}: {template.lines_added} line{'s' if template.lines_added != 1 else ''} added, "
                f"{template.lines_removed} removed"
            )
        )
        for line in template.diff:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            lines.append(Text(f"        {line}", style=style, no_wrap=True, overflow="ellipsis"))
        if template.truncated:
            lines.append(Text("        ... (the rest of the diff is left out)", style="dim"))
    for edge in node.edges:
        if edge.kind == "re-pointed":
            text = f"      branch '{edge.label}' now goes to {edge.new_target} instead of {edge.old_target}"
        elif edge.kind == "added":
            text = f"      branch '{edge.label}' added, going to {edge.new_target}"
        else:
            text = f"      branch '{edge.label}' removed (it went to {edge.old_target})"
        lines.append(Text(text))
    return lines


def _field_line(change: FieldChange, indent: str) -> Text:
    from rich.text import Text

    return Text.assemble(
        f"{indent}{change.field}: ", (_shown(change.old), "red"), " -> ", (_shown(change.new), "green")
    )


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 3] + "..."


def _impact_lines(impact: Impact | None, problem: str | None) -> list[Text]:
    from rich.text import Text

    lines = []
    if problem is not None:
        lines.append(Text(f"accounts waiting: unknown, {problem}", style="yellow"))
    elif impact is not None:
        versions = ", ".join(f"{number} on {version}" for version, number in impact.running_by_version.items())
        lines.append(Text(f"{_accounts(impact.running)} in the journey now" + (f" ({versions})" if versions else "")))
        if not impact.complete:
            lines.append(Text("(some nodes were not counted: too many to ask Temporal about at once)", style="yellow"))
    lines.append(Text(PINNED))
    return lines


def register(app: typer.Typer) -> None:
    app.command("diff")(diff_command)
