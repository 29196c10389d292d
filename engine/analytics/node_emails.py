"""What each send_email node of a journey did with its messages, read from the outbox: sent, failed, still going
out, and suppressed by a limits.yaml cap (by cap), so a marketer sees which node the caps hold back.

`tally` does the counting for any grouping of outbox rows; the email report (email_report.py) groups by journey,
node, variant and day with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from engine.analytics.containers import Filters
from engine.analytics.report import ReportModel
from engine.db import OutboxMessage

OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
UNKNOWN_REASON = "unknown"  # a suppressed row without its cap (none are written so; kept visible, not dropped)


class NodeEmails(ReportModel):
    node: str
    sent: int
    failed: int  # refused or not delivered yet after an error; a retry may still send
    pending: int
    suppressed: int
    suppressed_by: dict[str, int]  # cap ('limit:person:3/7d') -> messages it suppressed


class SendCounts(ReportModel):
    """The outbox rows of one group by status; suppressed ones also by the cap that held them back."""

    sent: int
    failed: int
    pending: int
    suppressed: int
    suppressed_by: dict[str, int]


def tally(
    connection: Connection,
    keys: Sequence[ColumnElement[Any]],
    status: ColumnElement[Any],
    reason: ColumnElement[Any],
    source: FromClause,
    where: Sequence[ColumnElement[bool]] = (),
    sums: Sequence[ColumnElement[Any]] = (),
) -> dict[tuple[Any, ...], tuple[SendCounts, list[int]]]:
    """Outbox rows of `source` counted by status (and suppression cap) for each value of `keys`, in one query; with
    them, each group's totals of the aggregates `sums` (counts or sums, added up over the statuses)."""
    query = select(*keys, status, reason, func.count(), *sums).select_from(source).where(*where)
    query = query.group_by(*keys, status, reason)
    counts: dict[tuple[Any, ...], dict[str, int]] = {}
    reasons: dict[tuple[Any, ...], dict[str, int]] = {}
    totals: dict[tuple[Any, ...], list[int]] = {}
    for row in connection.execute(query):
        group, (state, why, count), more = tuple(row[: len(keys)]), row[len(keys) : len(keys) + 3], row[len(keys) + 3 :]
        found = counts.setdefault(group, {})
        found[state] = found.get(state, 0) + count
        if state == "suppressed":
            held = reasons.setdefault(group, {})
            held[why or UNKNOWN_REASON] = held.get(why or UNKNOWN_REASON, 0) + count
        # PostgreSQL sums integers as numeric: int() makes them plain numbers again.
        totals[group] = [int(a) + int(b or 0) for a, b in zip(totals.get(group, [0] * len(sums)), more, strict=True)]
    return {
        group: (
            SendCounts(
                sent=found.get("sent", 0),
                failed=found.get("failed", 0),
                pending=found.get("pending", 0),
                suppressed=found.get("suppressed", 0),
                suppressed_by=dict(sorted(reasons.get(group, {}).items())),
            ),
            totals[group],
        )
        for group, found in counts.items()
    }


def email_counts(engine: Engine, journey: str, filters: Filters) -> list[NodeEmails]:
    """One entry per node of `journey` with outbox messages, in node id order; since/until bound created_at."""
    where = [OUTBOX.c.journey_id == journey]
    if filters.since:
        where.append(OUTBOX.c.created_at >= filters.since)
    if filters.until:
        where.append(OUTBOX.c.created_at < filters.until)
    with engine.connect() as connection:
        found = tally(connection, [OUTBOX.c.node_id], OUTBOX.c.status, OUTBOX.c.suppressed_by, OUTBOX, where)
    return [NodeEmails(node=node, **counts.model_dump()) for (node,), (counts, _) in sorted(found.items())]
