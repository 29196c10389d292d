"""The first event of each container matching a selector, in log order: by time, ties by the log's id.

Events are totally ordered by (occurred_at, id), so "after" never confuses two events at the same instant
and an event never counts twice. Two passes keep both cheap on the (type, container, occurred_at) indexes
(engine/db.py): the earliest time per container, then the smallest id at that time.
"""

from __future__ import annotations

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
    if after is None:
        earliest = people.select(people.id.label("cid"), func.min(occurred).label("t")).group_by(people.id)
        times = earliest.where(selector.condition()).cte(f"{name}_time")
        chosen = people.select(times.c.cid, times.c.t, func.min(event_id).label("eid"))
        chosen = chosen.join_from(people.source, times, and_(times.c.cid == people.id, occurred == times.c.t))
        return chosen.where(selector.condition()).group_by(times.c.cid, times.c.t).cte(name)
    # The previous event's (t, eid) travel along, so the second pass needs no second join with `after`.
    earliest = (
        people.select(
            after.c.cid, func.min(occurred).label("t"), after.c.t.label("after_t"), after.c.eid.label("after_eid")
        )
        .join_from(people.source, after, after.c.cid == people.id)
        .where(selector.condition(), later_than(after))
        .group_by(after.c.cid, after.c.t, after.c.eid)
    )
    times = earliest.cte(f"{name}_time")
    chosen = (
        people.select(times.c.cid, times.c.t, func.min(event_id).label("eid"))
        .join_from(people.source, times, and_(times.c.cid == people.id, occurred == times.c.t))
        .where(selector.condition(), or_(occurred > times.c.after_t, event_id > times.c.after_eid))
        .group_by(times.c.cid, times.c.t)
    )
    return chosen.cte(name)
