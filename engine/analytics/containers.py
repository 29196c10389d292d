"""Containers: what a report counts (account, buying group, person, opportunity), and the report filters.

A `Population` is the event log seen through one container: each matched event joined to the
container(s) it belongs to, narrowed by the filters. Reports select from it with their own conditions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Table, and_, cast, exists, func, literal, or_, select, true, union
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause
from sqlmodel import col

from engine.analytics.choices import Container
from engine.analytics.errors import AnalyticsError
from engine.analytics.selectors import OPPORTUNITY_TYPES
from engine.db import ActivityEvent, BuyingGroup, BuyingGroupMember, Handoff


@dataclass(frozen=True)
class Filters:
    """Optional narrowing shared by every report; `since` is inclusive, `until` exclusive."""

    journey: str | None = None
    solution_interest: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            # An empty range is a mistake in the request, not a report of nothing.
            raise AnalyticsError(
                f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()}): "
                "since is inclusive, until exclusive"
            )

    def describe(self) -> dict[str, Any]:
        """The filters that are set, for a report's header and its JSON."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in vars(self).items()
            if value is not None
        }


# The conditions on `activity_event` rows that make them one container's events.
Events = list[ColumnElement[bool]]


@dataclass(frozen=True)
class Population:
    container: Container
    # The key of each event row's container, which reports group and join on: a plain column (the person's
    # id, the group's id), never an expression, so the database can use its indexes. Reports count
    # containers and never show this key.
    id: ColumnElement[Any]
    source: FromClause
    conditions: tuple[ColumnElement[bool], ...]
    dialect: str  # the database's ('sqlite', 'postgresql'): what reads fast differs between the two
    # (cid, account) -> the events of that one container, filters included (see events_of).
    one: Callable[[ColumnElement[Any], ColumnElement[Any] | None], Events]
    # cid, account of every container, when the containers are a small set of their own (buying groups,
    # opportunities): reports then walk each one's events rather than group the whole log by container.
    listed: FromClause | None = None

    def select(self, *columns: Any) -> Select[Any]:
        return select(*columns).select_from(self.source).where(*self.conditions)

    def events_of(self, cid: ColumnElement[Any], account: ColumnElement[Any] | None = None) -> Events:
        """The conditions on `activity_event` rows of the events of the one container `cid` (a column of an
        enclosing query), filters included: its own index range (account or person), never the join of the whole
        log to the containers. A buying group's or an opportunity's events are its account's: give `account`
        (the account of any of its events), they are checked against the container."""
        if account is None and self.listed is not None:
            raise ValueError(f"the events of a {self.container.value} are read through its account: give it")
        return self.one(cid, account)


EVENT: Table = ActivityEvent.__table__  # type: ignore[attr-defined]
PAYLOAD = col(ActivityEvent.payload)


def opportunity_of_event() -> ColumnElement[Any]:
    """The opportunity an event names (`payload.opportunity_id`, or `payload.opportunity` as the language has it)."""
    return func.coalesce(PAYLOAD["opportunity_id"].as_string(), PAYLOAD["opportunity"].as_string())


def _not_of_another(opportunity: ColumnElement[Any]) -> ColumnElement[bool]:
    """The event names no opportunity, or this one: `COALESCE(named = id, true)`, one expression, so each
    event's payload is read once rather than once per side of `named IS NULL OR named = id`. PostgreSQL also
    estimates it as the unselective condition it is: an equality made it guess one match per container, read
    every event of the account before each flow anchor and sort them, where walking its index stops after a few."""
    return func.coalesce(opportunity_of_event() == opportunity, true())


def opportunities() -> FromClause:
    """Every opportunity: ids named by opportunity events, and `handoff-<id>` for each sales handoff whose
    account has no opportunity event yet (the CRM has not reported the opportunity the handoff opened)."""
    named = select(opportunity_of_event().label("id"), col(ActivityEvent.account_id).label("account_id")).where(
        col(ActivityEvent.type).in_(OPPORTUNITY_TYPES),
        col(ActivityEvent.account_id).is_not(None),
        opportunity_of_event().is_not(None),
    )
    has_events = (
        select(literal(1))
        .where(col(ActivityEvent.account_id) == col(Handoff.account_id), col(ActivityEvent.type).in_(OPPORTUNITY_TYPES))
        .correlate(Handoff)
    )
    handoffs: Select[Any] = select(  # type: ignore[assignment]  # the literal+cast id confuses the stubs
        (literal("handoff-") + cast(col(Handoff.id), String)).label("id"), col(Handoff.account_id).label("account_id")
    ).where(~exists(has_events))
    # Computed once per report: the events' join and the reports' per-container lookups all read it.
    return union(named, handoffs).cte("opportunity").prefix_with("MATERIALIZED")


def population(container: Container, filters: Filters, dialect: str) -> Population:
    """The matched events with the id of the container each belongs to, narrowed by `filters`.

    A person's event belongs to their account, to each buying group of the account they are a member of,
    and to each opportunity of the account; an account-level event (journey steps, opportunities) belongs
    to every buying group and, unless it names another opportunity, to every opportunity of its account.
    """
    event_account: ColumnElement[Any] = EVENT.c.account_id
    # Any event with an account counts, matched or not: an event from a person the database does not know
    # yet (stored as unmatched) is still an interaction of that account. Events of unknown accounts have none.
    shared = _filtered(container, filters)
    conditions: list[ColumnElement[bool]] = []
    source: FromClause = EVENT
    listed: FromClause | None = None
    match container:
        case Container.account:
            container_id: ColumnElement[Any] = event_account

            def one(cid: ColumnElement[Any], account: ColumnElement[Any] | None) -> Events:
                return [event_account == cid, *shared]

        case Container.person:
            container_id = EVENT.c.person_id
            conditions.append(container_id.is_not(None))

            def one(cid: ColumnElement[Any], account: ColumnElement[Any] | None) -> Events:
                return [EVENT.c.person_id == cid, *shared]

        case Container.buying_group:
            group = BuyingGroup.__table__  # type: ignore[attr-defined]
            member = BuyingGroupMember.__table__  # type: ignore[attr-defined]
            # An outer join on the unique (group, person) pair rather than an EXISTS per event: the database
            # can hash the members once, and an event still meets each of its groups at most once.
            source = EVENT.join(group, group.c.account_id == event_account).outerjoin(
                member, and_(member.c.buying_group_id == group.c.id, member.c.person_id == EVENT.c.person_id)
            )
            container_id = group.c.id
            conditions.append(or_(EVENT.c.person_id.is_(None), member.c.person_id.is_not(None)))
            groups = select(group.c.id.label("cid"), group.c.account_id.label("account"))
            if filters.solution_interest:
                conditions.append(group.c.solution_interest_id == filters.solution_interest)
                groups = groups.where(group.c.solution_interest_id == filters.solution_interest)

            def one(cid: ColumnElement[Any], account: ColumnElement[Any] | None) -> Events:
                # One lookup of the members' unique (group, person) pair per event.
                membership = select(member.c.id).where(
                    member.c.buying_group_id == cid, member.c.person_id == EVENT.c.person_id
                )
                mine = or_(EVENT.c.person_id.is_(None), exists(membership.correlate_except(member)))
                return [event_account == account, mine, *shared]

            listed = groups.subquery("listed")
        case Container.opportunity:
            opportunity = opportunities()
            source = EVENT.join(opportunity, opportunity.c.account_id == event_account)
            container_id = opportunity.c.id
            conditions.append(_not_of_another(opportunity.c.id))

            def one(cid: ColumnElement[Any], account: ColumnElement[Any] | None) -> Events:
                return [event_account == account, _not_of_another(cid), *shared]

            listing = select(opportunity.c.id.label("cid"), opportunity.c.account_id.label("account"))
            listed = listing.subquery("listed")
    return Population(container, container_id, source, (*conditions, *shared), dialect, one, listed)


def _filtered(container: Container, filters: Filters) -> list[ColumnElement[bool]]:
    """The conditions on an event's own columns: it has an account, and the filters."""
    event_account: ColumnElement[Any] = EVENT.c.account_id
    conditions: list[ColumnElement[bool]] = [event_account.is_not(None)]
    if filters.solution_interest and container is not Container.buying_group:
        conditions.append(
            event_account.in_(
                select(col(BuyingGroup.account_id)).where(
                    col(BuyingGroup.solution_interest_id) == filters.solution_interest
                )
            )
        )
    if filters.journey:
        entered = select(event_account).where(
            col(ActivityEvent.journey_id) == filters.journey, col(ActivityEvent.type) == "node_entered"
        )
        # Events of the journey's accounts; steps of other journeys are left out.
        conditions.append(
            and_(
                event_account.in_(entered),
                or_(col(ActivityEvent.journey_id).is_(None), col(ActivityEvent.journey_id) == filters.journey),
            )
        )
    if filters.since:
        conditions.append(col(ActivityEvent.occurred_at) >= filters.since)
    if filters.until:
        conditions.append(col(ActivityEvent.occurred_at) < filters.until)
    return conditions
