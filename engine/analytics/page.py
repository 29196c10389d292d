"""Self-contained HTML pages: the report's chart (plotly, its JavaScript embedded, so no network is needed)
above the report's tables. Every cell carries its exact value in `data-value` (JSON) for scripts and tests.
"""

from __future__ import annotations

import json
from collections import deque
from html import escape

import plotly.graph_objects as go

from engine.analytics.branching import BranchingReport
from engine.analytics.branching_chart import sankey
from engine.analytics.canvas import CanvasReport
from engine.analytics.cohort import CohortReport
from engine.analytics.cohort_chart import cohort_figure
from engine.analytics.email_report import EmailReport
from engine.analytics.email_views import email_figure
from engine.analytics.flow import FlowReport
from engine.analytics.nodes import NodeCount, NodesReport
from engine.analytics.report import Report
from engine.analytics.tables import Table, display, tables
from engine.language import graph, journey_refs

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1f2933; }
h1 { font-size: 20px; margin-bottom: 4px; } .filters { color: #52606d; margin-top: 0; }
table { border-collapse: collapse; margin: 12px 0 28px; font-size: 13px; }
th, td { border: 1px solid #cbd2d9; padding: 4px 8px; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f0f4f8; }
"""


def render(report: Report) -> str:
    """The whole page for a report."""
    figure = figure_for(report)
    chart = figure.to_html(full_html=False, include_plotlyjs=True) if figure is not None else ""
    filters = ", ".join(f"{name}: {value}" for name, value in report.filters.items()) or "no filters"
    title = f"{report.report.title()} · {report.container}"
    body = "".join(_table(table) for table in tables(report))
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n"
        f'<body data-report="{escape(report.report)}"><h1>{escape(title)}</h1>'
        f'<p class="filters">{escape(filters)}</p>\n{chart}\n{body}</body></html>\n'
    )


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in table.columns)
    rows = []
    for row in table.rows:
        cells = "".join(
            f'<td class="{"number" if isinstance(value, int | float) else "text"}" '
            f"data-value='{escape(json.dumps(value), quote=True)}'>{escape(display(value))}</td>"
            for value in row
        )
        rows.append(f"<tr>{cells}</tr>")
    return (
        f'<h2>{escape(table.title)}</h2><table data-table="{escape(table.name)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>\n"
    )


def figure_for(report: Report) -> go.Figure | None:
    match report:
        case CanvasReport():
            return _funnel(report)
        case BranchingReport():
            return sankey(report)
        case CohortReport():
            return cohort_figure(report)
        case EmailReport():
            return email_figure(report)
        case FlowReport():
            return _sankey(report)
        case NodesReport():
            return _graph(report)
    return None  # the timeline is a list: its table says it all


def _funnel(report: CanvasReport) -> go.Figure:
    labels = [f"{s.step}. {s.label}" for s in report.steps]
    text = [f"{s.containers} ({display(s.overall_pct)}%)" if s.overall_pct is not None else "0" for s in report.steps]
    figure = go.Figure(go.Bar(x=[s.containers for s in report.steps], y=labels, orientation="h", text=text))
    figure.update_layout(
        yaxis={"autorange": "reversed"}, xaxis_title=f"{report.container}s", height=120 + 60 * len(labels)
    )
    return figure


def _sankey(report: FlowReport) -> go.Figure:
    index: dict[tuple[int, str], int] = {}
    x: list[float] = []
    y: list[float] = []
    last = max(len(report.columns) - 1, 1)
    for column in report.columns:
        total, stacked = sum(value.containers for value in column.values), 0
        for value in column.values:
            index[(column.column, value.value)] = len(index)
            # Placed in its own column: left to itself, plotly moves a node nothing links into to the far left,
            # and paths aligned on the milestone (ends_with, contains) would lose their columns.
            x.append(0.01 + 0.98 * (column.column - 1) / last)
            y.append(0.01 + 0.98 * (stacked + value.containers / 2) / total)
            stacked += value.containers
    labels = [value for _, value in index]
    figure = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "pad": 18, "x": x, "y": y},
            link={
                "source": [index[(link.column, link.source)] for link in report.links],
                "target": [index[(link.column + 1, link.target)] for link in report.links],
                "value": [link.containers for link in report.links],
            },
        )
    )
    figure.update_layout(height=480)
    return figure


def _exits(count: NodeCount, label: str) -> int:
    """Accounts that left the node along the edge `label`. add_to_journey and remove_from_journey log their answer
    as the branch (journey_refs.OUTCOMES) and all of them go on along `next`."""
    outcomes = journey_refs.OUTCOMES.get(count.type or "") if label == "next" else None
    if outcomes:
        return sum(count.left.get(outcome, 0) for outcome in outcomes)
    return count.left.get(label, 0)


def _graph(report: NodesReport) -> go.Figure:
    """The journey's graph, laid out in layers from the start node, each node labelled with its counts."""
    depth = _layers(report)
    by_layer: dict[int, list[str]] = {}
    for node in (n.node for n in report.nodes):
        by_layer.setdefault(depth.get(node, max(depth.values(), default=0) + 1), []).append(node)
    position = {
        node: (index - (len(members) - 1) / 2, -layer)
        for layer, members in by_layer.items()
        for index, node in enumerate(members)
    }
    counts = {n.node: n for n in report.nodes}
    figure = go.Figure()
    for edge in report.edges:
        (x0, y0), (x1, y1) = position[edge.source], position[edge.target]
        figure.add_annotation(
            x=x1,
            y=y1,
            ax=x0,
            ay=y0,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            arrowcolor="#9aa5b1",
            text="",
        )
        exits = _exits(counts[edge.source], edge.label)
        figure.add_annotation(
            x=(x0 + x1) / 2,
            y=(y0 + y1) / 2,
            text=f"{edge.label[:24]}: {exits}",
            showarrow=False,
            font={"size": 10, "color": "#52606d"},
            bgcolor="white",
        )
    figure.add_trace(
        go.Scatter(
            x=[position[n.node][0] for n in report.nodes],
            y=[position[n.node][1] for n in report.nodes],
            mode="markers+text",
            marker={
                "size": 26,
                "color": [min(n.now, 1) for n in report.nodes],
                "colorscale": [[0, "#bcccdc"], [1, "#f0b429"]],
            },
            text=[f"<b>{n.node}</b><br>entered {n.entered} · now {n.now}" for n in report.nodes],
            textposition="middle right",
            hoverinfo="text",
        )
    )
    figure.update_layout(
        showlegend=False,
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=140 + 110 * len(by_layer),
        plot_bgcolor="white",
    )
    return figure


def _layers(report: NodesReport) -> dict[str, int]:
    """Each node's layer: the longest way to it from the start, so edges point down; edges that close a
    loop back to an earlier node are left out of the layering."""
    successors: dict[str, list[str]] = {}
    for edge in report.edges:
        successors.setdefault(edge.source, []).append(edge.target)
    if report.start is None:
        return {}
    first_seen = {report.start: 0}
    queue = deque([report.start])
    while queue:
        node = queue.popleft()
        for target in successors.get(node, []):
            if target not in first_seen:
                first_seen[target] = first_seen[node] + 1
                queue.append(target)
    forward = [
        (edge.source, edge.target)
        for edge in report.edges
        if not (
            first_seen.get(edge.target, 0) <= first_seen.get(edge.source, 0)
            and edge.source in graph.reachable(edge.target, successors)
        )
    ]
    depth = dict.fromkeys(first_seen, 0)
    for _ in range(len(depth)):  # longest path on what is now a DAG: at most one pass per node
        changed = False
        for source, target in forward:
            if source in depth and depth[source] + 1 > depth.get(target, 0):
                depth[target] = depth[source] + 1
                changed = True
        if not changed:
            break
    return depth
