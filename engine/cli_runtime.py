"""The `journey` commands that talk to Temporal: publish, event, worker and dev."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from temporalio.client import Client
from temporalio.service import RPCError

from engine import catalog, events, publish, runtime, visibility
from engine.db import database
from engine.plan import Plan

err = Console(stderr=True)
out = Console()


class EventType(StrEnum):
    form_fill = "form-fill"
    email_open = "email-open"
    email_click = "email-click"
    web_visit = "web-visit"
    person_added = "person-added"
    person_updated = "person-updated"
    opportunity_created = "opportunity-created"
    opportunity_stage_changed = "opportunity-stage-changed"


async def _client() -> Client:
    try:
        return await runtime.connect()
    except RuntimeError as error:
        print(
            f"journey: cannot reach Temporal ({error}): start it with `journey dev`, or set "
            "TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None


def _plan(file: Path) -> Plan:
    try:
        result = catalog.validate([file])
    except FileNotFoundError:
        print(f"journey: no such file: {file}", file=sys.stderr)
        raise typer.Exit(2) from None
    for issue in result.issues:
        print(issue.render(), file=sys.stderr)
    if result.issues or not result.plans:
        raise typer.Exit(1)
    return result.plans[0]


def publish_command(
    file: Path = typer.Argument(..., help="the journey file"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Compile, store the version, and start the journey for every account of its audience (idempotent)."""
    plan = _plan(file)
    summary = asyncio.run(_publish(plan, quiet=as_json))
    if as_json:
        print(json.dumps(summary))
        return
    out.print(
        f"published [bold]{plan.journey}[/] version {plan.version}: {summary['in_audience']} accounts in "
        f"the audience, {len(summary['started'])} started, {len(summary['already_running'])} already "
        f"running, {len(summary['excluded_by_reentry'])} excluded by re-entry ({plan.audience.reentry})"
    )
    if plan.audience.refresh:
        out.print(f"audience refresh: launcher {runtime.launcher_id(plan.journey)} on '{plan.audience.refresh}' (UTC)")


async def _publish(plan: Plan, quiet: bool) -> dict[str, Any]:
    client = await _client()
    if missing := await visibility.missing(client):
        # Journeys would start and then fail every workflow task on their first search-attribute write.
        print(
            f"journey: namespace '{client.namespace}' lacks the search attributes {', '.join(missing)}: "
            "run `journey setup search-attributes` (or `journey setup search-attributes --print`) first",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    with database() as engine:
        to_start, _ = await asyncio.to_thread(publish.audience, engine, plan)
        columns = (TextColumn("starting {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, disable=quiet) as progress:
            task = progress.add_task(plan.journey, total=len(to_start))
            summary = await publish.publish(client, engine, plan, progress=lambda done: progress.advance(task, done))
        await publish.start_launcher(client, plan)
    return {
        "journey": summary.journey,
        "version": summary.version,
        "in_audience": summary.in_audience,
        "started": summary.started,
        "already_running": summary.already_running,
        "excluded_by_reentry": summary.excluded_by_reentry,
    }


def dev_command(
    journeys: Path = typer.Option(Path("journeys"), "--journeys", help="the folder of journeys to publish"),
    port: int = typer.Option(7233, "--port", help="Temporal's gRPC port"),
    ui_port: int = typer.Option(8233, "--ui-port", help="the Temporal UI's port"),
    services_port: int = typer.Option(8790, "--services-port", help="the stand-in services' port (services.yaml)"),
    http_port: int = typer.Option(8000, "--http-port", help="the events service's port (journey serve)"),
) -> None:
    """Run everything locally: Temporal dev server (UI on :8233), worker, demo data, example journeys."""
    from engine import dev, logs

    logs.configure(level="WARNING")
    home = Path(os.environ.get("JOURNEY_HOME", ".journey"))
    try:
        asyncio.run(dev.run(home, journeys, port, ui_port, services_port, http_port))
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


def event_command(
    type_: EventType = typer.Argument(..., metavar="TYPE", help="form-fill, email-open, web-visit, ..."),
    account: str | None = typer.Option(None, "--account", help="the account id (default: by the email's domain)"),
    person: str | None = typer.Option(None, "--person", help="the person's email"),
    form: str | None = typer.Option(None, "--form", help="form-fill: the form's name"),
    field: list[str] = typer.Option([], "--field", help="name=value, repeatable; form fields or event data"),
    event_id: str | None = typer.Option(None, "--event-id", help="the sender's idempotency key"),
    occurred_at: datetime | None = typer.Option(None, "--occurred-at", help="ISO time (default: now)"),
) -> None:
    """Record an event and deliver it to every running journey of the account."""
    if account is None and person is None:
        raise typer.BadParameter(
            "give --account, or --person so the account is found by the email's domain", param_hint="--account"
        )
    extra = _fields(field)
    payload: dict[str, Any] = {}
    if type_ is EventType.form_fill:
        if not form:
            raise typer.BadParameter("form-fill needs --form NAME", param_hint="--form")
        payload = {"form": form, "fields": extra}
    else:
        payload = extra
    asyncio.run(_event(type_.value.replace("-", "_"), account, person, payload, event_id, occurred_at))


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
            client = await runtime.connect()
            reached = await events.deliver(client, engine, recorded.event)
        except (RuntimeError, RPCError) as error:
            print(
                f"stored: event '{recorded.event.event_id}' is saved but Temporal is unreachable ({error}); "
                "`journey serve` delivers it when Temporal is back",
                file=sys.stderr,
            )
            return
        where = ", ".join(reached) if reached else "no running journey of this account"
        print(f"accepted: event '{recorded.event.event_id}' delivered to {where}")


def buying_group_command(
    account: str = typer.Argument(..., help="the account id"),
    interest: str | None = typer.Option(None, "--interest", help="one solution interest"),
    journeys: Path = typer.Option(Path("journeys"), "--journeys", help="where buying_groups.yaml is"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """An account's buying groups: roles and members, missing roles, completeness, engagement, stage, history."""
    from rich.table import Table

    from engine import groups_report
    from engine.workspace import load_workspace

    with database() as engine:
        reports = groups_report.buying_groups(engine, load_workspace(journeys), account, interest)
    if as_json:
        print(json.dumps(reports, indent=2))
        return
    if not reports:
        print(
            f"account '{account}' has no buying group yet: a journey with assign_buying_group creates it",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    for report in reports:
        out.print(
            f"[bold]{account}[/] · {report['solution_interest']} · stage {report['stage']} · "
            f"{report['completeness']}% complete · engagement {report['engagement']}"
        )
        out.print(f"missing roles: {', '.join(report['missing_roles']) or 'none'}")
        table = Table("role", "name", "job title", "email", "by", "engagement")
        for member in report["members"]:
            table.add_row(
                member["role"],
                member["name"],
                member["job_title"] or "",
                member["email"] or "",
                member["assigned_by"],
                str(member["engagement"]),
            )
        out.print(table)
        for entry in report["history"]:
            out.print(f"  {entry['at'][:19]}  {entry['what']}", markup=False, highlight=False)


def handoffs_command(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Every SQL handoff: when, which account and solution interest, which journey, whether the CRM got it."""
    from rich.table import Table

    from engine import groups_report

    with database() as engine:
        rows = groups_report.handoffs(engine)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("when", "account", "solution interest", "journey", "owner", "complete", "CRM")
    for row in rows:
        table.add_row(
            row["at"][:19],
            f"{row['account_name']} ({row['account']})",
            row["solution_interest"],
            row["journey"],
            row["owner"] or "",
            f"{row['completeness']}%",
            "yes" if row["crm_webhook"] else "no",
        )
    out.print(table)


def scores_command(
    action: str = typer.Argument(..., metavar="recompute|schedule", help="recompute now, or start the daily job"),
    cron: str | None = typer.Option(
        None, "--cron", help="with schedule: when (UTC); default JOURNEY_SCORES_CRON or 0 3 * * *"
    ),
) -> None:
    """Buying-group scores: recompute every group now, or schedule the recurring recompute on Temporal."""
    from activities.buying_groups import BuyingGroupActivities
    from activities.delivery import delivery_from_env
    from engine.scores_job import ScoresActivities

    if action == "schedule":
        used = asyncio.run(_schedule(cron))
        print(f"scores recompute scheduled on '{used}' (UTC) as workflow journey-scores")
        return
    if action != "recompute":
        raise typer.BadParameter(f"'{action}': expected recompute or schedule", param_hint="ACTION")
    with database() as engine:
        result = ScoresActivities(engine, BuyingGroupActivities(engine, delivery_from_env())).recompute_now()
    print(
        f"recomputed {result.groups} buying group(s); {result.skipped} skipped (no published journey names "
        "their template)"
    )


async def _schedule(cron: str | None) -> str:
    from engine.scores_job import schedule_scores

    return await schedule_scores(await _client(), cron)


def assign_role_command(
    account: str = typer.Argument(..., help="the account id"),
    person: str = typer.Option(..., "--person", help="the person's email"),
    role: str = typer.Option(..., "--role", help="a role of the interest's role template"),
    interest: str = typer.Option(..., "--interest", help="the solution interest"),
    journeys: Path = typer.Option(Path("journeys"), "--journeys", help="where buying_groups.yaml is"),
) -> None:
    """Assign a buying-group role by hand; waiting journeys of the account re-check completeness."""
    from activities.delivery import delivery_from_env
    from engine import groups_admin
    from engine.contracts import JourneyEvent
    from engine.db import utcnow
    from engine.workspace import load_workspace

    with database() as engine:
        try:
            snapshot = groups_admin.assign_role(
                engine, delivery_from_env(), load_workspace(journeys), account, interest, person, role
            )
            print(f"{person} is {role} in {account}'s {interest} group: {snapshot.completeness:.0f}% complete")
            event = JourneyEvent(
                type="member_assigned",
                event_id=f"assigned-{account}-{interest}-{person}-{role}-{utcnow():%Y%m%d%H%M%S}",
                account_id=account,
                email=person,
                payload={"role": role},
                occurred_at=utcnow(),
            )
            reached = asyncio.run(_deliver(engine, event))
            print(f"journeys told: {', '.join(reached) or 'none running'}")
        except groups_admin.GroupChangeError as error:
            print(f"journey assign-role: {error}", file=sys.stderr)
            raise typer.Exit(1) from None


async def _deliver(engine: Any, event: Any) -> list[str]:
    return await events.deliver(await _client(), engine, event)


def move_stage_command(
    account: str = typer.Argument(..., help="the account id"),
    stage: str = typer.Option(..., "--to", help="the stage to move to"),
    interest: str = typer.Option(..., "--interest", help="the solution interest"),
    journeys: Path = typer.Option(Path("journeys"), "--journeys", help="where buying_groups.yaml is"),
) -> None:
    """Move a buying group to another stage, if the stage model allows the move."""
    from engine import groups_admin
    from engine.workspace import load_workspace

    with database() as engine:
        try:
            previous = groups_admin.move_stage(engine, load_workspace(journeys), account, interest, stage)
            print(f"{account}'s {interest} group moved from {previous} to {stage}")
        except groups_admin.GroupChangeError as error:
            print(f"journey move-stage: {error}", file=sys.stderr)
            raise typer.Exit(1) from None
