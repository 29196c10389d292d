"""Each report as plain tables (title, columns, rows of values): printed by the CLI, written into the pages.

One source for both, so the numbers a terminal shows and the numbers under a chart cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.analytics.branching import BranchingReport
from engine.analytics.canvas import CanvasReport
from engine.analytics.cohort import CohortReport
from engine.analytics.email_report import EmailReport
from engine.analytics.flow import FlowReport
from engine.analytics.nodes import NodesReport
from engine.analytics.report import Report
from engine.analytics.timeline import TimelineReport

Value = str | int | float | None


@dataclass(frozen=True)
class Table:
    name: str  # a stable id, e.g. "steps"
    title: str
    columns: list[str]
    rows: list[list[Value]]


def tables(report: Report) -> list[Table]:
    match report:
        case CanvasReport():
            return [_canvas(report), *([_canvas_variants(report)] if report.split else [])]
        case BranchingReport():
            return _branching(report)
        case CohortReport():
            from engine.analytics.cohort_tables import cohort_tables  # it builds on Table: imported when needed

            return cohort_tables(report)
        case EmailReport():
            from engine.analytics.email_views import email_tables  # it builds on Table: imported when needed

            return email_tables(report)
        case FlowReport():
            return _flow(report)
        case NodesReport():
            variants = [_nodes_variants(report)] if report.split else []
            return [_nodes(report), *variants, *([_node_emails(report)] if report.emails else [])]
        case TimelineReport():
            return [_timeline(report)]
    raise TypeError(f"no table for {type(report).__name__}")


def _canvas(report: CanvasReport) -> Table:
    return Table(
        "steps",
        f"Journey canvas ({report.container}s)",
        ["step", "milestone", "containers", "conversion %", "fallout", "overall %", "median seconds from previous"],
        [
            [
                s.step,
                s.label,
                s.containers,
                s.conversion_pct,
                s.fallout,
                s.overall_pct,
                s.median_seconds_from_previous,
            ]
            for s in report.steps
        ],
    )


def _branching(report: BranchingReport) -> list[Table]:
    nodes = Table(
        "nodes",
        f"Branching canvas ({report.container}s)",
        [
            "node",
            "milestone",
            "layer",
            "containers",
            "entered its start",
            "from start %",
            "reached a previous node",
            "from previous %",
            "fallout",
            "fallout %",
        ],
        [
            [
                n.node,
                n.label,
                n.layer,
                n.containers,
                n.entered,
                n.from_start_pct,
                n.previous,
                n.from_previous_pct,
                n.fallout,
                n.fallout_pct,
            ]
            for n in report.nodes
        ],
    )
    edges = Table(
        "edges",
        "Edges",
        ["from", "to", "containers", "from previous %", "median seconds"],
        [[e.source, e.target, e.containers, e.from_previous_pct, e.median_seconds] for e in report.edges],
    )
    return [nodes, edges]


def _variant(name: str, holdout: bool, accounts: int) -> str:
    return f"{name}{' (holdout)' if holdout else ''}, {accounts} account{'' if accounts == 1 else 's'}"


def _canvas_variants(report: CanvasReport) -> Table:
    return Table(
        "variants",
        f"Journey canvas by variant of '{report.split}'",
        ["variant", "step", "milestone", "accounts", "conversion %", "fallout", "overall %", "median seconds"],
        [
            [
                _variant(v.variant, v.holdout, v.accounts),
                s.step,
                s.label,
                s.containers,
                s.conversion_pct,
                s.fallout,
                s.overall_pct,
                s.median_seconds_from_previous,
            ]
            for v in report.variants
            for s in v.steps
        ],
    )


def _node_emails(report: NodesReport) -> Table:
    return Table(
        "emails",
        f"Emails of journey {report.journey} (suppressed: held back by a limits.yaml cap)",
        ["node", "sent", "failed", "pending", "suppressed", "suppressed by"],
        [
            [
                e.node,
                e.sent,
                e.failed,
                e.pending,
                e.suppressed,
                ", ".join(f"{reason}: {count}" for reason, count in e.suppressed_by.items()),
            ]
            for e in report.emails
        ],
    )


def _nodes_variants(report: NodesReport) -> Table:
    return Table(
        "variants",
        f"Journey {report.journey} by variant of '{report.split}'",
        ["variant", "node", "type", "entered", "entries", "now", "left by branch"],
        [
            [
                _variant(v.variant, v.holdout, v.accounts),
                n.node,
                n.type,
                n.entered,
                n.entries,
                n.now,
                ", ".join(f"{branch}: {count}" for branch, count in n.left.items()),
            ]
            for v in report.variants
            for n in v.nodes
        ],
    )


def _flow(report: FlowReport) -> list[Table]:
    where = {"starts_with": "after", "ends_with": "before", "contains": "around"}[report.direction]
    anchor = f"the {report.occurrence} {report.milestone}"
    counted = f"{report.containers} {report.container}s, repeats {report.repeats}d"
    links = Table(
        "links",
        f"Flow of {report.dimension} {where} {anchor} ({counted})",
        ["column", "from", "to", "containers"],
        [[link.column, link.source, link.target, link.containers] for link in report.links],
    )
    paths = Table(
        "paths",
        "Most frequent paths",
        ["path", "containers"],
        [[" → ".join(path.steps), path.containers] for path in report.paths],
    )
    return [links, paths]


def _nodes(report: NodesReport) -> Table:
    return Table(
        "nodes",
        f"Journey {report.journey}" + (f" (graph of version {report.version})" if report.version else ""),
        ["node", "type", "entered", "entries", "now", "left by branch"],
        [
            [
                n.node,
                n.type,
                n.entered,
                n.entries,
                n.now,
                ", ".join(f"{branch}: {count}" for branch, count in n.left.items()),
            ]
            for n in report.nodes
        ],
    )


def _timeline(report: TimelineReport) -> Table:
    who = report.buying_group or report.account
    return Table(
        "entries",
        f"Timeline of {who} ({report.account_name})",
        ["when", "type", "person", "email", "roles", "journey", "node", "detail"],
        [
            [_when(e.occurred_at), e.type, e.person, e.email, ", ".join(e.roles), e.journey, e.node, e.detail]
            for e in report.entries
        ],
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def display(value: Any) -> str:
    """How a cell reads: empty for missing, integers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
