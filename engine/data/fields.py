"""The fields of each kind of record (accounts, people, opportunities): their types, parsers and what they are for.

A parser takes a value as a file or request gives it (text from CSV, any JSON value from JSON Lines or HTTP) and
returns the typed value, or raises FieldError with a message that says what is wrong and what would be right.
"""

from __future__ import annotations

import difflib
import math
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, Literal

import pycountry

Kind = Literal["accounts", "people", "opportunities"]
KINDS: tuple[Kind, ...] = ("accounts", "people", "opportunities")
SINGULAR: dict[Kind, str] = {"accounts": "account", "people": "person", "opportunities": "opportunity"}

MAX_TEXT = 1000  # characters of one text field; free-form attributes may be longer (sources.MAX_VALUE)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
_EMAIL = re.compile(r"[^@\s\"<>(),;:\[\]\\]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


class FieldError(ValueError):
    """A value a field cannot take; the message is shown after `column 'x': `."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # as the docs and messages name it
    parse: Callable[[Any], Any]
    used_for: str
    required: bool = False  # a new record needs it; an update may leave it out
    clearable: bool = True  # may be emptied (JSON null) once set


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text_of(value: Any) -> str:
    """Text as given; numbers from JSON are taken as their text (a phone number, a postal code)."""
    if value.__class__ is str:  # nearly always: every CSV value (this runs for each field of each row)
        text: str = value.strip()
    elif isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    else:
        raise FieldError(f"expected text, found {_json_kind(value)}")
    return text


def _json_kind(value: Any) -> str:
    kinds = {bool: "true/false", dict: "an object", list: "a list", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def text(value: Any) -> str:
    result = value.strip() if value.__class__ is str else _text_of(value)
    if len(result) > MAX_TEXT:
        raise FieldError(f"{len(result):,} characters: at most {MAX_TEXT:,}")
    return result


def record_id(value: Any) -> str:
    result = _text_of(value)
    if not _ID.fullmatch(result):
        raise FieldError(
            f"'{_shown(result)}' is not a valid id: use 1 to 64 letters, digits, '.', '_', ':', '@' or '-', "
            "starting with a letter or digit (e.g. 'acme-corp')"
        )
    return result


def email(value: Any) -> str:
    """Addresses are stored in lower case: the same person whatever case a CRM wrote."""
    result = _text_of(value).lower()
    if len(result) > 254 or not _EMAIL.fullmatch(result):
        raise FieldError(f"'{_shown(result)}' is not an email address (expected name@domain.tld)")
    return result


def domain(value: Any) -> str:
    result = _text_of(value).lower()
    if "://" in result or "/" in result or result.startswith("www."):
        bare = result.split("://")[-1].split("/")[0].removeprefix("www.")
        raise FieldError(f"'{_shown(result)}' is not a bare domain: write it as '{_shown(bare)}'")
    if len(result) > 253 or not _DOMAIN.fullmatch(result):
        raise FieldError(f"'{_shown(result)}' is not a domain name (expected e.g. 'acme.com')")
    return result


@cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def timezone(value: Any) -> str:
    """An IANA time zone; the case of the name is forgiven ('europe/berlin' is 'Europe/Berlin')."""
    result = _text_of(value)
    found = _zones().get(result.lower())
    if found is None:
        raise FieldError(
            f"unknown time zone '{_shown(result)}'{_suggest(result, _zones().values())}: "
            "expected an IANA name such as 'Europe/Berlin' or 'America/Chicago'"
        )
    return found


@cache
def country(value: str) -> str:
    """An ISO 3166 country by its code (DE, DEU) or name ('Germany'), stored as the two-letter code."""
    try:
        return str(pycountry.countries.lookup(value).alpha_2)
    except LookupError:
        names = [c.name for c in pycountry.countries] + [c.alpha_2 for c in pycountry.countries]
        raise FieldError(
            f"unknown country '{_shown(value)}'{_suggest(value, names)}: "
            "expected an ISO 3166 code such as 'DE' or 'US', or a country's English name"
        ) from None


def _country(value: Any) -> str:
    return country(_text_of(value))


@cache
def currency(value: str) -> str:
    try:
        return str(pycountry.currencies.lookup(value).alpha_3)
    except LookupError:
        codes = [c.alpha_3 for c in pycountry.currencies]
        raise FieldError(
            f"unknown currency '{_shown(value)}'{_suggest(value.upper(), codes)}: "
            "expected an ISO 4217 code such as 'EUR' or 'USD'"
        ) from None


def _currency(value: Any) -> str:
    return currency(_text_of(value))


def _suggest(word: str, choices: Any) -> str:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def count(value: Any) -> int:
    """A whole number, zero or more (employees)."""
    if isinstance(value, bool):
        raise FieldError(f"expected a whole number, found {_json_kind(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        stripped = value.strip()
        if not _INTEGER.fullmatch(stripped):
            hint = " (write it without separators)" if re.fullmatch(r"\d{1,3}([,. ]\d{3})+", stripped) else ""
            raise FieldError(f"'{_shown(stripped)}' is not a whole number{hint}")
        value = int(stripped)
    if not isinstance(value, int):
        raise FieldError(f"expected a whole number, found {_json_kind(value)}")
    if value < 0:
        raise FieldError(f"{value} is negative: expected 0 or more")
    return value


def amount(value: Any) -> float:
    """A number, zero or more (revenue, an opportunity's amount): plain digits with '.' for decimals."""
    if isinstance(value, bool):
        raise FieldError(f"expected a number, found {_json_kind(value)}")
    if isinstance(value, str):
        stripped = value.strip()
        try:
            value = float(stripped)
        except ValueError:
            hint = " (use '.' for decimals and no thousands separators)" if re.search(r"\d[,.]\d", stripped) else ""
            raise FieldError(f"'{_shown(stripped)}' is not a number{hint}") from None
    if not isinstance(value, int | float):
        raise FieldError(f"expected a number, found {_json_kind(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise FieldError(f"'{value}' is not a finite number")
    if result < 0:
        raise FieldError(f"{value} is negative: expected 0 or more")
    return result


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise FieldError(f"'{_shown(value)}' is not true or false (expected true/false, yes/no or 1/0)")


def day(value: Any) -> date:
    result = _text_of(value)
    try:
        return date.fromisoformat(result)
    except ValueError:
        raise FieldError(f"'{_shown(result)}' is not a date (expected YYYY-MM-DD, e.g. '2025-06-30')") from None


def moment(value: Any) -> datetime:
    """An ISO 8601 date or date and time; without a time zone it is UTC, as everywhere in this project."""
    result = _text_of(value)
    try:
        parsed = datetime.fromisoformat(result)
    except ValueError:
        raise FieldError(
            f"'{_shown(result)}' is not a date and time (expected ISO 8601, e.g. '2025-06-30' or "
            "'2025-06-30T14:00:00+02:00')"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


ACCOUNT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("id", "id", record_id, "the key: an import or upsert with the same id updates the account", True),
    FieldSpec("name", "text", text, "shown in the Temporal UI, reports and emails (`account.name`)", True, False),
    FieldSpec(
        "domain",
        "domain",
        domain,
        "events name accounts by domain (or an email's domain); a new person's email must be on it; unique",
    ),
    FieldSpec("industry", "text", text, "audiences and splits (`account.industry in ['Agriculture']`)"),
    FieldSpec("employees", "whole number", count, "audiences and splits (`account.employees >= 200`)"),
    FieldSpec("annual_revenue", "number", amount, "audiences and splits"),
    FieldSpec("country", "country", _country, "audiences; stored as the ISO 3166 two-letter code"),
    FieldSpec(
        "timezone",
        "time zone",
        timezone,
        "send windows and `wait until` run in the account's time zone (default UTC)",
        clearable=False,
    ),
    FieldSpec("owner_email", "email", email, "the sales owner: shown with a sales handoff, `account.owner_email`"),
    FieldSpec("created_at", "date and time", moment, "when the account was created in the CRM (default: now)"),
)
PERSON_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("email", "email", email, "the key (any case): emails go to it; events name people by it", True),
    FieldSpec("account_id", "id", record_id, "the person's account; it must exist or be imported with them", True),
    FieldSpec("first_name", "text", text, "greetings in templates (`person.first_name`)"),
    FieldSpec("last_name", "text", text, "templates, reports"),
    FieldSpec("job_title", "text", text, "role rules of buying groups (`person.job_title is matching('CTO')`)"),
    FieldSpec("department", "text", text, "role rules"),
    FieldSpec("seniority", "text", text, "role rules (e.g. 'c-level', 'vp', 'director')"),
    FieldSpec("phone", "text", text, "templates; shown to sales"),
    FieldSpec(
        "unsubscribed",
        "true/false",
        flag,
        "no email is ever sent to an unsubscribed person; an import never turns it back off",
        clearable=False,
    ),
    FieldSpec("created_at", "date and time", moment, "when the person was created in the CRM (default: now)"),
)
OPPORTUNITY_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("id", "id", record_id, "the key: the CRM's opportunity id", True),
    FieldSpec("account_id", "id", record_id, "the opportunity's account; it must exist or be imported with it", True),
    FieldSpec("name", "text", text, "shown in reports", True, False),
    FieldSpec("stage", "text", text, "the CRM's sales stage, e.g. 'qualification' or 'closed_won'"),
    FieldSpec("amount", "number", amount, "the opportunity's value, in `currency`"),
    FieldSpec("currency", "currency", _currency, "ISO 4217 code of `amount`, e.g. 'EUR'"),
    FieldSpec("close_date", "date", day, "expected or actual close date"),
    FieldSpec("is_closed", "true/false", flag, "the opportunity is closed (won or lost)", clearable=False),
    FieldSpec("is_won", "true/false", flag, "the opportunity is closed and won", clearable=False),
    FieldSpec("created_at", "date and time", moment, "when the opportunity was created in the CRM (default: now)"),
)
FIELDS: dict[Kind, dict[str, FieldSpec]] = {
    "accounts": {spec.name: spec for spec in ACCOUNT_FIELDS},
    "people": {spec.name: spec for spec in PERSON_FIELDS},
    "opportunities": {spec.name: spec for spec in OPPORTUNITY_FIELDS},
}
KEY: dict[Kind, str] = {"accounts": "id", "people": "email", "opportunities": "id"}

# Columns of the tables that files may not set, with what to do instead.
ENGINE_OWNED: dict[Kind, dict[str, str]] = {
    "accounts": {"updated_at": "set by the engine when the account changes"},
    "people": {
        "id": "the engine numbers people itself and matches them by email: rename the column (e.g. --map id=crm_id) "
        "to keep it as an attribute",
        "engagement_score": "computed by the engine from engagement events, not imported",
        "updated_at": "set by the engine when the person changes",
    },
    "opportunities": {"updated_at": "set by the engine when the opportunity changes"},
}
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
