"""Checks of people_split that need more than its own shape: path names, the roles assign_role names, the person
fields update_person may change. The compiler checks each path's `when` and each email's templates, and places
every message at its node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.language.errors import did_you_mean
from engine.language.loader import PathKey
from engine.language.model import AssignRole, PeopleSplit, PersonEmail, RoleTemplate, UpdatePerson
from engine.language.responses import ATTRIBUTE_NAME

# Person fields a journey may set; the others belong to the person, the engine or other nodes.
SETTABLE_PERSON_FIELDS = frozenset({"first_name", "last_name", "job_title", "department", "seniority", "phone"})
NOT_SETTABLE = {
    "id": "cannot be changed by a journey",
    "account_id": "cannot be changed by a journey",
    "email": "cannot be changed by a journey: the address is how the person is known",
    "unsubscribed": "cannot be changed by a journey: only the person unsubscribes (or an import says so)",
    "engagement_score": "is computed from the person's activities",
    "role": "is the person's buying-group role: use an assign_role step",
    "attributes": "cannot be set as a whole: set each attribute by its own name",
    "created_at": "is set by the engine",
    "updated_at": "is set by the engine when the person changes",
}
MAX_TEXT = 1000  # characters of a value update_person sets


def located_steps(node: PeopleSplit) -> Iterator[tuple[PathKey, str, PersonEmail | AssignRole | UpdatePerson]]:
    """(where in the node, how messages name it, step) for every step of every path, then of `otherwise`."""
    for index, path in enumerate(node.paths):
        for number, step in enumerate(path.steps):
            yield ("paths", index, "steps", number), f"paths[{index}].steps[{number}]", step
    for number, step in enumerate(node.otherwise.steps):
        yield ("otherwise", "steps", number), f"otherwise.steps[{number}]", step


def split_problems(
    node: PeopleSplit, template: RoleTemplate | None, names_interest: bool
) -> list[tuple[PathKey, str, bool]]:
    """(where in the node, message, whether it points at the key) for each problem of the node's paths and steps."""
    problems: list[tuple[PathKey, str, bool]] = []
    first: dict[str, int] = {}
    for index, path in enumerate(node.paths):
        if path.name is None:
            continue
        if path.name == "otherwise":
            message = f"paths[{index}].name: 'otherwise' names the people no path takes; give the path another name"
            problems.append((("paths", index, "name"), message, False))
        elif path.name in first:
            message = (
                f"paths[{index}].name: path '{path.name}' is already paths[{first[path.name]}];"
                " give each path its own name"
            )
            problems.append((("paths", index, "name"), message, False))
        first.setdefault(path.name, index)
    for at, label, step in located_steps(node):
        match step:
            case AssignRole(role=role):
                problems.extend(_role_problems(at, label, role, template, names_interest))
            case UpdatePerson():
                problems.extend(_field_problems(at, label, step))
    return problems


def _role_problems(
    at: PathKey, label: str, role: str, template: RoleTemplate | None, names_interest: bool
) -> Iterator[tuple[PathKey, str, bool]]:
    if not names_interest:
        message = f"{label}: assign_role puts people into a buying group: give the journey a 'solution_interest'"
        yield (*at, "type"), message, False
    elif template is not None:
        roles = [item.role for item in template.roles]
        if role not in roles:
            message = (
                f"{label}.role: role template '{template.id}' has no role '{role}'{did_you_mean(role, roles)}"
                f" (roles: {', '.join(roles)})"
            )
            yield (*at, "role"), message, False


def _field_problems(at: PathKey, label: str, step: UpdatePerson) -> Iterator[tuple[PathKey, str, bool]]:
    for name, value in step.set.items():
        where = (*at, "set", name)
        if name in NOT_SETTABLE:
            yield where, f"{label}.set: '{name}' {NOT_SETTABLE[name]}", True
        elif not ATTRIBUTE_NAME.fullmatch(name):
            message = (
                f"{label}.set: '{name}' is not a person field or attribute name "
                "(letters, digits and '_', not starting with a digit, at most 64)"
            )
            yield where, message, True
        elif name in SETTABLE_PERSON_FIELDS and value is not None and not isinstance(value, str):
            yield where, f"{label}.set.{name}: expected text or null, got '{value}'", False
        elif isinstance(value, str) and len(value) > MAX_TEXT:
            yield where, f"{label}.set.{name}: too long ({len(value):,} characters; at most {MAX_TEXT:,})", False


def sends_email(raw: dict[str, Any]) -> bool:
    """Whether a node, valid or not, emails people: send_email, or a people_split with an email step."""
    if raw.get("type") == "send_email":
        return True
    if raw.get("type") != "people_split":
        return False
    paths, otherwise = raw.get("paths"), raw.get("otherwise")
    step_lists = [path.get("steps") for path in paths if isinstance(path, dict)] if isinstance(paths, list) else []
    if isinstance(otherwise, dict):
        step_lists.append(otherwise.get("steps"))
    return any(
        isinstance(step, dict) and step.get("type") == "send_email"
        for steps in step_lists
        if isinstance(steps, list)
        for step in steps
    )
