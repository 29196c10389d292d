"""`journey publish FILE --migrate [--map OLD=NEW ...] [--dry-run]`: after publishing, move the accounts running
older versions to the new one where they wait (engine/runtime/migrate.py); the dry run only prints the plan."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from engine.cli.common import client, database, err, markup_free, operator_name, out, run_async

if TYPE_CHECKING:
    from engine.language.plan import Plan
    from engine.runtime.migrate import Moves


def node_map(pairs: list[str], plan: Plan) -> dict[str, str]:
    """The --map pairs, checked against the new version; a bad pair is a usage error (exit 2) saying what to fix."""
    from engine.runtime import migrate

    try:
        return migrate.parse_map(pairs, plan)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--map") from None


def dry_run(plan: Plan, mapping: dict[str, str], as_json: bool) -> None:
    """Print where each older version's running accounts would go; publish nothing, move nobody."""
    moves = run_async(_plan(plan, mapping))
    _print(moves, as_json, dry=True)


def migrate_running(plan: Plan, mapping: dict[str, str], by: str | None, reason: str, as_json: bool) -> dict[str, Any]:
    """Move the accounts that can move; print the outcome (unless JSON is wanted: then it is returned)."""
    moves = run_async(
        _move(plan, mapping, operator_name(by), reason or f"moved to version {plan.version}", quiet=as_json)
    )
    if not as_json:
        _print(moves, as_json=False, dry=False)
    return moves.as_json()


async def _plan(plan: Plan, mapping: dict[str, str]) -> Moves:
    from engine.runtime import migrate

    with database() as engine:
        return await migrate.plan_moves(await client(engine), engine, plan, mapping)


async def _move(plan: Plan, mapping: dict[str, str], by: str, reason: str, quiet: bool) -> Moves:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.runtime import migrate

    with database() as engine:
        temporal_client = await client(engine)
        moves = await migrate.plan_moves(temporal_client, engine, plan, mapping)
        total = sum(len(group.accounts) for group in moves.groups if group.target is not None)
        columns = (TextColumn("moving {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err(), disable=quiet or not total) as progress:
            task = progress.add_task(plan.journey, total=total)
            return await migrate.move(
                temporal_client, moves, plan, mapping, by, reason, progress=lambda done: progress.advance(task, done)
            )


def _print(moves: Moves, as_json: bool, dry: bool) -> None:
    from engine.runtime import migrate

    if as_json:
        print(json.dumps({"dry_run": dry, **moves.as_json()}))
        return
    for line in migrate.summary_lines(moves):
        out().print(markup_free(line))
    if dry:
        out().print("dry run: nothing published, nobody moved")
        return
    out().print(f"moved {len(moves.moved)} account(s) to version {moves.to_version}")
    for account, why in sorted(moves.not_moved.items()):
        out().print(f"  not moved {markup_free(account)}: {markup_free(why)}")
