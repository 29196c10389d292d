"""The SQL of a flow: each container's anchor (its first or last milestone event), and the events nearest a
starting point on one side of it, read through an index walk that stops after a given number of rows.

Only events with a value for the dimension take part (for `node`, only `node_entered` events), in log
order: time, then the log's id, so two events at the same instant keep the order they were recorded in.
A starting point is a container's anchor, or the last event a previous read reached (engine/analytics/
flow_walk.py turns the events into steps and asks for more when repeats used them up).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Integer, String, cast, func, literal, select, true, union_all
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE, FromClause

from engine.analytics.choices import Occurrence
from engine.analytics.containers import EVENT, Population
from engine.analytics.firsts import earlier_than, first_events, later_than
from engine.analytics.selectors import Selector

BEFORE, AFTER = 0, 1  # the `side` column of an event read


def anchors(people: Population, selector: Selector, occurrence: Occurrence) -> CTE:
    """cid, t, eid of each container's first or last event matching `selector`, in log order."""
    return first_events(people, selector, "anchor", last=occurrence is Occurrence.last)


def started(people: Population, anchor: CTE) -> FromClause:
    """cid, t, eid, account of each anchor: where each container's walks start. A buying group's or an
    opportunity's walk reads its account, which its anchor carries (first_events); an account's or a person's
    walk does not need one."""
    account = anchor.c.account if people.listed is not None else literal(None).label("account")
    return select(anchor.c.cid, anchor.c.t, anchor.c.eid, account).subquery("started")


def resumed(people: Population, points: Sequence[tuple[Any, int]], dialect: str) -> FromClause:
    """cid, t, eid, account of each (container, event id): where a walk that needs more events carries on from.

    The points travel as one JSON parameter: thousands of bound values would cost more to compile than the
    read itself. Only ids travel back to the database: the time is read from the log, never round-tripped
    through Python."""
    listing = literal(json.dumps(list(points)), String)
    if dialect == "postgresql":
        point = func.jsonb_array_elements(cast(listing, JSONB)).table_valued("value").alias("point")
        cid, eid = point.c.value.op("->>")(0), point.c.value.op("->>")(1)
    else:
        point = func.json_each(listing).table_valued("value").alias("point")
        cid, eid = func.json_extract(point.c.value, "$[0]"), func.json_extract(point.c.value, "$[1]")
    reached = select(cast(cid, people.id.type).label("cid"), cast(eid, Integer).label("eid")).cte("reached")
    last = EVENT.alias("last_read")
    return (
        select(reached.c.cid, last.c.occurred_at.label("t"), reached.c.eid, last.c.account_id.label("account"))
        .join_from(reached, last, last.c.id == reached.c.eid)
        .subquery("resumed")
    )


def nearest(
    people: Population,
    starts: FromClause,
    value: ColumnElement[Any],
    applies: ColumnElement[bool] | None,
    counts: dict[int, int],
    dialect: str,
) -> Select[Any]:
    """cid, side, eid, value of the `counts[side]` events nearest each start (cid, t, eid, account) on each
    side, or of all there are when fewer, in log order per container and side (PostgreSQL may add the events at
    the same instant as the last one: more of the walk, never a gap); a start with no event on a side is one
    row whose eid is NULL."""
    parts = [_side(people, starts, value, applies, side, count, dialect) for side, count in counts.items()]
    merged = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("near")
    # Sorted by time but without it: only the order comes back, no time is converted in Python.
    return select(merged.c.cid, merged.c.side, merged.c.eid, merged.c.value).order_by(
        merged.c.cid, merged.c.side, merged.c.t, merged.c.eid
    )


def _side(
    people: Population,
    starts: FromClause,
    value: ColumnElement[Any],
    applies: ColumnElement[bool] | None,
    side: int,
    count: int,
    dialect: str,
) -> Select[Any]:
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    # Walking outwards from the start, as the (container, occurred_at) indexes are ordered (ties by id), so
    # the database stops after `count` rows instead of reading the container's whole history.
    outwards = (occurred, event_id) if side == AFTER else (occurred.desc(), event_id.desc())
    beyond = later_than(starts) if side == AFTER else earlier_than(starts)
    # Every event of a group or an opportunity is of its account, the account of the start's event: the
    # database walks that account's (account, time) index instead of finding each start's events through the
    # group or opportunity set.
    conditions = [*people.events_of(starts.c.cid, starts.c.account), beyond]
    if not (isinstance(value, Column) and not value.nullable):
        # Checked only where it can fail: a NOT NULL column's check would make each step read the event's row,
        # where without it the container's index alone answers (the event type, over accounts).
        conditions.append(value.is_not(None))
    if applies is not None:
        conditions.append(applies)
    near = select().select_from(EVENT).where(*conditions)
    if dialect == "postgresql":
        # PostgreSQL's (container, time) indexes give a start's events in time order only: ordering by id as
        # well would sort each start's events. The events at the last instant read come along instead: still
        # the walk's first events, at least `count` of them, put in log order by the statement's ORDER BY.
        near = near.order_by(outwards[0]).fetch(count, with_ties=True)
        walked = near.add_columns(event_id.label("eid"), occurred.label("t"), value.label("value")).lateral()
        return select(starts.c.cid, literal(side).label("side"), walked.c.eid, walked.c.t, walked.c.value).select_from(
            starts.outerjoin(walked, true())
        )
    # SQLite has no LATERAL: the ids of each start's nearest events, a correlated subquery run once per start,
    # pick the log's rows by primary key. Only `starts` correlates: the subquery reads the log on its own.
    ids = near.add_columns(event_id).order_by(*outwards).limit(count).correlate(starts)
    return select(
        starts.c.cid, literal(side).label("side"), event_id.label("eid"), occurred.label("t"), value.label("value")
    ).select_from(starts.outerjoin(EVENT, event_id.in_(ids)))
