"""Whether an event is the change a wait_for_change node waits for, and what changed in a few words: pure functions
of the node, the event and the journey, so the workflow stays deterministic. Changes the journey made itself do not
count: they were made at an earlier node, before the account started waiting."""

from __future__ import annotations

from typing import Any

from engine.language.model import MEMBER_CHANGES, THRESHOLDS, Change
from engine.workflow.contracts import JourneyEvent

# The events that record each kind of change (`member_assigned`: a role given by hand, `journey assign-role`).
ACCOUNT_EVENT, PERSON_EVENT, GROUP_EVENT = "account_updated", "person_updated", "buying_group_updated"
MEMBER_EVENTS = {"member_added": frozenset({"member_added", "member_assigned"}), "member_removed": {"member_removed"}}
# Events after which completeness may differ: people and roles. Engagement also moves with every engagement event
# (engine/buying_groups/scoring.py DEFAULT_WEIGHTS; tests/test_wait_for_change.py keeps the two lists equal).
MEMBERSHIP_EVENTS = frozenset({"person_added", "person_updated", "member_added", "member_assigned", "member_removed"})
ENGAGEMENT_EVENTS = frozenset(
    {"event_attended", "event_registered", "interesting_moment", "form_fill", "web_visit", "link_click"}
    | {"email_open", "email_click"}
)
RECHECKS = {"completeness": MEMBERSHIP_EVENTS | {"form_fill"}, "engagement": MEMBERSHIP_EVENTS | ENGAGEMENT_EVENTS}
BRANCH = "on_change"
SHOWN = 60  # characters of a value in what changed: event data is outside input
WAITING_FOR_MAX = 160  # a keyword search attribute stays far below its limit (2 KiB)


def changed(change: Change, event: JourneyEvent, journey: str, interest: str | None) -> str | None:
    """What changed, when the event is the awaited change (None otherwise); never for a threshold, which is re-read."""
    if _own(event, journey) or change.buying_group in THRESHOLDS:
        return None
    if change.account is not None:
        return _field(event, ACCOUNT_EVENT, "account", change.account, change.to)
    if change.person is not None:
        found = _field(event, PERSON_EVENT, "person", change.person, change.to)
        return f"{found} ({_short(event.email)})" if found and event.email else found
    group = change.buying_group
    if not _same_group(event, interest):
        return None
    if group in MEMBER_CHANGES:
        role = event.payload.get("role")
        if event.type not in MEMBER_EVENTS[str(group)] or (change.role is not None and role != change.role):
            return None
        who = _short(event.email) if event.email else "a person"
        return f"{who} {'added as' if group == 'member_added' else 'removed, was'} {_short(role)}"
    return _field(event, GROUP_EVENT, "buying_group", str(group), change.to)


def rechecks(change: Change, event: JourneyEvent, journey: str) -> bool:
    """Whether the event may have moved the completeness or engagement a threshold waits for."""
    return change.buying_group in RECHECKS and event.type in RECHECKS[change.buying_group] and not _own(event, journey)


def crossed(change: Change, value: float) -> str | None:
    """What a threshold node reports when the value read is at or over it (None: not yet)."""
    if change.at_least is None or value < change.at_least:
        return None
    return f"{change.subject} {value:.1f} >= {change.at_least:g}"


def branch(what: str) -> str:
    """The node_left branch of a change: the edge's label and what changed; the event log keeps them apart."""
    return f"{BRANCH}: {what}"


def split_branch(branch_: str | None) -> tuple[str | None, str | None]:
    """(edge label, what changed) of a wait_for_change's node_left branch."""
    if branch_ is not None and branch_.startswith(f"{BRANCH}: "):
        return BRANCH, branch_.removeprefix(f"{BRANCH}: ")
    return branch_, None


def _own(event: JourneyEvent, journey: str) -> bool:
    return event.payload.get("journey") == journey


def _same_group(event: JourneyEvent, interest: str | None) -> bool:
    """A change of another solution interest's group is not a change of this journey's group. A hand assignment's
    event names none: it counts for every group of the account."""
    named = event.payload.get("solution_interest")
    return named is None or named == interest


def _field(event: JourneyEvent, type_: str, subject: str, name: str, to: Any) -> str | None:
    changes = event.payload.get("changes")
    if event.type != type_ or not isinstance(changes, dict):
        return None
    entry = changes.get(name.removeprefix("attributes."))
    if not isinstance(entry, dict) or "new" not in entry:
        return None
    new = entry["new"]
    if to is not None and not _equal(new, to):
        return None
    return f"{subject}.{name} {_short(entry.get('old'))} -> {_short(new)}"


def _equal(value: Any, wanted: Any) -> bool:
    """Numbers compare as numbers (1200 == 1200.0); otherwise type and value must both agree (True is not 1)."""
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(wanted, numbers):
        if isinstance(value, bool) or isinstance(wanted, bool):
            return type(value) is type(wanted) and value == wanted
        return float(value) == float(wanted)
    return type(value) is type(wanted) and bool(value == wanted)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def explain(change: Change, group: dict[str, Any] | None) -> str:
    """The current details' line for an operator: what moves the account on, and what does not."""
    if change.buying_group in THRESHOLDS:
        now = f"{float(group.get(change.buying_group) or 0):.1f} now" if group else "not read yet"
        return (
            f"Waits for {change.describe()} ({now}): re-read when people, roles"
            + (" or engagement" if change.buying_group == "engagement" else "")
            + " change, never polled."
        )
    if change.buying_group in MEMBER_CHANGES:
        source = "role rules or `journey assign-role`" if change.buying_group == "member_added" else "remove nodes"
        heard = f"{change.buying_group} events ({source})"
    elif change.buying_group is not None:
        heard = f"{GROUP_EVENT} events (other journeys' update_buying_group, journey move-stage)"
    else:
        heard = f"{ACCOUNT_EVENT if change.account is not None else PERSON_EVENT} events (imports, upserts"
        heard += ", other journeys' updates)" if change.account is not None else ")"
    return f"Waits for {change.describe()}, heard from {heard}; changes this journey made itself do not count."


def waiting_for(change: Change) -> str:
    """`JourneyWaitingFor`: "change account.stage -> 'Opportunity'", short enough for a keyword attribute."""
    text = f"change {change.describe()}"
    return text if len(text) <= WAITING_FOR_MAX else text[: WAITING_FOR_MAX - 1] + "…"
