"""`journey publish | event | dev`: start journeys for their audience, send them events, run everything locally."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engine.cli.common import BY, client, database, err, markup_free, one_plan, operator_name, out, run_async

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from temporalio.client import Client

    from engine.language.plan import Plan


class EventType(StrEnum):
    form_fill = "form-fill"
    email_open = "email-open"
    email_click = "email-click"
    web_visit = "web-visit"
    person_added = "person-added"
    person_updated = "person-updated"
    opportunity_created = "opportunity-created"
    opportunity_stage_changed = "opportunity-stage-changed"


def publish_command(
    file: Path = typer.Argument(..., help="the journey file"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    migrate: bool = typer.Option(False, "--migrate", help="then move accounts running older versions to this one"),
    maps: list[str] = typer.Option([], "--map", help="with --migrate: OLD_NODE=NEW_NODE for a renamed wait"),
    dry_run: bool = typer.Option(False, "--dry-run", help="with --migrate: print who would move where, do nothing"),
    by: str | None = BY,
    reason: str = typer.Option("", "--reason", help="with --migrate: why (kept in the event log)"),
) -> None:
    """Compile, store the version, and start the journey for every account of its audience (idempotent)."""
    from engine.cli import migrate as migration
    from engine.runtime import temporal

    plan = one_plan(file)
    if (maps or dry_run) and not migrate:
        raise typer.BadParameter("--map and --dry-run go with --migrate", param_hint="--migrate")
    mapping = migration.node_map(maps, plan)
    if dry_run:
        migration.dry_run(plan, mapping, as_json)
        return
    summary = run_async(_publish(plan, operator_name(by), quiet=as_json))
    if as_json:
        if migrate:
            summary["migration"] = migration.migrate_running(plan, mapping, by, reason, as_json=True)
        print(json.dumps(summary))
        return
    out().print(
        f"published [bold]{markup_free(plan.journey)}[/] version {plan.version}: {summary['in_audience']} accounts in "
        f"the audience, {len(summary['started'])} started, {len(summary['already_running'])} already "
        f"running, {len(summary['excluded_by_reentry'])} excluded by re-entry ({plan.audience.reentry})"
    )
    if summary["not_open"]:
        out().print(f"nobody started: {markup_free(summary['not_open'])}")
    if plan.audience.refresh:
        out().print(
            f"audience refresh: launcher {temporal.launcher_id(plan.journey)} on '{plan.audience.refresh}' (UTC)"
        )
    if migrate:
        migration.migrate_running(plan, mapping, by, reason, as_json=False)


async def _publish(plan: Plan, by: str, quiet: bool) -> dict[str, Any]:
    with database() as engine:
        temporal_client = await client(engine)
        return await _publish_with(temporal_client, engine, plan, by, quiet)


async def _publish_with(temporal_client: Client, engine: Engine, plan: Plan, by: str, quiet: bool) -> dict[str, Any]:
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.cli import diff
    from engine.runtime import journey_state, publish, search_attributes

    if missing := await search_attributes.missing(temporal_client):
        # Journeys would start and then fail every workflow task on their first search-attribute write.
        print(
            f"journey: namespace '{temporal_client.namespace}' lacks the search attributes {', '.join(missing)}: "
            "run `journey setup search-attributes` (or `journey setup search-attributes --print`) first",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    # What this version changes, printed before anyone starts (read before the new version is stored).
    changes, impact, problem = await diff.changes_with(temporal_client, engine, plan)
    if not quiet:
        diff.show(changes, impact, problem)
    to_start, _ = await asyncio.to_thread(publish.audience, engine, plan)
    columns = (TextColumn("starting {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err(), disable=quiet) as progress:
        task = progress.add_task(plan.journey, total=len(to_start))
        try:
            summary = await publish.publish(
                temporal_client, engine, plan, progress=lambda done: progress.advance(task, done), by=by
            )
        except journey_state.JourneyStateError as error:
            print(f"journey publish: {error}", file=sys.stderr)
            raise typer.Exit(1) from None
    await publish.start_launcher(temporal_client, plan)
    return {
        "journey": summary.journey,
        "version": summary.version,
        "in_audience": summary.in_audience,
        "started": summary.started,
        "already_running": summary.already_running,
        "excluded_by_reentry": summary.excluded_by_reentry,
        "not_open": summary.not_open,
        "changes": diff.changes_json(changes, impact, problem),
    }


def dev_command(
    journeys: Path = typer.Option(Path("journeys"), "--journeys", help="the folder of journeys to publish"),
    port: int = typer.Option(7233, "--port", help="Temporal's gRPC port"),
    ui_port: int = typer.Option(8233, "--ui-port", help="the Temporal UI's port"),
    services_port: int = typer.Option(8790, "--services-port", help="the stand-in services' port (services.yaml)"),
    http_port: int = typer.Option(8000, "--http-port", help="the events service's port (journey serve)"),
) -> None:
    """Run everything locally: Temporal dev server (UI on :8233), worker, demo data, example journeys."""
    from engine import logs
    from engine.dev import stack

    logs.configure(level="WARNING")
    home = Path(os.environ.get("JOURNEY_HOME", ".journey"))
    try:
        run_async(stack.run(home, journeys, port, ui_port, services_port, http_port))
    except RuntimeError as error:
        print(f"journey dev: {error}", file=sys.stderr)
        raise typer.Exit(1) from None


def _fields(values: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for value in values:
        name, equals, text = value.partition("=")
        if not equals or not name:
            raise typer.BadParameter(f"'{value}' is not name=value", param_hint="--field")
        fields[name] = text
    return fields


def _moment(text: str | None) -> datetime | None:
    """An ISO 8601 time with its offset kept (10:00+02:00 is 08:00 UTC); without a zone, UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not an ISO 8601 time", param_hint="--occurred-at") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def event_command(
    type_: EventType = typer.Argument(..., metavar="TYPE", help="form-fill, email-open, web-visit, ..."),
    account: str | None = typer.Option(None, "--account", help="the account id (default: by the email's domain)"),
    person: str | None = typer.Option(None, "--person", help="the person's email"),
    form: str | None = typer.Option(None, "--form", help="form-fill: the form's name"),
    field: list[str] = typer.Option([], "--field", help="name=value, repeatable; form fields or event data"),
    event_id: str | None = typer.Option(None, "--event-id", help="the sender's idempotency key"),
    occurred_at: str | None = typer.Option(
        None, "--occurred-at", help="ISO 8601 time, e.g. 2026-01-01T10:00:00+02:00; no zone means UTC (default: now)"
    ),
) -> None:
    """Record an event and deliver it to every running journey of the account."""
    if account is None and person is None:
        raise typer.BadParameter(
            "give --account, or --person so the account is found by the email's domain", param_hint="--account"
        )
    if event_id is not None and event_id.startswith("~"):
        raise typer.BadParameter(
            "event ids starting with '~' are reserved for the engine's own records", param_hint="--event-id"
        )
    when = _moment(occurred_at)
    extra = _fields(field)
    payload: dict[str, Any] = {}
    if type_ is EventType.form_fill:
        if not form:
            raise typer.BadParameter("form-fill needs --form NAME", param_hint="--form")
        payload = {"form": form, "fields": extra}
    else:
        payload = extra
    run_async(_event(type_.value.replace("-", "_"), account, person, payload, event_id, when))


async def _event(
    type_: str,
    account: str | None,
    person: str | None,
    payload: dict[str, Any],
    event_id: str | None,
    occurred_at: datetime | None,
) -> None:
    """Store, then deliver as the relay of `journey serve` does; if Temporal cannot be reached the event
    stays stored and undelivered, and the relay delivers it when Temporal is back."""
    from temporalio.service import RPCError

    from engine.runtime import events, temporal

    with database() as engine:
        recorded = events.record(engine, type_, account, person, payload, event_id, occurred_at)
        if recorded.status == "duplicate":
            print(f"duplicate: {recorded.reason}; not delivered again", file=sys.stderr)
            return
        if recorded.status == "unmatched":
            print(
                f"unmatched: {recorded.reason}; the event is stored as unmatched "
                f"(id '{recorded.event.event_id}') and was not delivered",
                file=sys.stderr,
            )
            raise typer.Exit(1)
        try:
            temporal_client = await temporal.connect()
            reached = await events.deliver(temporal_client, engine, recorded.event)
        except (RuntimeError, RPCError) as error:
            print(
                f"stored: event '{recorded.event.event_id}' is saved but Temporal is unreachable ({error}); "
                "`journey serve` delivers it when Temporal is back",
                file=sys.stderr,
            )
            return
        where = ", ".join(reached) if reached else "no running journey of this account"
        print(f"accepted: event '{recorded.event.event_id}' delivered to {where}")


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_command)
    app.command("event")(event_command)
    app.command("dev")(dev_command)
