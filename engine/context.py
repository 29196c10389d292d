"""Rows -> the plain data that expressions and templates read (`account`, `person`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.db import Account, Person
from engine.language.conditions import ACCOUNT_FIELDS, PERSON_FIELDS

# The columns behind the fields expressions may name (engine.language.conditions), minus the computed ones.
_ACCOUNT_COLUMNS = tuple(sorted(ACCOUNT_FIELDS - {"attributes"}))
_PERSON_COLUMNS = tuple(sorted(PERSON_FIELDS - {"attributes", "role"}))


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def account_data(account: Account) -> dict[str, Any]:
    """Built-in fields, the free-form `attributes`, and custom attributes also at the top level.

    Custom attributes (set by `update_account`, or imported) read as `account.nurture_stage`; a custom
    attribute never hides a built-in field.
    """
    attributes = dict(account.attributes or {})
    data: dict[str, Any] = {name: value for name, value in attributes.items() if name not in _ACCOUNT_COLUMNS}
    data.update({name: _plain(getattr(account, name)) for name in _ACCOUNT_COLUMNS})
    data["attributes"] = attributes
    return data


def full_name(person: Person) -> str:
    """First and last name, whichever are known; empty when neither is."""
    return " ".join(part for part in (person.first_name, person.last_name) if part)


def person_data(person: Person, role: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {name: _plain(getattr(person, name)) for name in _PERSON_COLUMNS}
    data["attributes"] = dict(person.attributes or {})
    data["role"] = role
    return data
