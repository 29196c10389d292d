"""Values from outside (a service's answer, via `store`) checked before they reach an account's columns.

The same rules as imports (engine/data/fields.py, which activities may not import): a value a column cannot take
is refused with a reason, never written, so a later split or send window never trips over it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import zoneinfo
from collections.abc import Callable
from functools import cache
from typing import Any

import pycountry

MAX_TEXT = 1_000  # characters of a text column, as imports allow
MAX_ATTRIBUTE = 10_000  # characters of an attribute's value as JSON, as imports allow one value
_EMAIL = re.compile(r"[^@\s\"<>(),;:\[\]\\]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


class ValueRefusedError(ValueError):
    """The value does not fit the field; the message says why, for the event log and the worker's log."""


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueRefusedError(f"expected text, got {_kind(value)}")
    text = str(value).strip()
    if not text:
        raise ValueRefusedError("empty text")
    if len(text) > MAX_TEXT:
        raise ValueRefusedError(f"{len(text):,} characters: at most {MAX_TEXT:,}")
    return text


def _whole(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value.bit_length() > 62:
        raise ValueRefusedError(f"expected a whole number of at least 0, got {_shown(value)}")
    return value


def _amount(value: Any) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # text that is not a number is refused below
            value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueRefusedError(f"expected a number of at least 0, got {_shown(value)}")
    return float(value)


def _email(value: Any) -> str:
    text = _text(value).lower()
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise ValueRefusedError(f"{_shown(value)} is not an email address")
    return text


@cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _timezone(value: Any) -> str:
    found = _zones().get(_text(value).lower())
    if found is None:
        raise ValueRefusedError(f"unknown time zone {_shown(value)}")
    return found


def _country(value: Any) -> str:
    try:
        return str(pycountry.countries.lookup(_text(value)).alpha_2)
    except LookupError:
        raise ValueRefusedError(f"unknown country {_shown(value)}") from None


COLUMNS: dict[str, Callable[[Any], Any]] = {
    "name": _text,
    "industry": _text,
    "employees": _whole,
    "annual_revenue": _amount,
    "country": _country,
    "timezone": _timezone,
    "owner_email": _email,
}


def checked(name: str, value: Any) -> Any:
    """The value as the account keeps it under `name` (a column or a custom attribute); ValueRefusedError if not."""
    if name in COLUMNS:
        return COLUMNS[name](value)
    size = len(json.dumps(value))
    if size > MAX_ATTRIBUTE:
        raise ValueRefusedError(f"{size:,} characters as JSON: at most {MAX_ATTRIBUTE:,}")
    return value


def _kind(value: Any) -> str:
    kinds = {bool: "true/false", dict: "an object", list: "a list", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."
