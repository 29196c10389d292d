"""Flow: the most frequent sequences of one dimension that follow, lead to or surround a milestone, per container.

Each container is anchored at its first (or last) milestone event. Starting with the milestone, its path is
the milestone then the dimension values of the events after it; ending with it, the values before it then
the milestone; containing it, both, with the milestone in the middle column. Events without a value for the
dimension are skipped; consecutive equal values are one step unless repeats are included
(engine/analytics/flow_steps.py has the SQL, engine/analytics/flow_walk.py the walk from each anchor). In
each column the `top` most frequent values keep their name and the rest become "other".
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from engine.analytics.bounds import MOST_COLUMNS, MOST_TOP
from engine.analytics.choices import Container, Direction, Occurrence, Repeats
from engine.analytics.containers import EVENT, PAYLOAD, Filters, population
from engine.analytics.errors import AnalyticsError
from engine.analytics.evaluation import prepared
from engine.analytics.flow_steps import AFTER, BEFORE, anchors
from engine.analytics.flow_walk import walked
from engine.analytics.report import Report, ReportModel
from engine.analytics.selectors import Selector
from engine.collector import cycle_collector_paused

OTHER = "other"
T = TypeVar("T")


class FlowValue(ReportModel):
    value: str
    containers: int


class FlowColumn(ReportModel):
    column: int
    values: list[FlowValue]


class FlowLink(ReportModel):
    column: int  # the link goes from this column to the next
    source: str
    target: str
    containers: int


class FlowPath(ReportModel):
    start_column: int  # the column of the first step: paths shorter than the flow are aligned on the milestone
    steps: list[str]
    containers: int


class FlowReport(Report):
    report: str = "flow"
    milestone: str
    direction: Direction
    milestone_column: int
    repeats: Repeats
    occurrence: Occurrence
    dimension: str
    containers: int
    columns: list[FlowColumn]
    links: list[FlowLink]
    paths: list[FlowPath]


def dimension_value(dimension: str) -> tuple[ColumnElement[Any], ColumnElement[bool] | None]:
    """The SQL value of a dimension and the events it applies to: `type`, `node` (journey nodes entered) or
    any payload field such as `content_type`."""
    if not dimension or not dimension.replace("_", "").isalnum():
        raise AnalyticsError(f"invalid dimension '{dimension}': use type, node or a payload field such as content_type")
    if dimension == "type":
        return EVENT.c.type, None
    if dimension == "node":
        return EVENT.c.node_id, EVENT.c.type == "node_entered"
    return PAYLOAD[dimension].as_string(), None


def chosen_anchor(starts_with: str | None, ends_with: str | None, contains: str | None) -> tuple[Direction, str] | None:
    """The direction and milestone of the one anchor given, or None when not exactly one is."""
    given = {Direction.starts_with: starts_with, Direction.ends_with: ends_with, Direction.contains: contains}
    present = [(direction, text) for direction, text in given.items() if text is not None]
    return present[0] if len(present) == 1 else None


def steps_before(direction: Direction, columns: int) -> int:
    """Columns before the milestone's: none, all but its own, or half of the rest (an odd one goes after it)."""
    match direction:
        case Direction.starts_with:
            return 0
        case Direction.ends_with:
            return columns - 1
        case Direction.contains:
            return (columns - 1) // 2


@cycle_collector_paused()
def flow(
    engine: Engine,
    milestone: Selector,
    direction: Direction,
    container: Container,
    filters: Filters,
    dimension: str = "type",
    columns: int = 5,
    top: int = 5,
    *,
    repeats: Repeats = Repeats.exclude,
    occurrence: Occurrence = Occurrence.first,
) -> FlowReport:
    if columns < 2 or top < 1:
        raise AnalyticsError("a flow needs at least 2 columns and at least 1 value per column")
    if columns > MOST_COLUMNS or top > MOST_TOP:
        raise AnalyticsError(f"a flow has at most {MOST_COLUMNS} columns and {MOST_TOP} values per column")
    if direction is Direction.contains and columns < 3:
        raise AnalyticsError(
            "a flow containing a milestone needs at least 3 columns: one before it, its own, one after"
        )
    value, applies = dimension_value(dimension)
    people = population(container, filters, engine.dialect.name)
    anchor = anchors(people, prepared(engine, people, milestone), occurrence)
    before = steps_before(direction, columns)
    found = walked(engine, people, anchor, value, applies, {BEFORE: before, AFTER: columns - 1 - before}, repeats)
    label = milestone.label
    # Each path with the column of its first step: the milestone always lands in column `before`.
    sequences = [(before - len(ahead), [*reversed(ahead), label, *behind]) for ahead, behind in found.values()]
    return FlowReport(
        container=container,
        filters=filters.describe(),
        milestone=label,
        direction=direction,
        milestone_column=before + 1,
        repeats=repeats,
        occurrence=occurrence,
        dimension=dimension,
        containers=len(sequences),
        **_counted(sequences, columns, top),
    )


def _counted(sequences: list[tuple[int, list[str]]], columns: int, top: int) -> dict[str, Any]:
    """Columns, links and paths of the aligned sequences, rare values per column grouped as `other`.

    Containers share few distinct paths: each is counted once, weighted by how many containers took it."""
    weights = Counter((start, tuple(sequence)) for start, sequence in sequences)
    kept: list[set[str]] = []
    for column in range(columns):
        counts: Counter[str] = Counter()
        for (start, steps), weight in weights.items():
            if start <= column < start + len(steps):
                counts[steps[column - start]] += weight
        kept.append({name for name, _ in _ranked(counts)[:top]})
    grouped: Counter[tuple[int, tuple[str, ...]]] = Counter()
    for (start, steps), weight in weights.items():
        named = tuple(step if step in kept[start + index] else OTHER for index, step in enumerate(steps))
        grouped[start, named] += weight
    column_counts: list[Counter[str]] = [Counter() for _ in range(columns)]
    link_counts: Counter[tuple[int, str, str]] = Counter()
    for (start, steps), weight in grouped.items():
        for index, step in enumerate(steps):
            column_counts[start + index][step] += weight
            if index:
                link_counts[start + index - 1, steps[index - 1], step] += weight
    column_models = [
        FlowColumn(column=column + 1, values=[FlowValue(value=name, containers=n) for name, n in _ranked(counts)])
        for column, counts in enumerate(column_counts)
    ]
    links = [
        FlowLink(column=column + 1, source=source, target=target, containers=count)
        for (column, source, target), count in sorted(
            link_counts.items(), key=lambda item: (item[0][0], -item[1], item[0][1:])
        )
    ]
    # Ties by the steps' names in order, then by where the path starts (the same names can sit in other columns).
    ranked_paths = sorted(grouped.items(), key=lambda item: (-item[1], item[0][1], item[0][0]))
    paths = [
        FlowPath(start_column=start + 1, steps=list(names), containers=count)
        for (start, names), count in ranked_paths[:top]
    ]
    return {"columns": column_models, "links": links, "paths": paths}


def _ranked(counts: Counter[T]) -> list[tuple[T, int]]:
    """Most frequent first; ties in name order, so the report is the same on every database."""
    return sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
