"""`journey list | close | stop`: every journey's state (draft, live, closed, stopped, finished) and the two ways a
marketer ends one: close (nobody new enters, accounts in it finish) and stop (every account in it is cancelled)."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli.common import (
    BY,
    EXIT_USAGE,
    client,
    data_table,
    database,
    err,
    markup_free,
    operator_name,
    out,
    run_async,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from temporalio.client import Client

    from engine.runtime.journey_listing import JourneyListing
    from engine.runtime.journey_stop import StopSummary


def list_command(
    journeys: Path = typer.Option(Path("journeys"), "--journeys", help="the folder of journey files (drafts)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Every journey of the folder and the database: state, live version, accounts running / finished /
    cancelled, first published and last change."""
    rows = run_async(_list(journeys))
    if as_json:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return
    table = data_table(
        "journey",
        "state",
        "version",
        "running",
        "finished",
        "cancelled",
        "first published",
        "last change",
        title=f"{len(rows)} journeys",
    )
    table.columns[0].no_wrap = True  # ids are what one types next (`journey close ID`): never cut
    for row in rows:
        running = "?" if row.running is None else str(row.running)
        if row.state == "draft":
            table.add_row(row.journey, row.state, "", "", "", "", "", "")
            continue
        version = row.version or ""
        if row.version and row.file_version and row.file_version != row.version:
            version += f" (file: {row.file_version})"
        table.add_row(
            row.journey,
            _state(row),
            version,
            running,
            str(row.finished),
            str(row.cancelled),
            _when(row.first_published),
            _change(row),
        )
    out().print(table)


async def _list(journeys: Path) -> list[JourneyListing]:
    from engine.db import utcnow
    from engine.language import catalog
    from engine.runtime import journey_listing, temporal

    drafts = catalog.validate([journeys]).plans if journeys.is_dir() else []
    with database() as engine:
        try:
            temporal_client: Client | None = await temporal.connect(engine=engine)
        except RuntimeError:
            address = os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")
            err().print(
                f"journey list: cannot reach Temporal at {markup_free(address)}: running counts unknown (?); "
                "start it with `journey dev`, or set TEMPORAL_ADDRESS",
                highlight=False,
            )
            temporal_client = None
        rows = await journey_listing.listing(engine, temporal_client, drafts, utcnow())
    if temporal_client is not None and any(row.running is None for row in rows):
        err().print(
            "journey list: Temporal could not count running accounts (?): define the journey search attributes "
            "with `journey setup search-attributes`",
            highlight=False,
        )
    return rows


def _state(row: JourneyListing) -> str:
    from engine.db import utcnow

    if row.state == "live" and row.schedule_start is not None and utcnow() < row.schedule_start:
        return f"live, opens {_when(row.schedule_start)}"
    if row.state == "live" and row.schedule_end is not None:
        return f"live, closes {_when(row.schedule_end)}"
    return row.state


def _change(row: JourneyListing) -> str:
    if row.changed_at is None:
        return ""
    text = f"{_when(row.changed_at)} {row.changed_by}"
    return text + (f": {row.reason}" if row.reason else "")


def _when(moment: datetime | None) -> str:
    from datetime import UTC

    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def close_command(
    journey: str = typer.Argument(..., help="journey id, e.g. ai-seed-abm"),
    reason: str | None = typer.Option(None, "--reason", "-r", help="why (kept in the event log)"),
    by: str | None = BY,
) -> None:
    """Close a live journey: no new accounts from now on (publish, refresh, add_to_journey); accounts in it finish."""
    from engine.db import utcnow
    from engine.runtime import journey_state

    with database() as engine:
        try:
            changed = journey_state.close(engine, journey, operator_name(by), reason, utcnow())
        except journey_state.JourneyStateError as error:
            print(f"journey close: {error}", file=sys.stderr)
            raise typer.Exit(1) from None
    if changed:
        out().print(f"closed [bold]{markup_free(journey)}[/]: nobody new enters; accounts in it finish their journey")
    else:
        out().print(f"{markup_free(journey)} was closed already")


def stop_command(
    journey: str = typer.Argument(..., help="journey id, e.g. ai-seed-abm"),
    reason: str = typer.Option(..., "--reason", "-r", help="why (required; kept with every cancelled account)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    by: str | None = BY,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Stop a journey: nobody new enters and every account in it is cancelled now, with the reason."""
    if not reason.strip():
        print("journey stop: say why with --reason: it is kept with every cancelled account", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE)
    if not yes:
        if not sys.stdin.isatty():
            print(
                f"journey stop: this cancels every running account of '{journey}' and cannot be undone; "
                "confirm with --yes (there is no terminal to ask in)",
                file=sys.stderr,
            )
            raise typer.Exit(EXIT_USAGE)
        typer.confirm(f"Stop '{journey}' and cancel every account in it?", abort=True)
    summary = run_async(_stop(journey, operator_name(by), reason, quiet=as_json))
    if as_json:
        print(json.dumps(summary.__dict__, indent=2))
    else:
        state = "stopped" if summary.newly_stopped else "was stopped already"
        out().print(
            f"{markup_free(journey)} {state}: {len(summary.cancelled)} accounts cancelled, "
            f"{len(summary.ended_meanwhile)} ended meanwhile, {len(summary.refused)} refused"
        )
        for workflow_id, why in sorted(summary.refused.items()):
            out().print(f"refused  {workflow_id}: {why}", markup=False, highlight=False)
    if summary.refused:
        print("journey stop: run the same command again to cancel the accounts that refused", file=sys.stderr)
        raise typer.Exit(1)


async def _stop(journey: str, by: str, reason: str, quiet: bool) -> StopSummary:
    from engine.db import utcnow
    from engine.runtime import journey_state

    with database() as engine:
        if await _unknown(engine, journey):
            print(f"journey stop: {journey_state.unknown_message(engine, journey)}", file=sys.stderr)
            raise typer.Exit(1)
        temporal_client = await client(engine)
        return await _stop_with(temporal_client, engine, journey, by, reason, quiet, utcnow())


async def _unknown(engine: Engine, journey: str) -> bool:
    import asyncio

    from engine.db import utcnow
    from engine.runtime import journey_state

    return await asyncio.to_thread(journey_state.lifecycle, engine, journey, utcnow()) is None


async def _stop_with(
    temporal_client: Client, engine: Engine, journey: str, by: str, reason: str, quiet: bool, now: datetime
) -> StopSummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from temporalio.service import RPCError

    from engine.runtime import journey_stop

    columns = (TextColumn("cancelling {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err(), disable=quiet) as progress:
        task = progress.add_task(journey, total=None)
        try:
            return await journey_stop.stop(
                temporal_client,
                engine,
                journey,
                by,
                reason,
                now,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except RPCError as error:
            print(
                f"journey stop: '{journey}' is stopped (nobody new enters), but Temporal refused to find or cancel its "
                f"accounts ({error}): check `journey setup search-attributes`, then run the same command again",
                file=sys.stderr,
            )
            raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("list")(list_command)
    app.command("close")(close_command)
    app.command("stop")(stop_command)
