"""Reading and writing one buying group's rows: get-or-create the group, score people, build the snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from engine.buying_groups import scoring
from engine.context import full_name
from engine.db import (
    ActivityEvent,
    BuyingGroup,
    BuyingGroupMember,
    Person,
    SolutionInterestRecord,
    engine_key,
    insert_new,
)
from engine.workflow.contracts import BuyingGroupRequest, BuyingGroupSnapshot, GroupMember

log = structlog.get_logger(__name__)


def group_for(session: Session, request: BuyingGroupRequest) -> tuple[BuyingGroup, bool]:
    """The account's group for the interest, created in its first entry stage; True when created now."""
    interest = request.solution_interest
    if session.get(SolutionInterestRecord, interest.id) is None:
        session.add(
            SolutionInterestRecord(
                id=interest.id,
                name=interest.name,
                role_template=interest.role_template,
                description=interest.description,
            )
        )
        try:
            session.commit()
        except IntegrityError:  # another journey created it
            session.rollback()
    query = select(BuyingGroup).where(
        BuyingGroup.account_id == request.account_id, BuyingGroup.solution_interest_id == interest.id
    )
    group = session.exec(query).first()
    if group is not None:
        return group, False
    group = BuyingGroup(account_id=request.account_id, solution_interest_id=interest.id, stage=request.stages.entry[0])
    session.add(group)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        found = session.exec(query).first()
        assert found is not None  # the constraint that refused us names this row
        return found, False
    log.info("buying_group.created", account=request.account_id, buying_group=group.id, stage=group.stage)
    return group, True


def engagement_scores(session: Session, person_ids: Sequence[int], now: datetime) -> dict[int, float]:
    scores = dict.fromkeys(person_ids, 0.0)
    if not person_ids:
        return scores
    # A day's margin: SQLite compares stored text, and person_engagement draws the exact window.
    since = now - scoring.LOOKBACK - timedelta(days=1)
    events = session.exec(
        select(ActivityEvent).where(
            col(ActivityEvent.person_id).in_(person_ids),
            col(ActivityEvent.type).in_(list(scoring.DEFAULT_WEIGHTS)),
            ActivityEvent.occurred_at > since,
        )
    ).all()
    activities: dict[int, list[scoring.Activity]] = {person_id: [] for person_id in person_ids}
    for event in events:
        assert event.person_id is not None
        when = event.occurred_at if event.occurred_at.tzinfo else event.occurred_at.replace(tzinfo=UTC)
        activities[event.person_id].append(scoring.Activity(event.type, when))
    return {person_id: scoring.person_engagement(items, now) for person_id, items in activities.items()}


def snapshot(
    group: BuyingGroup,
    request: BuyingGroupRequest,
    people: Sequence[Person],
    members: dict[int, BuyingGroupMember],
    scores: dict[int, float],
    missing: list[str],
) -> BuyingGroupSnapshot:
    assert group.id is not None
    order = {role.role: index for index, role in enumerate(request.role_template.roles)}
    by_id = {person.id: person for person in people}
    rows: list[GroupMember] = []
    for person_id, member in sorted(members.items(), key=lambda item: (order.get(item[1].role, len(order)), item[0])):
        person = by_id.get(person_id)  # a member may since have moved to another account
        name = full_name(person) if person else ""
        rows.append(
            GroupMember(
                person_id=person_id,
                email=person.email if person else None,
                name=name or (person.email if person and person.email else f"person {person_id}"),
                job_title=person.job_title if person else None,
                role=member.role,
                assigned_by=member.assigned_by,
                engagement_score=scores.get(person_id, 0.0),
            )
        )
    return BuyingGroupSnapshot(
        id=group.id,
        account_id=group.account_id,
        solution_interest=group.solution_interest_id,
        stage=group.stage,
        completeness=group.completeness,
        engagement=group.engagement,
        missing_roles=missing,
        members=rows,
        status=group.status,
    )


def record_placements(
    session: Session, group: BuyingGroup, request: BuyingGroupRequest, placed: Sequence[tuple[Person, str]]
) -> None:
    """A `member_added` event per person the rules just placed (with their role), in the transaction that places
    them, for the relay to signal: a wait_for_change on member_added listens for it. Keyed by group and person: rules
    place a person in a group once (a removed person is never placed again), so a retried or racing sync records
    nothing twice."""
    now = datetime.now(UTC)
    rows = [
        {
            "key": engine_key("member_added", group.id, person.id),
            "type": "member_added",
            "account_id": request.account_id,
            "person_id": person.id,
            "email": person.email,
            "status": "matched",
            "journey_id": None,  # delivered by the relay to the account's journeys, like member_removed
            "payload": {
                "buying_group": group.id,
                "solution_interest": group.solution_interest_id,
                "role": role,
                "journey": request.journey_id,
                "node": request.node_id,
            },
            "occurred_at": now,
            "recorded_at": now,
        }
        for person, role in placed
    ]
    insert_new(session.connection(), ActivityEvent.__table__, rows)  # type: ignore[attr-defined]
