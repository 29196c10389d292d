"""`journey buying-group | handoffs | scores | assign-role | move-stage`: buying groups for operators and sales."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli.common import client, data_table, database, markup_free, out, run_async

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from engine.workflow.contracts import JourneyEvent

JOURNEYS = typer.Option(Path("journeys"), "--journeys", help="where buying_groups.yaml is")


def buying_group_command(
    account: str = typer.Argument(..., help="the account id"),
    interest: str | None = typer.Option(None, "--interest", help="one solution interest"),
    journeys: Path = JOURNEYS,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """An account's buying groups: roles and members, missing roles, completeness, engagement, stage and status,
    history."""
    from engine.buying_groups import report
    from engine.language.workspace import load_workspace

    workspace = load_workspace(journeys) if journeys.is_dir() else None
    with database() as engine:
        try:
            reports = report.buying_groups(engine, workspace, account, interest)
        except report.ReportError as error:
            print(f"journey buying-group: {error}", file=sys.stderr)
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(reports, indent=2))
        return
    if not reports:
        print(
            f"account '{account}' has no buying group yet: a journey with assign_buying_group creates it",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    for group in reports:
        out().print(
            f"[bold]{markup_free(account)}[/] · {markup_free(group['solution_interest'])} · "
            f"stage {markup_free(group['stage'])} · "
            + (f"status {markup_free(group['status'])} · " if group["status"] else "")
            + f"{group['completeness']}% complete · engagement {group['engagement']}"
        )
        out().print(f"missing roles: {', '.join(group['missing_roles']) or 'none'}", markup=False)
        table = data_table("role", "name", "job title", "email", "by", "engagement")
        for member in group["members"]:
            table.add_row(
                member["role"],
                member["name"],
                member["job_title"] or "",
                member["email"] or "",
                member["assigned_by"],
                str(member["engagement"]),
            )
        out().print(table)
        for entry in group["history"]:
            out().print(f"  {entry['at'][:19]}  {entry['what']}", markup=False, highlight=False)


def handoffs_command(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Every SQL handoff: when, which account and solution interest, which journey, whether the CRM got it."""
    from engine.buying_groups import report

    with database() as engine:
        rows = report.handoffs(engine)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = data_table("when", "account", "solution interest", "journey", "owner", "complete", "CRM")
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
    out().print(table)


def scores_command(
    action: str = typer.Argument(..., metavar="recompute|schedule", help="recompute now, or start the daily job"),
    cron: str | None = typer.Option(
        None, "--cron", help="with schedule: when (UTC); default JOURNEY_SCORES_CRON or 0 3 * * *"
    ),
) -> None:
    """Buying-group scores: recompute every group now, or schedule the recurring recompute on Temporal."""
    if action == "schedule":
        used = run_async(_schedule(cron))
        print(f"scores recompute scheduled on '{used}' (UTC) as workflow journey-scores")
        return
    if action != "recompute":
        raise typer.BadParameter(f"'{action}': expected recompute or schedule", param_hint="ACTION")
    from activities.buying_groups import BuyingGroupActivities
    from activities.delivery import delivery_from_env
    from activities.scores import ScoresActivities

    with database() as engine:
        result = ScoresActivities(engine, BuyingGroupActivities(engine, delivery_from_env())).recompute_now()
    print(
        f"recomputed {result.groups} buying group(s); {result.skipped} skipped (no published journey names "
        "their template)"
    )


async def _schedule(cron: str | None) -> str:
    from engine.runtime.scores import schedule_scores

    return await schedule_scores(await client(), cron)


def assign_role_command(
    account: str = typer.Argument(..., help="the account id"),
    person: str = typer.Option(..., "--person", help="the person's email"),
    role: str = typer.Option(..., "--role", help="a role of the interest's role template"),
    interest: str = typer.Option(..., "--interest", help="the solution interest"),
    journeys: Path = JOURNEYS,
) -> None:
    """Assign a buying-group role by hand; waiting journeys of the account re-check completeness."""
    from activities.delivery import delivery_from_env
    from engine.buying_groups import admin
    from engine.db import utcnow
    from engine.language.workspace import load_workspace
    from engine.workflow.contracts import JourneyEvent

    with database() as engine:
        try:
            snapshot = admin.assign_role(
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
            reached = run_async(_deliver(engine, event))
            print(f"journeys told: {', '.join(reached) or 'none running'}")
        except admin.GroupChangeError as error:
            print(f"journey assign-role: {error}", file=sys.stderr)
            raise typer.Exit(1) from None


async def _deliver(engine: Engine, event: JourneyEvent) -> list[str]:
    from engine.runtime import events

    return await events.deliver(await client(), engine, event)


def move_stage_command(
    account: str = typer.Argument(..., help="the account id"),
    stage: str = typer.Option(..., "--to", help="the stage to move to"),
    interest: str = typer.Option(..., "--interest", help="the solution interest"),
    journeys: Path = JOURNEYS,
) -> None:
    """Move a buying group to another stage, if the stage model allows the move."""
    from engine.buying_groups import admin
    from engine.language.workspace import load_workspace

    with database() as engine:
        try:
            previous = admin.move_stage(engine, load_workspace(journeys), account, interest, stage)
            print(f"{account}'s {interest} group moved from {previous} to {stage}")
        except admin.GroupChangeError as error:
            print(f"journey move-stage: {error}", file=sys.stderr)
            raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("buying-group")(buying_group_command)
    app.command("handoffs")(handoffs_command)
    app.command("scores")(scores_command)
    app.command("assign-role")(assign_role_command)
    app.command("move-stage")(move_stage_command)
