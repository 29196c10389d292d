"""The SQL of a flow: each container's anchor (its first or last milestone event) and the dimension values of
the events on either side of it, numbered outwards from the anchor by window functions, in the database.

Only events with a value for the dimension take part (for `node`, only `node_entered` events), in log
order: time, then the log's id, so two events at the same instant keep the order they were recorded in.
With repeats excluded, an event whose value equals the previous such event's on the same side of the
anchor is left out, so a run of equal values is one step; the anchor itself is on neither side and never
merges with a neighbour.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, literal, or_, select, union_all
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from engine.analytics.choices import Occurrence, Repeats
from engine.analytics.containers import EVENT, Population
from engine.analytics.firsts import earlier_than, first_events, later_than
from engine.analytics.selectors import Selector

BEFORE, AFTER = 0, 1  # the `side` column of a step


def anchors(people: Population, selector: Selector, occurrence: Occurrence) -> CTE:
    """cid, t, eid of each container's first or last event matching `selector`, in log order."""
    if occurrence is Occurrence.first:
        return first_events(people, selector, "anchor")
    # The mirror of first_events: the latest time per container, then the largest id at that time.
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    latest = people.select(people.id.label("cid"), func.max(occurred).label("t")).group_by(people.id)
    times = latest.where(selector.condition()).cte("anchor_time")
    chosen = people.select(times.c.cid, times.c.t, func.max(event_id).label("eid"))
    chosen = chosen.join_from(people.source, times, and_(times.c.cid == people.id, occurred == times.c.t))
    return chosen.where(selector.condition()).group_by(times.c.cid, times.c.t).cte("anchor")


def steps(
    people: Population,
    anchor: CTE,
    value: ColumnElement[Any],
    applies: ColumnElement[bool] | None,
    limits: dict[int, int],
    repeats: Repeats,
) -> Select[Any]:
    """cid, side, value of every anchored container's steps, at most `limits[side]` on each side, in order
    outwards from the anchor; a container with no steps is one row whose side and value are NULL.

    One statement for the anchors and their steps: the anchor (a scan of the milestone's events) is computed
    once, not once for the list of anchored containers and again for their steps."""
    parts = [_side(people, anchor, value, applies, side, limit, repeats) for side, limit in limits.items() if limit]
    merged = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("steps")
    return (
        select(anchor.c.cid, merged.c.side, merged.c.value)
        .select_from(anchor.outerjoin(merged, merged.c.cid == anchor.c.cid))
        .order_by(anchor.c.cid, merged.c.side, merged.c.position)
    )


def _side(
    people: Population,
    anchor: CTE,
    value: ColumnElement[Any],
    applies: ColumnElement[bool] | None,
    side: int,
    limit: int,
    repeats: Repeats,
) -> Select[Any]:
    """cid, side, position, value of the first `limit` steps on one side of each anchor, walking outwards."""
    occurred, event_id = EVENT.c.occurred_at, EVENT.c.id
    outwards = (occurred, event_id) if side == AFTER else (occurred.desc(), event_id.desc())
    conditions = [value.is_not(None), later_than(anchor) if side == AFTER else earlier_than(anchor)]
    if applies is not None:
        conditions.append(applies)
    events = people.select(anchor.c.cid, value.label("value")).join_from(
        people.source, anchor, anchor.c.cid == people.id
    )
    if repeats is Repeats.include:
        numbered = events.add_columns(
            func.row_number().over(partition_by=anchor.c.cid, order_by=outwards).label("position")
        ).where(*conditions)
    else:
        # Runs of one value, as seen walking outwards from the anchor: keep each run's first event (the one
        # nearest the anchor; a run is one step whichever way it is walked), then number what is kept.
        neighbour = func.lag(value).over(partition_by=anchor.c.cid, order_by=outwards).label("neighbour")
        walked = events.add_columns(
            neighbour, func.row_number().over(partition_by=anchor.c.cid, order_by=outwards).label("walked")
        )
        runs = walked.where(*conditions).subquery(f"runs_{side}")
        kept = or_(runs.c.neighbour.is_(None), runs.c.neighbour != runs.c.value)
        position = func.row_number().over(partition_by=runs.c.cid, order_by=runs.c.walked).label("position")
        numbered = select(runs.c.cid, runs.c.value, position).where(kept)
    ranked = numbered.subquery(f"side_{side}")
    return select(ranked.c.cid, literal(side).label("side"), ranked.c.position, ranked.c.value).where(
        ranked.c.position <= limit
    )
