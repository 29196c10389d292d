"""Flow: the most frequent sequences of one dimension that follow or lead to a milestone, per container.

Each container is anchored at its first milestone event. Starting with the milestone, its path is the
milestone then the dimension values of its next `columns - 1` events; ending with it, the `columns - 1`
events before it then the milestone (in log order: time, then the log's id). Events without a value for
the dimension are skipped. Repeats stay in the path, so loops show; in each
column the `top` most frequent values keep their name and the rest become "other".
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from engine.analytics.bounds import MOST_COLUMNS, MOST_TOP
from engine.analytics.choices import Container, Direction
from engine.analytics.containers import EVENT, PAYLOAD, Filters, population
from engine.analytics.errors import AnalyticsError
from engine.analytics.evaluation import prepared
from engine.analytics.firsts import earlier_than, first_events, later_than
from engine.analytics.report import Report, ReportModel
from engine.analytics.selectors import Selector
from engine.db import ActivityEvent

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
    steps: list[str]
    containers: int


class FlowReport(Report):
    report: str = "flow"
    milestone: str
    direction: Direction
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


def flow(
    engine: Engine,
    milestone: Selector,
    direction: Direction,
    container: Container,
    filters: Filters,
    dimension: str = "type",
    columns: int = 5,
    top: int = 5,
) -> FlowReport:
    if columns < 2 or top < 1:
        raise AnalyticsError("a flow needs at least 2 columns and at least 1 value per column")
    if columns > MOST_COLUMNS or top > MOST_TOP:
        raise AnalyticsError(f"a flow has at most {MOST_COLUMNS} columns and {MOST_TOP} values per column")
    value, applies = dimension_value(dimension)
    people = population(container, filters)
    occurred, event_id = col(ActivityEvent.occurred_at), col(ActivityEvent.id)
    anchor = first_events(people, prepared(engine, people, milestone), "anchor")
    after = direction is Direction.starts_with
    order = (occurred, event_id) if after else (occurred.desc(), event_id.desc())
    ranked = (
        people.select(
            anchor.c.cid, value.label("value"), func.row_number().over(partition_by=anchor.c.cid, order_by=order)
        )
        .join_from(people.source, anchor, anchor.c.cid == people.id)
        .where(value.is_not(None), later_than(anchor) if after else earlier_than(anchor))
    )
    if applies is not None:
        ranked = ranked.where(applies)
    steps = ranked.subquery("ranked")
    position = list(steps.c)[2]
    with engine.connect() as connection:
        anchored = [cid for (cid,) in connection.execute(select(anchor.c.cid))]
        paths: dict[str, list[str]] = {cid: [] for cid in anchored}
        query = select(steps.c.cid, steps.c.value).where(position < columns).order_by(steps.c.cid, position)
        for cid, step in connection.execute(query):
            paths[cid].append(step)
    label = milestone.label
    sequences = [[label, *path] if after else [*reversed(path), label] for path in paths.values()]
    return _report(sequences, label, direction, dimension, columns, top, container, filters)


def _report(
    sequences: list[list[str]],
    label: str,
    direction: Direction,
    dimension: str,
    columns: int,
    top: int,
    container: Container,
    filters: Filters,
) -> FlowReport:
    after = direction is Direction.starts_with
    # Column positions: from the milestone forwards, or right-aligned so the milestone is the last column.
    placed = [
        {(index if after else columns - len(sequence) + index): step for index, step in enumerate(sequence)}
        for sequence in sequences
    ]
    kept: list[set[str]] = []
    for column in range(columns):
        counts = Counter(path[column] for path in placed if column in path)
        kept.append({name for name, _ in _ranked(counts)[:top]})
    grouped = [{column: step if step in kept[column] else OTHER for column, step in path.items()} for path in placed]
    column_models = []
    for column in range(columns):
        counts = Counter(path[column] for path in grouped if column in path)
        values = [FlowValue(value=name, containers=count) for name, count in _ranked(counts)]
        column_models.append(FlowColumn(column=column + 1, values=values))
    link_counts = Counter(
        (column, path[column], path[column + 1])
        for path in grouped
        for column in range(columns - 1)
        if column in path and column + 1 in path
    )
    links = [
        FlowLink(column=column + 1, source=source, target=target, containers=count)
        for (column, source, target), count in sorted(
            link_counts.items(), key=lambda item: (item[0][0], -item[1], item[0][1:])
        )
    ]
    path_counts = Counter(tuple(path[column] for column in sorted(path)) for path in grouped)
    paths = [FlowPath(steps=list(steps), containers=count) for steps, count in _ranked(path_counts)[:top]]
    return FlowReport(
        container=container,
        filters=filters.describe(),
        milestone=label,
        direction=direction,
        dimension=dimension,
        containers=len(sequences),
        columns=column_models,
        links=links,
        paths=paths,
    )


def _ranked(counts: Counter[T]) -> list[tuple[T, int]]:
    """Most frequent first; ties in name order, so the report is the same on every database."""
    return sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
