"""What each send_email node of a journey did with its messages, read from the outbox: sent, failed, still going
out, and suppressed by a limits.yaml cap (by cap), so a marketer sees which node the caps hold back.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from engine.analytics.containers import Filters
from engine.analytics.report import ReportModel
from engine.db import OutboxMessage


class NodeEmails(ReportModel):
    node: str
    sent: int
    failed: int  # refused or not delivered yet after an error; a retry may still send
    pending: int
    suppressed: int
    suppressed_by: dict[str, int]  # cap ('limit:person:3/7d') -> messages it suppressed


def email_counts(engine: Engine, journey: str, filters: Filters) -> list[NodeEmails]:
    """One entry per node of `journey` with outbox messages, in node id order; since/until bound created_at."""
    where = [col(OutboxMessage.journey_id) == journey]
    if filters.since:
        where.append(col(OutboxMessage.created_at) >= filters.since)
    if filters.until:
        where.append(col(OutboxMessage.created_at) < filters.until)
    node, status, reason = col(OutboxMessage.node_id), col(OutboxMessage.status), col(OutboxMessage.suppressed_by)
    query = select(node, status, reason, func.count()).where(*where).group_by(node, status, reason)
    by_node: dict[str, dict[str, int]] = {}
    reasons: dict[str, dict[str, int]] = {}
    with engine.connect() as connection:
        for name, state, why, count in connection.execute(query):
            counts = by_node.setdefault(name, {})
            counts[state] = counts.get(state, 0) + count
            if state == "suppressed":
                node_reasons = reasons.setdefault(name, {})
                node_reasons[why or "unknown"] = node_reasons.get(why or "unknown", 0) + count
    return [
        NodeEmails(
            node=name,
            sent=counts.get("sent", 0),
            failed=counts.get("failed", 0),
            pending=counts.get("pending", 0),
            suppressed=counts.get("suppressed", 0),
            suppressed_by=dict(sorted(reasons.get(name, {}).items())),
        )
        for name, counts in sorted(by_node.items())
    ]
