"""The journeys an add_to_journey or remove_from_journey node can name: the ids of the journey files in its
folder (what `journey validate journeys/` and `journey publish` see), and what is wrong with a reference."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    MappingStartEvent,
    ScalarEvent,
)

from engine.language.errors import did_you_mean
from engine.language.loader import MAX_FILE_SIZE
from engine.language.model import AddToJourney, RemoveFromJourney

# What each node logs as its node_left branch; the account goes on along `next` whichever it is.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "add_to_journey": ("added", "not_live", "not_in_audience", "reentry_not_allowed", "already_in"),
    "remove_from_journey": ("removed", "not_in_journey"),
}


def journey_ids(folder: Path) -> frozenset[str]:
    """The `journey:` id of every journey file in the folder. Buying groups, services and the other settings files
    have no such key; a file that cannot be read is skipped here (validating it reports its problems)."""
    ids = {found for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if (found := _journey_id(path))}
    return frozenset(ids)


def _journey_id(path: Path) -> str | None:
    """The file's top-level `journey:` value, read as a stream of YAML events that stops at it: a folder may hold
    journeys of thousands of nodes, and composing each whole (as validating does) cost seconds."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_SIZE + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if len(raw) > MAX_FILE_SIZE:
        return None
    depth, children, is_id = 0, 0, False
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            if isinstance(event, CollectionEndEvent):
                depth -= 1
                continue
            if not isinstance(event, ScalarEvent | CollectionStartEvent | AliasEvent):
                continue
            if depth == 1:  # a key or a value of the top-level mapping
                if is_id:
                    return event.value if isinstance(event, ScalarEvent) else None
                is_id = children % 2 == 0 and isinstance(event, ScalarEvent) and event.value == "journey"
                children += 1
            if isinstance(event, CollectionStartEvent):
                if depth == 0 and not isinstance(event, MappingStartEvent):
                    return None  # a list (or other) at the top: not a journey file
                depth += 1
    except YAMLError:
        return None
    return None


def reference_problem(
    node: AddToJourney | RemoveFromJourney, own: object, known: frozenset[str], shown: str
) -> str | None:
    """The message for a node's `journey` that names itself or no journey of the folder (shown as `shown`)."""
    if node.journey == own:
        if isinstance(node, AddToJourney):
            return f"journey: '{node.journey}' is this journey: to run it again, loop back with a wait instead"
        return f"journey: '{node.journey}' is this journey: to leave it, go to an 'end' node instead"
    if node.journey not in known:
        hint = did_you_mean(node.journey, [journey for journey in known if journey != own])
        return f"journey: unknown journey '{node.journey}'{hint}: no journey file in {shown} has this id"
    return None
