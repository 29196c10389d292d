"""The email report as tables (printed by the CLI, written into the page) and as its chart: messages, opens and
clicks per day above, the same per node below."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.analytics.bounds import MOST_DAYS
from engine.analytics.email_report import EmailReport, EmailRow
from engine.analytics.tables import Table, Value

COUNTS = [
    "sent",
    "failed",
    "pending",
    "suppressed",
    "suppressed by",
    "unique opens",
    "total opens",
    "unique clicks",
    "total clicks",
    "click-to-open %",
    "unsubscribes",
]


def _counts(row: EmailRow) -> list[Value]:
    held = ", ".join(f"{reason}: {count}" for reason, count in row.suppressed_by.items())
    return [
        row.sent,
        row.failed,
        row.pending,
        row.suppressed,
        held,
        row.unique_opens,
        row.total_opens,
        row.unique_clicks,
        row.total_clicks,
        row.click_to_open_pct,
        row.unsubscribes,
    ]


def email_tables(report: EmailReport) -> list[Table]:
    """Totals, then per journey, node, variant (when broken down by one) and day, then the unattributed events."""
    scope = f"journey {report.journey}" if report.journey else "every journey"
    scope += f", node {report.node}" if report.node else ""
    found = [
        Table(
            "totals",
            f"Emails of {scope} (delivered and bounced: unknown, no bounce reaches the engine; null in --json)",
            COUNTS,
            [_counts(report.totals)],
        ),
        Table("journeys", "Per journey", ["journey", *COUNTS], [[r.journey, *_counts(r)] for r in report.journeys]),
        Table(
            "nodes", "Per node", ["journey", "node", *COUNTS], [[r.journey, r.node, *_counts(r)] for r in report.nodes]
        ),
    ]
    if report.split is not None:
        title = f"Per variant of '{report.split}' (the variant the account was given) and node"
        rows: list[list[Value]] = [[r.variant, r.node, *_counts(r)] for r in report.variants]
        found.append(Table("variants", title, ["variant", "node", *COUNTS], rows))
    elif len(report.splits) > 1:
        title = f"Per variant: the journey has {len(report.splits)} variant splits ({', '.join(report.splits)}), "
        found.append(Table("variants", title + "choose one with --split", ["variant", "node", *COUNTS], []))
    days = "Per day the messages were sent (UTC)"
    if report.days_left_out:
        days += f": the latest {MOST_DAYS}; {report.days_left_out} earlier days left out (counted in the totals)"
    found.append(Table("days", days, ["day", *COUNTS], [[r.day, *_counts(r)] for r in report.days]))
    left = report.unattributed
    found.append(
        Table(
            "unattributed",
            "Events naming no message of the outbox (not in the counts above)",
            ["opens", "clicks", "unsubscribes"],
            [[left.opens, left.clicks, left.unsubscribes]],
        )
    )
    return found


def email_figure(report: EmailReport) -> go.Figure:
    """Sent, unique opens, unique clicks and unsubscribes per day (lines) and per node (bars)."""
    figure = make_subplots(rows=2, cols=1, subplot_titles=("Per day", "Per node"), vertical_spacing=0.18)
    days = [row.day for row in report.days]
    several = len(report.journeys) > 1
    nodes = [f"{row.journey} · {row.node}" if several else str(row.node) for row in report.nodes]
    series = {
        "sent": "sent",
        "unique opens": "unique_opens",
        "unique clicks": "unique_clicks",
        "unsubscribes": "unsubscribes",
    }
    colours = ["#2680c2", "#f0b429", "#3ebd93", "#e12d39"]
    for (label, field), colour in zip(series.items(), colours, strict=True):
        per_day = [getattr(row, field) for row in report.days]
        line = go.Scatter(x=days, y=per_day, name=label, mode="lines+markers", line={"color": colour})
        figure.add_trace(line, row=1, col=1)
        per_node = [getattr(row, field) for row in report.nodes]
        figure.add_trace(
            go.Bar(x=nodes, y=per_node, name=label, marker={"color": colour}, showlegend=False), row=2, col=1
        )
    figure.update_xaxes(type="category", row=1, col=1)
    figure.update_layout(barmode="group", height=760, plot_bgcolor="white")
    return figure
