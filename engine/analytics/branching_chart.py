"""The branching canvas's chart: a Sankey diagram of its edges, each as wide as the containers that went through it.

Nodes are labelled with the containers that reached them; a container may go down several branches, so what
leaves a node can add up to more than reached it (the table of nodes has the exact counts and fallout).
"""

from __future__ import annotations

import plotly.graph_objects as go

from engine.analytics.branching import BranchingReport


def sankey(report: BranchingReport) -> go.Figure:
    index = {node.node: number for number, node in enumerate(report.nodes)}
    figure = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": [f"{node.node}: {node.containers}" for node in report.nodes],
                "customdata": [node.label for node in report.nodes],
                "hovertemplate": "%{customdata}<extra></extra>",
                "pad": 18,
            },
            link={
                "source": [index[edge.source] for edge in report.edges],
                "target": [index[edge.target] for edge in report.edges],
                "value": [edge.containers for edge in report.edges],
                "customdata": [
                    f"{e.source} → {e.target}: {e.containers} ({e.from_previous_pct or 0}% of {e.source})"
                    for e in report.edges
                ],
                "hovertemplate": "%{customdata}<extra></extra>",
            },
        )
    )
    figure.update_layout(height=480, title=f"{report.container}s per edge")
    return figure
