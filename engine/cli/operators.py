"""The operator's commands: `journey status`, `journey stuck`, `journey skip|pause|resume|cancel` and
`journey setup search-attributes`. Each prints a table, or JSON with --json for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import typer

from engine.cli.common import BY, client, data_table, group, markup_free, operator_name, out, run_async

if TYPE_CHECKING:
    from engine.runtime.operators import Outcome, Parked
    from engine.workflow.contracts import OperatorRequest

setup_app = group("One-time set-up of a Temporal namespace for journeys.", no_args_is_help=True)

JOURNEY = typer.Option(None, "--journey", "-j", help="journey id")
NODE = typer.Option(None, "--node", "-n", help="node id: every running account of the journey parked there")
OLDER = typer.Option(None, "--older-than", help="only accounts at their node for longer than this (e.g. 3d)")
AS_JSON = typer.Option(False, "--json", help="print JSON")


def _duration(text: str | None) -> timedelta | None:
    from engine.language.durations import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        print(f"journey: --older-than: {error}", file=sys.stderr)
        raise typer.Exit(2) from None


def _since(row: dict[str, Any]) -> str:
    return str(row["since"] or "")[:16].replace("T", " ")


def status_command(
    account: str = typer.Argument(..., help="account id, e.g. acme-corp"),
    journey: str | None = JOURNEY,
    as_json: bool = AS_JSON,
) -> None:
    """Where the account is in each of its journeys: node, what it waits for, since when, path so far."""
    rows = run_async(_status(account, journey))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"journey: account '{account}' is in no journey" + (f" '{journey}'" if journey else ""), file=sys.stderr)
        raise typer.Exit(1)
    for row in rows:
        name = markup_free(row["account_name"] or account)
        out().print(f"[bold]{markup_free(row['journey'])}[/] · {name} · {markup_free(row['status'])}")
        out().print(f"  at [bold]{markup_free(row['node'])}[/] ({row['node_type']}) since {_since(row)} UTC")
        out().print(
            f"  waiting for: {row['waiting_for']}" + (f" — paused by {row['paused']}" if row.get("paused") else "")
        )
        if row["completeness"] is not None:
            missing = ", ".join(row.get("missing_roles") or []) or "none"
            out().print(f"  buying group: {row['completeness']:.0f}% complete, missing roles: {missing}")
        if row.get("path"):
            out().print(f"  path: {' → '.join([*row['path'], row['node']])}")
        if row.get("inbox"):
            out().print(f"  buffered events: {', '.join(row['inbox'])}")
        out().print(f"  workflow: {row['workflow_id']}")


async def _status(account: str, journey: str | None) -> list[dict[str, Any]]:
    from engine.runtime import operators

    return await operators.status(await client(), account, journey)


def stuck_command(
    journey: str | None = JOURNEY,
    node: str | None = typer.Option(None, "--node", "-n", help="node id"),
    waiting_for: str | None = typer.Option(None, "--waiting-for", help="e.g. 'event form_fill', timer, paused"),
    older_than: str | None = OLDER,
    limit: int = typer.Option(1000, "--limit", help="at most this many accounts"),
    as_json: bool = AS_JSON,
) -> None:
    """Running accounts parked at a node, longest first, found by a visibility query (printed, for the UI)."""
    from engine.runtime import operators

    query = operators.stuck_query(journey, node, waiting_for, _duration(older_than))
    found = run_async(_find(query, limit))
    if as_json:
        print(json.dumps({"query": query, "accounts": [parked.as_json() for parked in found]}, indent=2))
        return
    table = data_table(
        "account", "journey", "node", "waiting for", "since (UTC)", "complete", title=f"{len(found)} found"
    )
    for parked in found:
        row = parked.as_json()
        complete = f"{parked.completeness:.0f}%" if parked.completeness is not None else ""
        name = f"{parked.account_name} ({parked.account})" if parked.account_name else str(parked.account)
        table.add_row(name, parked.journey, parked.node, parked.waiting_for, _since(row), complete)
    out().print(table)
    out().print(f"Temporal UI query: {query}", soft_wrap=True, highlight=False)


async def _find(query: str, limit: int) -> list[Parked]:
    from engine.runtime import operators

    return await operators.find(await client(), query, limit)


def _act(
    action: str,
    account: str | None,
    journey: str | None,
    node: str | None,
    older_than: str | None,
    request: OperatorRequest,
    as_json: bool,
) -> None:
    if account is None and node is None:
        print(
            f"journey {action}: name an ACCOUNT, or --node (with --journey) for every account parked there",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    outcomes = run_async(_act_async(action, account, journey, node, _duration(older_than), request))
    if as_json:
        print(json.dumps([outcome.as_json() for outcome in outcomes], indent=2))
    else:
        for outcome in outcomes:
            verdict = "ok" if outcome.ok else "refused"
            out().print(f"{verdict}  {outcome.workflow_id}: {outcome.message}", highlight=False, markup=False)
        if not outcomes:
            out().print("no running account matched")
    if not outcomes or not all(outcome.ok for outcome in outcomes):
        raise typer.Exit(1)


async def _act_async(
    action: str,
    account: str | None,
    journey: str | None,
    node: str | None,
    older_than: timedelta | None,
    request: OperatorRequest,
) -> list[Outcome]:
    from engine.runtime import operators, temporal

    temporal_client = await client()
    if account is not None and journey is not None and node is None:
        targets = [temporal.workflow_id(journey, account)]
    else:
        query = operators.stuck_query(journey, node, None, older_than, account)
        targets = [parked.workflow_id for parked in await operators.find(temporal_client, query)]
    if account is not None and journey is None and len(targets) > 1:
        print(
            f"journey {action}: '{account}' is in {len(targets)} journeys ({', '.join(targets)}); "
            "pick one with --journey",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    return await operators.act(temporal_client, action, targets, request)


def _request(by: str | None, reason: str, to: str | None = None, timeout: bool = False) -> OperatorRequest:
    """Who acts (--by, $JOURNEY_OPERATOR or the login name) and why, as the workflow's update takes it."""
    from engine.workflow.contracts import OperatorRequest

    return OperatorRequest(by=operator_name(by), reason=reason, to=to, timeout=timeout)


def skip_command(
    account: str | None = typer.Argument(None, help="account id (or use --node for every account there)"),
    journey: str | None = JOURNEY,
    node: str | None = NODE,
    older_than: str | None = OLDER,
    to: str | None = typer.Option(None, "--to", help="the node to move the account to"),
    timeout: bool = typer.Option(False, "--timeout", help="take the node's timeout path now"),
    reason: str = typer.Option("", "--reason", "-r", help="why (kept in the event log)"),
    by: str | None = BY,
    as_json: bool = AS_JSON,
) -> None:
    """Move accounts on now: to a named node (--to) or along their node's timeout path (--timeout)."""
    _act(
        "skip",
        account,
        journey,
        node,
        older_than,
        _request(by, reason, to=to, timeout=timeout),
        as_json,
    )


def _hold_command(action: str, doc: str) -> Callable[..., None]:
    """`journey pause` and `journey resume`: the same targets and options, opposite updates."""

    def command(
        account: str | None = typer.Argument(None, help="account id (or use --node for every account there)"),
        journey: str | None = JOURNEY,
        node: str | None = NODE,
        older_than: str | None = OLDER,
        reason: str = typer.Option("", "--reason", "-r", help="why (kept in the event log)"),
        by: str | None = BY,
        as_json: bool = AS_JSON,
    ) -> None:
        _act(action, account, journey, node, older_than, _request(by, reason), as_json)

    command.__doc__ = doc
    return command


pause_command = _hold_command(
    "pause", "Hold accounts where they are: nothing is sent and they leave no node until resumed."
)
resume_command = _hold_command("resume", "Let paused accounts move on.")


def cancel_command(
    account: str | None = typer.Argument(None, help="account id (or use --node for every account there)"),
    journey: str | None = JOURNEY,
    node: str | None = NODE,
    older_than: str | None = OLDER,
    reason: str = typer.Option(..., "--reason", "-r", help="why (required; kept in the event log)"),
    by: str | None = BY,
    as_json: bool = AS_JSON,
) -> None:
    """End accounts' journeys now, with a reason."""
    _act("cancel", account, journey, node, older_than, _request(by, reason), as_json)


@setup_app.command("search-attributes")
def setup_search_attributes(
    print_only: bool = typer.Option(False, "--print", help="print the `temporal operator` commands instead"),
) -> None:
    """Define the journey search attributes in the namespace (TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE)."""
    from engine.workflow import visibility

    if print_only:
        print("\n".join(visibility.create_commands(os.environ.get("TEMPORAL_NAMESPACE", "default"))))
        return
    added = run_async(_register())
    print(f"defined: {', '.join(added)}" if added else "all journey search attributes were already defined")


async def _register() -> list[str]:
    from engine.runtime import search_attributes

    return await search_attributes.register(await client())


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)
    app.command("stuck")(stuck_command)
    app.command("skip")(skip_command)
    app.command("pause")(pause_command)
    app.command("resume")(resume_command)
    app.command("cancel")(cancel_command)
    app.add_typer(setup_app, name="setup")
