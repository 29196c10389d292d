"""The first event of each container matching a selector, in log order: by time, ties by the log's id.

Events are totally ordered by (occurred_at, id), so "after" never confuses two events at the same instant
and an event never counts twice. The (type, container, occurred_at, id) indexes (engine/db.py) hold each
container's events of one type in that order; what reads them fastest differs by database and container:
- the first step over accounts and people: PostgreSQL keeps each container's first row of an index-ordered
  read (DISTINCT ON); SQLite, which has no DISTINCT ON, takes the earliest time per container from the index
  alone, then the smallest id at that time;
- a later step: SQLite walks each container's events from the previous step's event and stops at the first
  match (a LIMIT 1 per container), where a payload condition would otherwise read every later match's row;
  PostgreSQL reads the step's matches in one ordered pass, faster there than a subquery per container;
- buying groups and opportunities, a small set listed apart from the log: every step walks each one's
  account's events (a LIMIT 1 per container) on both databases, rather than joining the log to the list.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE, FromClause

from engine.analytics.containers import EVENT, Population
from engine.analytics.selectors import Selector


def later_than(anchor: FromClause) -> ColumnElement[bool]:
    """Events after the anchor's event (cid, t, eid) in log order."""
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    return and_(occurred >= anchor.c.t, or_(occurred > anchor.c.t, event_id > anchor.c.eid))


def earlier_than(anchor: FromClause) -> ColumnElement[bool]:
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    return and_(occurred <= anchor.c.t, or_(occurred < anchor.c.t, event_id < anchor.c.eid))


def first_events(
    people: Population, selector: Selector, name: str, after: CTE | None = None, *, last: bool = False
) -> CTE:
    """cid, t, eid of each container's first event matching `selector` (after its event in `after`, if given;
    its last one with `last`); `account` too when the containers are listed (buying groups, opportunities)."""
    if last and after is not None:
        raise ValueError("the last event after another is the container's last event: leave `after` out")
    if people.listed is not None:
        origin = after if after is not None else people.listed
        first = _walked(people, selector, origin, after is not None, name, last)
    elif after is not None:
        first = _next(people, selector, after, name)
    else:
        first = _first(people, selector, name, last)
    return materialized(first.cte(name))


def materialized(cte: CTE) -> CTE:
    """The CTE computed once: a step is read by the next step and by the report, and inlining it would walk
    every container's events again for each reader."""
    return cte.prefix_with("MATERIALIZED")


def _first(people: Population, selector: Selector, name: str, last: bool) -> Select[Any]:
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    if people.dialect == "postgresql":
        # The first row of each container in the index's order (the last: read backwards).
        order = (occurred.desc(), event_id.desc()) if last else (occurred, event_id)
        return (
            people.select(people.id.label("cid"), occurred.label("t"), event_id.label("eid"))
            .where(selector.condition())
            .ext(distinct_on(people.id))
            .order_by(people.id, *order)
        )
    # SQLite has no DISTINCT ON: the earliest (latest) time per container, from the index alone, then the
    # smallest (largest) id at that time, looked up per container.
    extreme = func.max if last else func.min
    earliest = people.select(people.id.label("cid"), extreme(occurred).label("t")).where(selector.condition())
    times = materialized(earliest.group_by(people.id).cte(f"{name}_time"))
    smallest = people.select(extreme(event_id)).where(
        people.id == times.c.cid, occurred == times.c.t, selector.condition()
    )
    return select(times.c.cid, times.c.t, smallest.scalar_subquery().correlate(times).label("eid"))


def _next(people: Population, selector: Selector, after: CTE, name: str) -> Select[Any]:
    if people.dialect == "postgresql":
        # Set-based: each container's later matches in order, the first kept. PostgreSQL reads a step's events
        # in one pass faster than it runs a subquery per container (measured on 50,000 people).
        occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
        return (
            people.select(after.c.cid, occurred.label("t"), event_id.label("eid"))
            .join_from(people.source, after, after.c.cid == people.id)
            .where(selector.condition(), later_than(after))
            .ext(distinct_on(after.c.cid))
            .order_by(after.c.cid, occurred, event_id)
        )
    return _walked(people, selector, after, True, name)


def _walked(
    people: Population, selector: Selector, origin: FromClause, after: bool, name: str, last: bool = False
) -> Select[Any]:
    """Each container's events walked in log order (from its event in `origin` when `after`; backwards from the
    end with `last`), stopping at the first match, rather than every match read to take the smallest: a LIMIT 1
    per container of `origin`."""
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    # The container's own events, read through its index (a buying group's or an opportunity's: its account's).
    carried = [origin.c.cid] if people.listed is None else [origin.c.cid, origin.c.account]
    events = select(event_id, occurred.label("t")).where(*people.events_of(*carried), selector.condition())
    if after:
        events = events.where(later_than(origin))
    first = events.order_by(*((occurred.desc(), event_id.desc()) if last else (occurred, event_id))).limit(1)
    if people.dialect == "postgresql":
        following = first.lateral(f"{name}_following")
        return select(*carried, following.c.t, following.c.id.label("eid")).join_from(
            origin, following, literal_column("true")
        )
    # SQLite: a correlated subquery per container, which it cannot turn into a scan of the whole index.
    found = select(*carried, first.with_only_columns(event_id).scalar_subquery().correlate(origin).label("eid"))
    walked = materialized(found.cte(f"{name}_walked"))
    return select(*(walked.c[column.name] for column in carried), occurred.label("t"), walked.c.eid).join_from(
        walked, EVENT, event_id == walked.c.eid
    )
