"""A flow's steps, walked outwards from each container's anchor over the few events the database reads near it.

The database reads a handful of events per container and side (engine/analytics/flow_steps.py); here they
become steps: with repeats excluded a run of equal values is one step (the anchor never merges with its
neighbour). A container whose read ended inside its runs before giving all its steps is read further, from
the last event read, twice as many events each round. So the steps are exactly those of a walk over the whole
history, while a container's events are each read at most once and the rounds grow only with the longest run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from engine.analytics.choices import Repeats
from engine.analytics.containers import Population
from engine.analytics.flow_steps import nearest, resumed, started, walks

READ_PER_STEP = 2  # events first read per step wanted, repeats excluded: most runs are short

Steps = tuple[list[Any], list[Any]]  # the values before the anchor (nearest first) and after it


def walked(
    engine: Engine,
    people: Population,
    anchor: CTE,
    value: ColumnElement[Any],
    applies: ColumnElement[bool] | None,
    limits: dict[int, int],
    repeats: Repeats,
) -> dict[Any, Steps]:
    """Each anchored container's steps, at most `limits[side]` on each side, in order outwards from its anchor."""
    merge = repeats is Repeats.exclude
    wanted = {side: limit for side, limit in limits.items() if limit}
    # Repeats included, every event is a step: reading as many events as steps is always enough.
    counts = {side: limit * (READ_PER_STEP if merge else 1) for side, limit in wanted.items()}
    dialect = engine.dialect.name
    found: dict[Any, Steps] = {}
    with engine.connect() as connection:
        query = nearest(people, started(people, anchor), value, applies, counts, dialect)
        unfinished = _take(walks(connection.execute(query).all(), dialect), found, counts, wanted, merge)
        while unfinished:
            counts = {side: count * 2 for side, count in counts.items()}
            carried_on: list[tuple[int, Any, int]] = []
            for side in wanted:
                points = [(cid, eid) for walk_side, cid, eid in unfinished if walk_side == side]
                if points:
                    starts = resumed(people, points, dialect)
                    query = nearest(people, starts, value, applies, {side: counts[side]}, dialect)
                    carried_on += _take(walks(connection.execute(query).all(), dialect), found, counts, wanted, merge)
            unfinished = carried_on
    return found


def _take(
    read: Iterable[tuple[Any, int, list[int], list[Any]]],
    found: dict[Any, Steps],
    counts: dict[int, int],
    wanted: dict[int, int],
    merge: bool,
) -> list[tuple[int, Any, int]]:
    """Adds the events read (cid, side, event ids, values: flow_steps.walks) to the containers' steps; returns
    (side, cid, last event id) of each walk that used up its read before reaching its steps."""
    unfinished = []
    for cid, side, event_ids, values in read:
        steps = found.setdefault(cid, ([], []))[side]
        _extend(steps, values, wanted[side], merge)
        if len(steps) < wanted[side] and len(event_ids) >= counts[side]:
            unfinished.append((side, cid, event_ids[-1]))
    return unfinished


def _extend(steps: list[Any], values: Sequence[Any], limit: int, merge: bool) -> None:
    """Walks on from the steps so far; an event equal to the last one (the last step's value) merges into it."""
    for event_value in values:
        if len(steps) == limit:
            return
        if not (merge and steps and steps[-1] == event_value):
            steps.append(event_value)
