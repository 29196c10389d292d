"""What an email report is asked about: all journeys, or one journey and perhaps one of its nodes, and the A/B test
to break it down by. A name that matches nothing is refused with the closest known one, never reported as empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine.analytics import variants
from engine.analytics.errors import AnalyticsError
from engine.analytics.node_emails import OUTBOX
from engine.analytics.nodes import known_or_refused
from engine.language.errors import did_you_mean
from engine.language.model import VariantSplit
from engine.runtime.publish import latest_version


@dataclass(frozen=True)
class Scope:
    journey: str | None
    node: str | None
    split: str | None  # the variant_split to break down by: the one asked for, or the journey's only one
    splits: list[str]  # the journey's variant splits in its latest version


def scope_of(engine: Engine, journey: str | None, node: str | None, split: str | None) -> Scope:
    """The scope asked for, checked: the journey is known (published, logged or in the outbox), and so are the node
    (in the latest version or the outbox) and the split."""
    if journey is None:
        if node is not None:
            raise AnalyticsError("--node needs a journey: node ids belong to one journey (give JOURNEY first)")
        if split is not None:
            raise AnalyticsError("--split needs a journey: an A/B test belongs to one journey (give JOURNEY first)")
        return Scope(None, None, None, [])
    plan = latest_version(engine, journey)
    with engine.connect() as connection:
        query = select(OUTBOX.c.node_id).where(OUTBOX.c.journey_id == journey).distinct()
        sending = set(connection.execute(query).scalars())
    if plan is None and not sending:
        known_or_refused(engine, journey)
    if node is not None:
        nodes = sending | set(plan.nodes if plan else ())
        if node not in nodes:
            known = f" (its nodes: {', '.join(sorted(nodes))})" if nodes and len(nodes) <= 12 else ""
            raise AnalyticsError(f"journey '{journey}' has no node '{node}'{did_you_mean(node, nodes)}{known}")
    splits = [name for name, step in plan.nodes.items() if isinstance(step, VariantSplit)] if plan else []
    if split is not None:
        chosen: str | None = variants.split_of(engine, journey, split)
    else:
        chosen = splits[0] if len(splits) == 1 else None
    return Scope(journey, node, chosen, splits)
