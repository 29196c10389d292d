"""Read-only reports for operators and sales: an account's buying groups, and the handoffs made."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from activities.buying_groups import webhook_receipts
from engine.buying_groups import scoring
from engine.context import full_name
from engine.db import (
    Account,
    ActivityEvent,
    BuyingGroup,
    BuyingGroupMember,
    BuyingGroupRemoval,
    Handoff,
    JourneyVersion,
    Person,
)
from engine.language.errors import JourneyError
from engine.language.model import RoleTemplate
from engine.language.plan import Plan
from engine.language.workspace import Workspace


class ReportError(JourneyError):
    """A report cannot say what was asked without guessing (e.g. which role template a group uses)."""


def templates_in_force(session: Session) -> dict[str, RoleTemplate]:
    """Solution interest -> the role template of the latest published journey working on it: what the
    journeys themselves use, stored with their version, wherever the command runs."""
    templates: dict[str, RoleTemplate] = {}
    for row in session.exec(select(JourneyVersion).order_by(col(JourneyVersion.published_at))).all():
        plan = Plan.model_validate(row.plan)
        if plan.solution_interest is not None and plan.role_template is not None:
            templates[plan.solution_interest.id] = plan.role_template  # the latest published wins
    return templates


def buying_groups(
    engine: Engine, workspace: Workspace | None, account_id: str, interest: str | None = None
) -> list[dict[str, Any]]:
    """Each buying group of the account: roles with members, missing roles, scores, stage, status and history
    (assignments, stage and status changes, removals, the handoff).

    Roles come from the template of the journey version in force; a workspace (buying_groups.yaml) is only
    asked about interests no published journey works on. With neither, ReportError: 'missing roles: none'
    would be a guess."""
    reports = []
    with Session(engine) as session:
        in_force = templates_in_force(session)
        query = select(BuyingGroup).where(BuyingGroup.account_id == account_id)
        if interest is not None:
            query = query.where(BuyingGroup.solution_interest_id == interest)
        for group in session.exec(query.order_by(col(BuyingGroup.solution_interest_id))).all():
            members = session.exec(
                select(BuyingGroupMember, Person)
                .where(BuyingGroupMember.buying_group_id == group.id, BuyingGroupMember.person_id == Person.id)
                .order_by(col(BuyingGroupMember.assigned_at))
            ).all()
            template = in_force.get(group.solution_interest_id) or _from_workspace(
                workspace, group.solution_interest_id
            )
            if template is None:
                raise ReportError(
                    f"no published journey works on solution interest '{group.solution_interest_id}' and "
                    f"{_where(workspace)} does not define it, so its roles are unknown: publish the journey, or "
                    "pass --journeys FOLDER (the folder with buying_groups.yaml)"
                )
            roles = [role.role for role in template.roles] if template is not None else []
            fills = [
                scoring.RoleFill(
                    role.role,
                    role.members_required,
                    sum(1 for member, _ in members if member.role == role.role),
                    role.counts_toward_completeness,
                )
                for role in (template.roles if template is not None else [])
            ]
            history = [
                {
                    "at": member.assigned_at.isoformat(),
                    "what": f"{_name(person)} assigned as {member.role} ({member.assigned_by})",
                }
                for member, person in members
            ]
            history += _changes(session, group)
            handoff = session.exec(select(Handoff).where(Handoff.buying_group_id == group.id)).first()
            if handoff is not None:
                history.append(
                    {"at": handoff.created_at.isoformat(), "what": f"handed to sales by journey '{handoff.journey_id}'"}
                )
            reports.append(
                {
                    "account": account_id,
                    "solution_interest": group.solution_interest_id,
                    "stage": group.stage,
                    "status": group.status,
                    "completeness": scoring.display(group.completeness),
                    "engagement": scoring.display(group.engagement),
                    "missing_roles": scoring.missing_roles(fills),
                    "members": [
                        {
                            "role": member.role,
                            "name": _name(person),
                            "email": person.email,
                            "job_title": person.job_title,
                            "assigned_by": member.assigned_by,
                            "engagement": scoring.display(person.engagement_score),
                        }
                        for member, person in sorted(
                            members,
                            key=lambda pair: (
                                roles.index(pair[0].role) if pair[0].role in roles else len(roles),
                                pair[1].id or 0,
                            ),
                        )
                    ],
                    "history": sorted(history, key=lambda entry: entry["at"]),
                }
            )
    return reports


def handoffs(engine: Engine) -> list[dict[str, Any]]:
    """Every SQL handoff, newest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(Handoff, BuyingGroup, Account)
            .where(Handoff.buying_group_id == BuyingGroup.id, Handoff.account_id == Account.id)
            .order_by(col(Handoff.created_at).desc())
        ).all()
        webhooks = {
            event.key
            for event in session.exec(select(ActivityEvent).where(ActivityEvent.type == "handoff_webhook")).all()
        }
        return [
            {
                "at": handoff.created_at.isoformat(),
                "account": account.id,
                "account_name": account.name,
                "solution_interest": group.solution_interest_id,
                "journey": handoff.journey_id,
                "owner": account.owner_email,
                "completeness": scoring.display(group.completeness),
                "crm_webhook": bool(set(webhook_receipts(f"handoff/{group.id}")) & webhooks),
            }
            for handoff, group, account in rows
        ]


def _changes(session: Session, group: BuyingGroup) -> list[dict[str, str]]:
    """The history lines of update_buying_group's changes and remove_from_buying_group's removals."""
    lines = []
    updates = session.exec(
        select(ActivityEvent).where(
            ActivityEvent.account_id == group.account_id, ActivityEvent.type == "buying_group_updated"
        )
    ).all()
    for event in updates:
        if event.payload.get("buying_group") != group.id:
            continue
        by = f" by journey '{event.payload.get('journey')}'" if event.payload.get("journey") else ""
        for name, change in sorted(event.payload.get("changes", {}).items()):
            lines.append(
                {"at": event.occurred_at.isoformat(), "what": f"{name} {change.get('old')} -> {change.get('new')}{by}"}
            )
    removals = session.exec(
        select(BuyingGroupRemoval, Person)
        .join(Person, col(Person.id) == BuyingGroupRemoval.person_id, isouter=True)
        .where(BuyingGroupRemoval.buying_group_id == group.id)
    ).all()
    for removal, person in removals:
        who = _name(person) if person is not None else f"person {removal.person_id} (erased)"
        lines.append({"at": removal.removed_at.isoformat(), "what": f"{who} removed by journey '{removal.journey_id}'"})
    return lines


def _from_workspace(workspace: Workspace | None, interest: str) -> RoleTemplate | None:
    solution = workspace.solution_interests.get(interest) if workspace is not None else None
    return workspace.role_templates.get(solution.role_template) if solution is not None and workspace else None


def _where(workspace: Workspace | None) -> str:
    return f"{workspace.folder}/buying_groups.yaml" if workspace is not None else "no buying_groups.yaml"


def _name(person: Person) -> str:
    return full_name(person) or person.email or f"#{person.id}"
