"""Branching canvas: nodes joined by edges as eventual paths, with branches and merges (CJA's journey canvas).

A container enters a start node (one with no incoming edge) at its first matching event. It goes through the
edge A->B at its first B-event strictly after the moment it reached A, in log order (time, then the log's id),
and it reaches B at the earliest such event over B's incoming edges. Taking the earliest moment at every node
makes the counts exact: a container reaches B exactly when some path of the graph from a start node to B is
matched by events in log order, one event per node. Per node: containers, conversion from its start nodes and
from its previous nodes, fallout (reached it, went on along none of its edges); per edge: containers and the
median time from reaching its source to going through it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, literal, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.sql.selectable import CTE

from engine.analytics.canvas_graph import CanvasGraph
from engine.analytics.choices import Container
from engine.analytics.containers import Filters, population
from engine.analytics.evaluation import prepared
from engine.analytics.firsts import first_events
from engine.analytics.report import Report, ReportModel
from engine.analytics.timing import median_seconds, percent, utc
from engine.collector import cycle_collector_paused

START, EDGE = 0, 1  # the kinds of rows the query returns: a start node reached, an edge gone through


class BranchNode(ReportModel):
    node: str
    label: str  # its event selector
    layer: int  # longest way from a start node; 0 for start nodes
    containers: int  # reached it
    entered: int  # reached one of the start nodes it descends from: the base of from_start_pct
    from_start_pct: float | None
    previous: int | None  # reached one of its previous nodes: the base of from_previous_pct (None at a start)
    from_previous_pct: float | None
    fallout: int | None  # reached it and went on along none of its edges (None for a node with no edges out)
    fallout_pct: float | None  # of the containers that reached it


class BranchEdge(ReportModel):
    source: str
    target: str
    containers: int  # went from source to target
    from_previous_pct: float | None  # of the containers that reached the source
    median_seconds: float | None  # from reaching the source to the target event that followed


class BranchingReport(Report):
    report: str = "branching"
    nodes: list[BranchNode]
    edges: list[BranchEdge]


@cycle_collector_paused()
def branching(engine: Engine, canvas: CanvasGraph, container: Container, filters: Filters) -> BranchingReport:
    """Counts, conversions, fallout and median times of the canvas, computed in the database."""
    people = population(container, filters, engine.dialect.name)
    selectors = {node.id: prepared(engine, people, node.selector) for node in canvas.nodes}
    position = {node.id: index for index, node in enumerate(canvas.nodes)}
    reached: dict[str, CTE] = {}  # node id -> cid, t, eid of each container's arrival
    through: dict[int, CTE] = {}  # per edge: cid, t, eid of the target's first event after the source's arrival
    for index, node in enumerate(canvas.nodes):
        incoming = [edge for edge, (_, target) in enumerate(canvas.edges) if target == node.id]
        if not incoming:
            reached[node.id] = first_events(people, selectors[node.id], f"node_{index}")
            continue
        for edge in incoming:  # nodes come in layers, so each edge's source is reached already
            source = canvas.edges[edge][0]
            through[edge] = first_events(people, selectors[node.id], f"edge_{edge}", reached[source])
        arrivals = [through[edge] for edge in incoming]
        reached[node.id] = arrivals[0] if len(arrivals) == 1 else _earliest(arrivals, f"node_{index}")
    starts = [(position[node.id], reached[node.id]) for node in canvas.nodes if node.layer == 0]
    # One row per (start node or edge, container), stacked rather than joined (see canvas.py).
    rows = union_all(
        *(select(literal(START).label("kind"), literal(i).label("i"), c.c.cid, c.c.t) for i, c in starts),
        *(
            select(literal(EDGE).label("kind"), literal(i).label("i"), c.c.cid, c.c.t)
            for i, c in sorted(through.items())
        ),
    )
    start_times: dict[int, dict[str, datetime]] = {index: {} for index, _ in starts}
    edge_times: list[dict[str, datetime]] = [{} for _ in canvas.edges]
    with engine.connect() as connection:
        for kind, index, cid, moment in connection.execute(rows).all():  # one fetch, not one per row
            (start_times[index] if kind == START else edge_times[index])[cid] = utc(moment)
    return _report(canvas, container, filters, start_times, edge_times)


def _earliest(arrivals: list[CTE], name: str) -> CTE:
    """A merge: each container's earliest arrival over the incoming edges, in log order (time, then id)."""
    union = union_all(*(select(a.c.cid, a.c.t, a.c.eid) for a in arrivals)).cte(f"{name}_in")
    first = select(union.c.cid, func.min(union.c.t).label("t")).group_by(union.c.cid).cte(f"{name}_time")
    return (
        select(union.c.cid, union.c.t, func.min(union.c.eid).label("eid"))
        .join_from(union, first, and_(union.c.cid == first.c.cid, union.c.t == first.c.t))
        .group_by(union.c.cid, union.c.t)
        .cte(name)
    )


def _report(
    canvas: CanvasGraph,
    container: Container,
    filters: Filters,
    start_times: dict[int, dict[str, datetime]],
    edge_times: list[dict[str, datetime]],
) -> BranchingReport:
    """The report from each container's moments: start nodes entered and edges gone through."""
    arrival: dict[str, dict[str, datetime]] = {}
    for index, node in enumerate(canvas.nodes):
        if node.layer == 0:
            arrival[node.id] = start_times[index]
            continue
        moments: dict[str, datetime] = {}
        for edge, (_, target) in enumerate(canvas.edges):
            if target == node.id:
                for cid, moment in edge_times[edge].items():
                    moments[cid] = min(moment, moments.get(cid, moment))
        arrival[node.id] = moments
    nodes = []
    for node in canvas.nodes:
        count = len(arrival[node.id])
        entered = _union([arrival[start] for start in canvas.starts_above(node.id)])
        previous = _union([arrival[before] for before in canvas.predecessors(node.id)]) if node.layer else None
        onward = [edge_times[e] for e, (source, _) in enumerate(canvas.edges) if source == node.id]
        fallout = len(set(arrival[node.id]).difference(*onward)) if onward else None
        nodes.append(
            BranchNode(
                node=node.id,
                label=node.selector.label,
                layer=node.layer,
                containers=count,
                entered=entered,
                from_start_pct=percent(count, entered),
                previous=previous,
                from_previous_pct=percent(count, previous) if previous is not None else None,
                fallout=fallout,
                fallout_pct=percent(fallout, count) if fallout is not None else None,
            )
        )
    edges = []
    for (source, target), moments in zip(canvas.edges, edge_times, strict=True):
        gaps = [(moment - arrival[source][cid]).total_seconds() for cid, moment in moments.items()]
        edges.append(
            BranchEdge(
                source=source,
                target=target,
                containers=len(moments),
                from_previous_pct=percent(len(moments), len(arrival[source])),
                median_seconds=median_seconds(gaps),
            )
        )
    return BranchingReport(container=container, filters=filters.describe(), nodes=nodes, edges=edges)


def _union(groups: list[dict[str, datetime]]) -> int:
    """How many containers are in at least one of the groups."""
    return len(set[str]().union(*groups))
