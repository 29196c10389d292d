"""What the Temporal UI shows for an account: its summary, the current details (markdown) and what the
account is waiting for — written for the operator who opens it at 3 a.m. Pure functions of the plan and
the state, so the workflow can call them while staying deterministic."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from engine.language.model import (
    AddToJourney,
    AssignBuyingGroup,
    End,
    ExternalAction,
    NodeBase,
    RemoveFromBuyingGroup,
    RemoveFromJourney,
    SalesHandoff,
    SendEmail,
    Split,
    UpdateAccount,
    UpdateBuyingGroup,
    VariantSplit,
    Wait,
    WaitForChange,
    WaitForCompleteness,
    WaitForEvent,
)
from engine.language.plan import Plan
from engine.language.render import node_summary
from engine.workflow import change_match, visibility
from engine.workflow.contracts import SHAPE, SHOWS_CALLS_WHEN_SLOW


def static_summary(plan: Plan, account_name: str | None, account_id: str) -> str:
    """ "AI seed buying groups · Acme Corp": the line under the workflow id in the UI's list."""
    return f"{plan.name} · {account_name or account_id}"


def static_details(plan: Plan, account_id: str, owner: str | None) -> str:
    return (
        f"Journey **{plan.journey}** version `{plan.version}` for account **{account_id}**"
        + (f" (owner {owner})" if owner else "")
        + f".\n\nQuery `state` for the full position; `journey status {account_id}` shows the same."
    )


def start_attributes(plan: Plan, account_id: str, account_name: str | None, now: datetime) -> TypedSearchAttributes:
    """The search attributes of an account at its first node, set by whoever starts the workflow: the account is
    findable (`JourneyId = ...`) from the moment it starts, even before a worker picks it up, and the workflow
    writes no upsert at its first node (it adopts these values, `now` as the time it entered)."""
    node = plan.nodes[plan.start]
    # Milliseconds: what survives the round trip through the start event unchanged.
    since = now.replace(microsecond=now.microsecond // 1000 * 1000)
    return TypedSearchAttributes(
        [
            SearchAttributePair(visibility.JOURNEY_ID, plan.journey),
            SearchAttributePair(visibility.JOURNEY_VERSION, plan.version),
            SearchAttributePair(visibility.ACCOUNT_ID, account_id),
            SearchAttributePair(visibility.ACCOUNT_NAME, account_name or account_id),
            SearchAttributePair(visibility.NODE, node.id),
            SearchAttributePair(visibility.NODE_TYPE, node.type),
            SearchAttributePair(visibility.WAITING_FOR, waiting_for(node)),
            SearchAttributePair(visibility.NODE_SINCE, since),
        ]
    )


# A wait shorter than this is passed through: its step rows and search attributes wait for the next node.
SHORT_WAIT = timedelta(minutes=1)


def rests(node: NodeBase, shape: int = SHAPE) -> bool:
    """Whether an account can stay at the node for more than an instant: a wait of SHORT_WAIT or more, or a call
    to the outside world (email, services, the handoff) that may retry for hours. The search attributes show
    these nodes; a split, an account or buying-group update (one database round trip) and an end do not rewrite
    them (each write is a history event, an action and a visibility row; together they were 40% of the dev
    server's CPU per account in bench/throughput.py). The UI's current details show every node.

    Since shape 4 an email or the handoff rests only once its first attempt has failed: the workflow then shows
    the node, and the retries that may last hours, before it tries again (JourneyBase._call_shown_when_slow)."""
    if shape >= SHOWS_CALLS_WHEN_SLOW and isinstance(node, SendEmail | SalesHandoff):
        return False
    match node:
        case Split() | VariantSplit() | UpdateAccount() | AssignBuyingGroup() | End():
            return False
        case UpdateBuyingGroup() | RemoveFromBuyingGroup():
            return False  # one database round trip, like update_account; a sales_alert may retry: it rests
        case Wait(duration=duration) if duration is not None:
            return duration >= SHORT_WAIT
        case WaitForEvent(timeout=timeout) | WaitForCompleteness(timeout=timeout) | WaitForChange(timeout=timeout):
            return timeout >= SHORT_WAIT
        case _:
            return True


def waiting_for(node: NodeBase) -> str:
    """The `JourneyWaitingFor` value of a node while it runs."""
    match node:
        case WaitForEvent(event=event):
            return f"event {event}"
        case Wait():
            return visibility.TIMER
        case WaitForCompleteness():
            return visibility.COMPLETENESS_CHECK
        case WaitForChange(change=change):
            return change_match.waiting_for(change)
        case _:
            return visibility.WORKING


def deadline(node: NodeBase, entered_at: datetime) -> datetime | None:
    """When the node's timer moves the account on by itself (None: no timer, or a cron `until`)."""
    match node:
        case WaitForEvent(timeout=timeout) | WaitForCompleteness(timeout=timeout) | WaitForChange(timeout=timeout):
            return entered_at + timeout
        case Wait(duration=duration) if duration is not None:
            return entered_at + duration
        case _:
            return None


def current_details(
    plan: Plan,
    node: NodeBase,
    entered_at: datetime,
    *,
    waiting: str,
    group: dict[str, Any] | None = None,
    paused: str | None = None,
) -> str:
    """Markdown: the node, since when, what it waits for and what would move it on."""
    lines = [f"**{node.id}** ({node.type}) since {_when(entered_at)}: {node_summary(node)}"]
    if paused:
        lines.append(f"**Paused** by {paused}. `journey resume` lets it move on.")
    elif waiting == visibility.SEND_WINDOW:
        lines.append(f"Waiting for the send window `{plan.send_window}` (account time zone).")
    elif waiting == visibility.QUIET_HOURS and plan.limits is not None:
        lines.append(f"Holding the email through the quiet hours `{plan.limits.quiet_hours}` (account time zone).")
    if isinstance(node, WaitForCompleteness) and group:
        missing = ", ".join(group.get("missing_roles") or []) or "none"
        lines.append(
            f"Buying group {group.get('completeness', 0):.0f}% complete, needs {node.threshold:g}%; "
            f"missing roles: {missing}. New people, form fills and role assignments re-check it."
        )
    if isinstance(node, WaitForChange):
        lines.append(change_match.explain(node.change, group))
    if isinstance(node, ExternalAction) and (node.on_response or node.store):
        lines.append(answer_details(node))
    if isinstance(node, AddToJourney | RemoveFromJourney):
        lines.append(journey_change_details(plan, node))
    due = deadline(node, entered_at)
    exits = []
    for edge in plan.edges.get(node.id, []):
        timer = due is not None and edge.label in ("on_timeout", "next") and isinstance(node, _TIMED)
        exits.append(f"{edge.label}{f' ({_when(due)})' if timer and due else ''} → {edge.target}")
    if exits:
        lines.append("Moves on: " + " · ".join(exits))
    return "\n\n".join(lines)


def journey_change_details(plan: Plan, node: AddToJourney | RemoveFromJourney) -> str:
    """What add_to_journey / remove_from_journey do to the other journey, and the branches the event log shows."""
    if isinstance(node, AddToJourney):
        return (
            f"Starts the account in journey **{node.journey}** (its latest published version) if that journey's "
            "audience and re-entry rule let it in. Logged as added, not_in_audience, reentry_not_allowed, "
            "already_in or not_live; the account goes on to `next` either way."
        )
    return (
        f"Cancels the account's run of journey **{node.journey}** as `journey cancel` does, by journey "
        f"'{plan.journey}' node '{node.id}': {node.reason}. Logged as removed or not_in_journey; the account goes "
        "on to `next` either way."
    )


def answer_details(node: ExternalAction) -> str:
    """What a 2xx answer decides: the first response path that holds (else on_success), and what is stored."""
    parts = []
    if node.on_response:
        paths = " · ".join(f"`{path.when}` → {path.next}" for path in node.on_response)
        parts.append(f"On a 2xx answer, the first that holds: {paths}; none: on_success → {node.on_success}.")
    if node.store:
        stored = ", ".join(f"{name} ← `{source}`" for name, source in node.store.items())
        parts.append(f"Stores on the account: {stored}.")
    return " ".join(parts)


def email_summary(node: SendEmail, group: dict[str, Any] | None) -> str:
    """ "email 'intro' to decision_maker, champion (2 people)" when the group says how many."""
    summary = node_summary(node)
    if node.to.roles and group:
        count = sum(1 for member in group.get("members", []) if member.get("role") in node.to.roles)
        summary += f" ({count} {'person' if count == 1 else 'people'})"
    return summary


_TIMED = (Wait, WaitForEvent, WaitForCompleteness, WaitForChange)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
