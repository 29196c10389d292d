"""The account timeline: every known interaction of one account or buying group, oldest first, with who did
it and their roles — what a salesperson reads before calling."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from engine.analytics.choices import Container
from engine.analytics.containers import Filters, population
from engine.analytics.errors import AnalyticsError
from engine.analytics.report import Report, ReportModel
from engine.analytics.timing import utc
from engine.context import full_name
from engine.db import Account, ActivityEvent, BuyingGroup, BuyingGroupMember, Person
from engine.language.errors import did_you_mean


class TimelineEntry(ReportModel):
    occurred_at: datetime
    type: str
    person: str | None  # name, or email when the name is unknown
    email: str | None
    roles: list[str]  # 'role (solution interest)' in the account's buying groups
    journey: str | None
    node: str | None
    detail: str  # the payload's plain values, key=value


class TimelineReport(Report):
    report: str = "timeline"
    account: str
    account_name: str
    buying_group: str | None
    entries: list[TimelineEntry]


def timeline(engine: Engine, account: str, filters: Filters, solution_interest: str | None = None) -> TimelineReport:
    """One account's interactions; with `solution_interest`, only those of that buying group (its members'
    events and the account-level ones)."""
    with Session(engine) as session:
        found = session.get(Account, account)
        if found is None:
            known = session.execute(select(col(Account.id))).scalars().all()
            raise AnalyticsError(f"unknown account '{account}'{did_you_mean(account, known)}")
        account_name = found.name
        groups = select(
            col(BuyingGroupMember.person_id), col(BuyingGroupMember.role), col(BuyingGroup.solution_interest_id)
        )
        groups = groups.join_from(BuyingGroupMember, BuyingGroup).where(col(BuyingGroup.account_id) == account)
        if solution_interest:
            groups = groups.where(col(BuyingGroup.solution_interest_id) == solution_interest)
        roles: dict[int, list[str]] = {}
        for person_id, role, interest in session.execute(
            groups.order_by(col(BuyingGroup.solution_interest_id), col(BuyingGroupMember.role))
        ):
            roles.setdefault(person_id, []).append(f"{role} ({interest})")
        if (
            solution_interest
            and not session.execute(
                select(col(BuyingGroup.id)).where(
                    col(BuyingGroup.account_id) == account, col(BuyingGroup.solution_interest_id) == solution_interest
                )
            ).first()
        ):
            raise AnalyticsError(
                f"account '{account}' has no buying group for the solution interest '{solution_interest}'"
            )
    container = Container.buying_group if solution_interest else Container.account
    people = population(
        container, Filters(filters.journey, solution_interest, filters.since, filters.until), engine.dialect.name
    )
    query = (
        people.select(ActivityEvent, Person)
        .outerjoin(Person, col(Person.id) == col(ActivityEvent.person_id))
        .where(col(ActivityEvent.account_id) == account)
        .order_by(col(ActivityEvent.occurred_at), col(ActivityEvent.id))
    )
    with Session(engine) as session:
        rows = session.execute(query).all()
    entries = [
        TimelineEntry(
            occurred_at=utc(event.occurred_at),
            type=event.type,
            person=(full_name(person) or person.email) if person is not None else None,
            email=event.email or (person.email if person is not None else None),
            roles=roles.get(event.person_id, []) if event.person_id is not None else [],
            journey=event.journey_id,
            node=event.node_id,
            detail=_detail(event.payload),
        )
        for event, person in rows
    ]
    return TimelineReport(
        container=container,
        filters=filters.describe(),
        account=account,
        account_name=account_name,
        buying_group=f"{account}/{solution_interest}" if solution_interest else None,
        entries=entries,
    )


def _detail(payload: dict[str, Any]) -> str:
    plain = {key: value for key, value in (payload or {}).items() if isinstance(value, str | int | float | bool)}
    return ", ".join(f"{key}={value}" for key, value in sorted(plain.items()))
