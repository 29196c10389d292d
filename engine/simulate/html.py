"""`--html`: the journey's graph with the simulated counts, drawn like `journey analytics nodes` (the same plotly
page, its JavaScript embedded so the file opens with no network), followed by expectations, handoffs and paths."""

from __future__ import annotations

from html import escape
from typing import Any

from engine.analytics import page
from engine.analytics.nodes import GraphEdge, NodeCount, NodesReport


def render(summary: dict[str, Any]) -> str:
    report = NodesReport(
        container="account",
        filters={"simulated": summary["scenario"], "seed": summary["seed"], "duration": summary["duration"]},
        journey=summary["journey"],
        version=summary["version"],
        start=summary["start"],
        nodes=[
            NodeCount(
                node=node["node"],
                type=node["type"],
                entered=node["entered"],
                entries=node["entries"],
                now=node["waiting"],
                left=node["left"],
            )
            for node in summary["nodes"]
        ],
        edges=[GraphEdge(**edge) for edge in summary["edges"]],
    )
    sections = [
        _table(
            "Expectations",
            ["expectation", "result", "found"],
            [
                [item["expect"], "passed" if item["passed"] else "FAILED", item["found"]]
                for item in summary["expectations"]
            ],
        ),
        _table(
            "Emails that would go out",
            ["node", "emails"],
            [[node, count] for node, count in summary["emails"]["by_node"].items()],
        ),
        _table(
            "Handoffs (simulated time after entry)",
            ["account", "node", "after"],
            [[item["account"], item["node"], item["after"]] for item in summary["handoffs"]],
        ),
        _table(
            "Paths",
            ["accounts", "nodes"],
            [[item["accounts"], " → ".join(item["nodes"])] for item in summary["paths"]],
        ),
    ]
    document = page.render(report).replace(
        "<h1>Nodes · account</h1>", f"<h1>Simulation of {escape(summary['journey'])}</h1>", 1
    )
    return document.replace("</body></html>", "".join(sections) + "</body></html>", 1)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(columns)}">none</td></tr>'
    return f"<h2>{escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"
