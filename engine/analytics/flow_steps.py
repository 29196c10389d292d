"""The SQL of a flow: each container's anchor (its first or last milestone event), and the events nearest a
starting point on one side of it, read through an index walk that stops after a given number of rows.

Only events with a value for the dimension take part (for `node`, only `node_entered` events), in log
order: time, then the log's id, so two events at the same instant keep the order they were recorded in.
A starting point is a container's anchor, or the last event a previous read reached (engine/analytics/
flow_walk.py turns the events into steps and asks for more when repeats used them up).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Column, Integer, String, cast, func, literal, select, true, type_coerce, union_all
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE, FromClause
from sqlalchemy.types import NullType

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
    cid: ColumnElement[Any]
    eid: ColumnElement[Any]
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
    """One row per start (cid, t, eid, account) and side with the `counts[side]` events nearest the start on
    that side, or all there are when fewer, walking outwards. `walks` reads the rows.

    One row per start and side rather than one per event: a flow over 30,000 people reads 170,000 events,
    and turning each into a row in Python cost more than the read."""
    parts = [_side(people, starts, value, applies, side, count, dialect) for side, count in counts.items()]
    return parts[0] if len(parts) == 1 else union_all(*parts)  # type: ignore[return-value]


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
    near = select(event_id.label("eid"), value.label("value")).where(*conditions).correlate(starts)
    # Read in the index's own order, (container, occurred_at, id), so nothing is sorted. Both databases feed an
    # aggregate the rows of an ordered, limited subquery in that order (the subquery's plan is an index scan
    # under a LIMIT, with nothing between to reorder them; an ORDER BY inside the aggregate would sort each
    # start's rows again, 0.1-0.2 s of a PostgreSQL flow over 31,562 people). The flow's tests on ties and long
    # runs check the order on both.
    walk = near.order_by(*outwards).limit(count).subquery("walk")
    if dialect == "postgresql":
        # Two arrays, not JSON: the driver reads arrays four times faster. Untyped: the driver returns lists
        # already, which SQLAlchemy's ARRAY would copy item by item.
        arrays = select(
            type_coerce(func.array_agg(walk.c.eid), NullType()).label("eids"),
            type_coerce(func.array_agg(walk.c.value), NullType()).label("event_values"),
        ).lateral("read")
        return select(starts.c.cid, literal(side).label("side"), arrays.c.eids, arrays.c.event_values).join_from(
            starts, arrays, true()
        )
    # SQLite, which has neither LATERAL nor arrays: one JSON list of [eid, value] per start.
    pairs = func.json_group_array(func.json_array(walk.c.eid, walk.c.value))
    read = select(pairs).select_from(walk).scalar_subquery()
    return select(starts.c.cid, literal(side).label("side"), read.label("pairs"), literal(None).label("event_values"))


def walks(rows: Iterable[Sequence[Any]], dialect: str) -> Iterator[tuple[Any, int, list[int], list[Any]]]:
    """cid, side, event ids and values walking outwards, of each row of a `nearest` read."""
    if dialect == "postgresql":  # two arrays, None when the side has no event
        for cid, side, event_ids, values in rows:
            yield cid, side, event_ids or [], values or []
        return
    for cid, side, pairs, _ in rows:  # a JSON list of [eid, value]
        read = json.loads(pairs)
        yield cid, side, [eid for eid, _ in read], [event_value for _, event_value in read]
