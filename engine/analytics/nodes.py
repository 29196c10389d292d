"""Node counts of one journey, as a journey tool shows them on its canvas: for each node, the accounts that
entered it, how many entries that was (loops enter again), the accounts there now, and the accounts that
left by each branch. Read from the `node_entered` / `node_left` rows the journey workflow writes.

An account is at a node now when its latest step in the journey (by time, then log order) entered that
node: it has not left it yet. Counts cover every version; the graph drawn is the latest published one.
Broken down by variant, the same counts are given once per variant of an A/B test (engine/analytics/variants.py).
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import distinct, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from engine.analytics import variants
from engine.analytics.containers import EVENT, PAYLOAD, Filters
from engine.analytics.errors import AnalyticsError
from engine.analytics.node_emails import NodeEmails, email_counts
from engine.analytics.report import Report, ReportModel
from engine.db import ActivityEvent, JourneyVersion
from engine.language.errors import did_you_mean
from engine.language.plan import Plan
from engine.runtime.publish import latest_version

ENDED = "(ended)"  # the branch of a node_left with no way on: the journey ended there


class NodeCount(ReportModel):
    node: str
    type: str | None
    entered: int  # accounts
    entries: int  # visits, loops included
    now: int  # accounts at the node now
    left: dict[str, int]  # branch -> accounts that left by it


class GraphEdge(ReportModel):
    source: str
    target: str
    label: str


class VariantNodes(ReportModel):
    """The node counts of the accounts one variant of an A/B test was given."""

    variant: str
    holdout: bool
    accounts: int  # given this variant at the split
    nodes: list[NodeCount]


class NodesReport(Report):
    report: str = "nodes"
    journey: str
    version: str | None  # of the graph drawn
    start: str | None
    nodes: list[NodeCount]
    edges: list[GraphEdge]
    split: str | None = None  # the variant_split broken down by
    variants: list[VariantNodes] = Field(default_factory=list)
    emails: list[NodeEmails] = Field(default_factory=list)  # per send_email node: sent, suppressed by limits.yaml


def node_counts(
    engine: Engine, journey: str, filters: Filters, by_variant: bool = False, split: str | None = None
) -> NodesReport:
    """The counts of every node; with `by_variant`, also per variant of the journey's A/B test (`split`, or its
    only variant_split), each variant's counts covering only the accounts the split gave that variant."""
    steps = [col(ActivityEvent.journey_id) == journey, col(ActivityEvent.account_id).is_not(None)]
    if filters.since:
        steps.append(col(ActivityEvent.occurred_at) >= filters.since)
    if filters.until:
        steps.append(col(ActivityEvent.occurred_at) < filters.until)
    plan = latest_version(engine, journey)
    if plan is None:
        known_or_refused(engine, journey)
    breakdown: list[VariantNodes] = []
    chosen = variants.split_of(engine, journey, split) if by_variant else None
    if chosen is not None:
        found = variants.assignments(engine, journey, chosen)
        groups = variants.ordered(engine, journey, chosen, set(found.values()))
        for name, holdout in [*groups, (variants.NO_VARIANT, False)]:
            only = variants.in_variant(EVENT.c.account_id, journey, chosen, name)
            counts = _counts(engine, plan, [*steps, only])
            accounts = sum(1 for variant in found.values() if variant == name)
            if name == variants.NO_VARIANT and not any(count.entered for count in counts):
                continue
            breakdown.append(VariantNodes(variant=name, holdout=holdout, accounts=accounts, nodes=counts))
    edges = [
        GraphEdge(source=source, target=edge.target, label=edge.label)
        for source, outs in (plan.edges.items() if plan else ())
        for edge in outs
    ]
    return NodesReport(
        container="account",
        filters={"journey": journey, **filters.describe()},
        journey=journey,
        version=plan.version if plan else None,
        start=plan.start if plan else None,
        nodes=_counts(engine, plan, steps),
        edges=edges,
        split=chosen,
        variants=breakdown,
        emails=email_counts(engine, journey, filters),
    )


def _counts(engine: Engine, plan: Plan | None, steps: list[ColumnElement[bool]]) -> list[NodeCount]:
    node, account, kind = EVENT.c.node_id, EVENT.c.account_id, EVENT.c.type
    entered = (
        select(node, func.count(distinct(account)), func.count()).where(*steps, kind == "node_entered").group_by(node)
    )
    branch, node_type = PAYLOAD["branch"].as_string(), PAYLOAD["node_type"].as_string()
    left = (
        select(node, branch, node_type, func.count(distinct(account)))
        .where(*steps, kind == "node_left")
        .group_by(node, branch, node_type)
    )
    latest = func.row_number().over(
        partition_by=account, order_by=[col(ActivityEvent.occurred_at).desc(), col(ActivityEvent.id).desc()]
    )
    last_steps = (
        select(node.label("node"), kind.label("kind"), latest.label("n"))
        .where(*steps, kind.in_(("node_entered", "node_left")))
        .subquery("last_step")
    )
    now = (
        select(last_steps.c.node, func.count())
        .where(last_steps.c.n == 1, last_steps.c.kind == "node_entered")
        .group_by(last_steps.c.node)
    )
    with engine.connect() as connection:
        entries: dict[str, tuple[int, int]] = {
            name: (accounts, visits) for name, accounts, visits in connection.execute(entered)
        }
        exits: dict[str, dict[str, int]] = {}
        for name, how, type_, accounts in connection.execute(left):
            # An end node is left by no branch: the journey ended there (its row says 'end' since shape 2).
            label = ENDED if how is None or type_ == "end" else how
            taken = exits.setdefault(name, {})
            taken[label] = taken.get(label, 0) + accounts
        present: dict[str, int] = {name: count for name, count in connection.execute(now)}
    order = list(plan.nodes) if plan else []
    order += sorted(name for name in set(entries) - set(order) if name is not None)
    return [
        NodeCount(
            node=name,
            type=plan.nodes[name].type if plan and name in plan.nodes else None,
            entered=entries.get(name, (0, 0))[0],
            entries=entries.get(name, (0, 0))[1],
            now=present.get(name, 0),
            left=dict(sorted(exits.get(name, {}).items())),
        )
        for name in order
    ]


def known_or_refused(engine: Engine, journey: str) -> None:
    """A journey never published must at least be in the event log (its rows outlive a deleted version); else the
    name is a mistake, refused with the closest known one, as an unknown account is by the timeline."""
    with engine.connect() as connection:
        logged = connection.execute(select(EVENT.c.id).where(EVENT.c.journey_id == journey).limit(1)).first()
        if logged is not None:
            return
        published = connection.execute(select(col(JourneyVersion.journey_id)).distinct()).scalars().all()
    raise AnalyticsError(f"unknown journey '{journey}'{did_you_mean(journey, published)}")
