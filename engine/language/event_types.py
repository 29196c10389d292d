"""Event types: the built-in ones and the custom ones a team declares in `journeys/events.yaml`.

    events:
      - type: webinar_registered
        description: someone signed up for a webinar on the events platform
        fields: [webinar, session]

A custom type may be sent to `journey serve` and waited for by `wait_for_event`; its `fields` are what
`where` conditions may read as `event.<field>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engine.language import conditions, shape
from engine.language.errors import Issue, JourneyInvalidError, did_you_mean
from engine.language.loader import load_file
from engine.language.model import EVENT_TYPES

EVENTS_FILE = "events.yaml"
# Not events a sender may send: the workflow and the engine write these themselves.
RESERVED = frozenset(
    {"node_entered", "node_left", "journey_entered", "journey_ended", "account_updated", "unsubscribed"}
    | {"person_erased", "buying_group_updated", "member_removed", "member_added"}
    | {"person_path", "member_assigned"}  # people_split: each person's path; assign_role's hand-made assignments
    | {"journey_state_changed"}  # a journey made live, closed, stopped or finished (engine/runtime/journey_state.py)
)


class CustomEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64, description="the event type senders use")
    description: str | None = None
    fields: list[str] = Field(default_factory=list, description="payload fields conditions may read")


class EventsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[CustomEvent] = Field(default_factory=list)


@dataclass(frozen=True)
class EventTypes:
    """Every event type a sender may send, with the payload fields conditions may read for each."""

    fields: dict[str, frozenset[str]] = field(default_factory=lambda: dict(conditions.EVENT_FIELDS))

    @property
    def names(self) -> tuple[str, ...]:
        """Every type a journey may wait for and the relay delivers, the engine's own `account_updated` too."""
        return tuple(self.fields)

    def refusal(self, name: str) -> str | None:
        """Why a sender may not send this type (None when it may)."""
        if name in RESERVED:
            return (
                f"'{name}' is recorded by the engine itself, not sent: change accounts with `journey import "
                "accounts` or the upsert API, and the engine records what changed"
            )
        if name not in self.fields:
            return self.unknown(name)
        return None

    def unknown(self, name: str) -> str:
        """The message for a type that is neither built in nor declared."""
        sendable = [known for known in self.fields if known not in RESERVED]
        return (
            f"unknown event type '{name}'{did_you_mean(name, sendable)}: expected one of "
            f"{', '.join(sendable)}, or declare it in journeys/{EVENTS_FILE}"
        )


def load_event_types(folder: Path) -> EventTypes:
    """Built-in types plus those declared in `<folder>/events.yaml`; JourneyInvalidError lists every problem."""
    types, issues = read_event_types(folder)
    if issues:
        raise JourneyInvalidError(issues)
    return types


def read_event_types(folder: Path, shown_as: str | None = None) -> tuple[EventTypes, list[Issue]]:
    """The event types and the problems of `<folder>/events.yaml` (built-in types alone when it has any)."""
    path = folder / EVENTS_FILE
    if not path.is_file():
        return EventTypes(), []
    document, issues = load_file(path, shown_as)
    if document is None or issues:
        return EventTypes(), issues
    declared, problems = shape.validate(EventsFile, document.data or {}, document.source)
    if declared is None or problems:
        return EventTypes(), problems
    fields = dict(conditions.EVENT_FIELDS)
    shown = shown_as or str(path)
    for index, event in enumerate(declared.events):
        line, col = document.source.value(("events", index, "type"))
        if event.type in EVENT_TYPES or event.type in RESERVED:
            issues.append(Issue(shown, line, col, f"'{event.type}' is a built-in event type: choose another name"))
        elif event.type in fields:
            issues.append(Issue(shown, line, col, f"event type '{event.type}' is declared twice"))
        fields[event.type] = frozenset(event.fields)
    return (EventTypes(fields), []) if not issues else (EventTypes(), issues)
