"""The first event of each container matching a selector, in log order: by time, ties by the log's id.

Events are totally ordered by (occurred_at, id), so "after" never confuses two events at the same instant
and an event never counts twice. Two passes keep both cheap on the (type, account_id, occurred_at) index:
the earliest time per container, then the smallest id at that time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from engine.analytics.containers import EVENT, Population
from engine.analytics.selectors import Selector


def later_than(anchor: CTE) -> ColumnElement[bool]:
    """Events after the anchor's event (cid, t, eid) in log order."""
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    return and_(occurred >= anchor.c.t, or_(occurred > anchor.c.t, event_id > anchor.c.eid))


def earlier_than(anchor: CTE) -> ColumnElement[bool]:
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    return and_(occurred <= anchor.c.t, or_(occurred < anchor.c.t, event_id < anchor.c.eid))


def first_events(people: Population, selector: Selector, name: str, after: CTE | None = None) -> CTE:
    """cid, t, eid of each container's first event matching `selector` (after its event in `after`, if given)."""
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    container: ColumnElement[Any] = people.id if after is None else after.c.cid
    earliest = people.select(container.label("cid"), func.min(occurred).label("t")).where(selector.condition())
    if after is not None:
        earliest = earliest.join_from(people.source, after, after.c.cid == people.id).where(later_than(after))
    times = earliest.group_by(container).cte(f"{name}_time")
    chosen = (
        people.select(times.c.cid, times.c.t, func.min(event_id).label("eid"))
        .join_from(people.source, times, and_(times.c.cid == people.id, occurred == times.c.t))
        .where(selector.condition())
    )
    if after is not None:
        chosen = chosen.join(after, after.c.cid == times.c.cid).where(later_than(after))
    return chosen.group_by(times.c.cid, times.c.t).cte(name)
