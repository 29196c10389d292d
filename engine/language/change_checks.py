"""Checks of a wait_for_change node's `change` that need the journey around it: field names that change events
report (with the journey's own custom attributes), the type of `to` where the field's type is known, stages of the
stage model and roles of the role template. The compiler places each message at its key under `change`."""

from __future__ import annotations

import re

from engine.language.errors import did_you_mean
from engine.language.loader import PathKey
from engine.language.model import Change, RoleTemplate, Stages

# The fields imports and upserts change and record in `account_updated` / `person_updated`, with their type
# (None: any value). Others (id, created_at, engagement_score, ...) never change by an event.
ACCOUNT_CHANGES: dict[str, str | None] = {
    "name": "text",
    "domain": "text",
    "industry": "text",
    "employees": "whole number",
    "annual_revenue": "number",
    "country": "text",
    "timezone": "text",
    "owner_email": "text",
}
PERSON_CHANGES: dict[str, str | None] = {
    "first_name": "text",
    "last_name": "text",
    "job_title": "text",
    "department": "text",
    "seniority": "text",
    "phone": "text",
    "unsubscribed": "true/false",
}
_WORDS = {"text": "text", "whole number": "a whole number", "number": "a number", "true/false": "true or false"}
ATTRIBUTE = re.compile(r"^attributes\.[A-Za-z_][A-Za-z0-9_]{0,63}$")


def problems(
    change: Change,
    custom_account_attributes: frozenset[str],
    stages: Stages | None,
    template: RoleTemplate | None,
    names_interest: bool,
) -> list[tuple[PathKey, str]]:
    """(where under the node, message) for each problem; `stages` and `template` are None without an interest."""
    if change.account is not None:
        known = {**ACCOUNT_CHANGES, **dict.fromkeys(custom_account_attributes - ACCOUNT_CHANGES.keys())}
        return _field_problems("account", change.account, change, known)
    if change.person is not None:
        return _field_problems("person", change.person, change, PERSON_CHANGES)
    group = change.buying_group
    if not names_interest:
        message = f"buying_group: '{group}' is a buying group change: give the journey a 'solution_interest'"
        return [(("change", "buying_group"), message)]
    if group == "stage" and change.to is not None and stages is not None and change.to not in stages.all:
        hint = did_you_mean(str(change.to), stages.all)
        message = f"to: unknown stage '{change.to}'{hint} (stages: {', '.join(stages.all)})"
        return [(("change", "to"), message)]
    if group == "status" and change.to is not None and not isinstance(change.to, str):
        return [(("change", "to"), f"to: a status is text, got {change.to!r}: quote it")]
    if change.role is not None and template is not None:
        roles = [role.role for role in template.roles]
        if change.role not in roles:
            hint = did_you_mean(change.role, roles)
            message = (
                f"role: role template '{template.id}' has no role '{change.role}'{hint} (roles: {', '.join(roles)})"
            )
            return [(("change", "role"), message)]
    return []


def _field_problems(subject: str, name: str, change: Change, known: dict[str, str | None]) -> list[tuple[PathKey, str]]:
    if name not in known and not ATTRIBUTE.match(name):
        listed = ", ".join(sorted(known))
        message = (
            f"{subject}: unknown {subject} field '{name}'{did_you_mean(name, known)}; fields that change: {listed},"
            f" or attributes.<name> for an imported attribute"
        )
        return [(("change", subject), message)]
    kind = known.get(name)
    if change.to is None or kind is None or _fits(change.to, kind):
        return []
    return [(("change", "to"), f"to: {subject}.{name} is {_WORDS[kind]}, got {change.to!r}")]


def _fits(value: str | int | float | bool, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "true/false":
        return isinstance(value, bool)
    if kind == "whole number":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)
