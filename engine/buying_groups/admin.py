"""Changes people make by hand to a buying group: assign a role, move the stage. Both are checked
against the role template and the stage model, and refused with a message saying what is allowed."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from activities.buying_groups import BuyingGroupActivities
from activities.delivery import Delivery
from engine.db import ActivityEvent, BuyingGroup, BuyingGroupMember, Person, engine_key, utcnow
from engine.language.errors import JourneyError, did_you_mean
from engine.language.workspace import Workspace
from engine.workflow.contracts import BuyingGroupRequest, BuyingGroupSnapshot


class GroupChangeError(JourneyError):
    """A hand-made change to a buying group that the template or the stage model does not allow."""


def request_for(workspace: Workspace, account_id: str, interest: str) -> BuyingGroupRequest:
    solution = workspace.solution_interests.get(interest)
    if solution is None:
        raise GroupChangeError(
            f"unknown solution interest '{interest}'{did_you_mean(interest, workspace.solution_interests)}"
        )
    template = workspace.role_templates[solution.role_template]
    return BuyingGroupRequest(
        key=f"manual/{account_id}/{interest}",
        journey_id="manual",
        account_id=account_id,
        solution_interest=solution,
        role_template=template,
        stages=workspace.buying_groups.stages,
    )


def assign_role(
    engine: Engine, delivery: Delivery, workspace: Workspace, account_id: str, interest: str, email: str, role: str
) -> BuyingGroupSnapshot:
    """Give `email` the role `role` in the account's group (by hand: rules never take it away)."""
    request = request_for(workspace, account_id, interest)
    roles = [item.role for item in request.role_template.roles]
    if role not in roles:
        raise GroupChangeError(
            f"role template '{request.role_template.id}' has no role '{role}'"
            f"{did_you_mean(role, roles)} (roles: {', '.join(roles)})"
        )
    groups = BuyingGroupActivities(engine, delivery)
    snapshot = groups.sync(request)  # creates the group when it does not exist yet
    with Session(engine) as session:
        person = session.exec(select(Person).where(Person.account_id == account_id, Person.email == email)).first()
        if person is None or person.id is None:
            raise GroupChangeError(f"account '{account_id}' has no person '{email}'")
        member = session.exec(
            select(BuyingGroupMember).where(
                BuyingGroupMember.buying_group_id == snapshot.id, BuyingGroupMember.person_id == person.id
            )
        ).first()
        member = member or BuyingGroupMember(buying_group_id=snapshot.id, person_id=person.id, role=role)
        member.role, member.assigned_by, member.rule, member.assigned_at = role, "manual", None, utcnow()
        session.add(member)
        session.commit()
    return groups.sync(request)  # scores and completeness with the new member


def move_stage(engine: Engine, workspace: Workspace, account_id: str, interest: str, stage: str) -> str:
    """Move the group to `stage` if the stage model allows it; returns the stage it left."""
    stages = workspace.buying_groups.stages
    with Session(engine) as session:
        group = session.exec(
            select(BuyingGroup).where(
                BuyingGroup.account_id == account_id, BuyingGroup.solution_interest_id == interest
            )
        ).first()
        if group is None:
            raise GroupChangeError(f"account '{account_id}' has no buying group for '{interest}' yet")
        try:
            stages.check_move(group.stage, stage)
        except ValueError as error:
            raise GroupChangeError(str(error)) from None
        now = utcnow()
        previous, group.stage, group.updated_at = group.stage, stage, now
        session.add(group)
        if previous != stage:
            # Recorded like update_buying_group's change, for the relay to signal: journeys waiting for the stage
            # (wait_for_change, wait_for_event) hear a move made by hand too. Keyed by the move and its moment.
            session.add(
                ActivityEvent(
                    key=engine_key("buying_group_updated", "manual", group.id, previous, stage, now.isoformat()),
                    type="buying_group_updated",
                    account_id=account_id,
                    journey_id=None,
                    payload={
                        "buying_group": group.id,
                        "solution_interest": interest,
                        "changes": {"stage": {"old": previous, "new": stage}},
                        "journey": "manual",
                        "node": None,
                    },
                    occurred_at=now,
                )
            )
        session.commit()
    return previous
