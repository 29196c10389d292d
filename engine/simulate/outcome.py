"""What a simulation recorded, read back from its throw-away database: every step of every account (simulated
time), the emails each node would have sent, the handoffs."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from engine.analytics.nodes import ENDED
from engine.db import ActivityEvent, OutboxMessage

TIMEOUT_BRANCH = "on_timeout"


@dataclass
class Outcome:
    started: list[str] = field(default_factory=list)
    entries: Counter[str] = field(default_factory=Counter)  # node -> times entered
    left: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # node -> branch -> times
    reached: dict[str, dict[str, timedelta]] = field(default_factory=lambda: defaultdict(dict))  # account -> node ->
    timed_out: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # node -> accounts
    emails: Counter[str] = field(default_factory=Counter)  # node -> messages that would have gone out
    paths: Counter[tuple[str, ...]] = field(default_factory=Counter)  # nodes in order -> accounts
    positions: Counter[str] = field(default_factory=Counter)  # where accounts are when the simulation ends
    waiting: Counter[str] = field(default_factory=Counter)  # node -> accounts still in it at the end
    handoffs: list[tuple[str, str, timedelta]] = field(default_factory=list)  # (account, node, after entry)
    events_sent: int = 0
    events_unmatched: int = 0

    def first_reached(self, account: str, node: str) -> timedelta | None:
        return self.reached.get(account, {}).get(node)


def read_outcome(engine: Engine, journey: str, handoff_nodes: set[str], ended_nodes: set[str]) -> Outcome:
    """Steps in the order they happened; an account's times are counted from its first step."""
    outcome = Outcome()
    walks: dict[str, list[str]] = defaultdict(list)
    entered_at: dict[str, datetime] = {}
    last: dict[str, tuple[str, str]] = {}
    with Session(engine) as session:
        # sqlalchemy's select: sqlmodel's typed overloads stop at four columns.
        rows = session.execute(
            sql_select(
                col(ActivityEvent.account_id),
                col(ActivityEvent.type),
                col(ActivityEvent.node_id),
                col(ActivityEvent.payload),
                col(ActivityEvent.occurred_at),
            )
            .where(col(ActivityEvent.journey_id) == journey, col(ActivityEvent.type).in_(["node_entered", "node_left"]))
            .order_by(col(ActivityEvent.occurred_at), col(ActivityEvent.id))
        ).all()
        sent = session.exec(
            select(OutboxMessage.node_id, func.count())
            .where(OutboxMessage.journey_id == journey, OutboxMessage.status == "sent")
            .group_by(OutboxMessage.node_id)
        ).all()
    for account, kind, node, payload, occurred in rows:
        if not account or not node:
            continue
        moment = occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC)
        start = entered_at.setdefault(account, moment)
        after = moment - start
        if kind == "node_entered":
            outcome.entries[node] += 1
            outcome.reached[account].setdefault(node, after)
            walks[account].append(node)
            if node in handoff_nodes:
                outcome.handoffs.append((account, node, after))
        else:
            branch = str((payload or {}).get("branch") or "next")
            if node in ended_nodes:
                branch = ENDED  # labelled as `journey analytics nodes` labels it
            outcome.left[node][branch] += 1
            if branch == TIMEOUT_BRANCH:
                outcome.timed_out[node].add(account)
        last[account] = (kind, node)
    outcome.started = sorted(walks)
    for account, walk in walks.items():
        outcome.paths[tuple(walk)] += 1
        kind, node = last[account]
        if kind == "node_left" and node in ended_nodes:
            outcome.positions[f"ended at {node}"] += 1
        else:
            outcome.positions[f"waiting at {node}"] += 1
            outcome.waiting[node] += 1
    outcome.emails.update({node: count for node, count in sent})
    return outcome
