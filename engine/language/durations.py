"""Durations as marketers write them ('30m', '12h', '7d', '2w') and cron expressions, checked early."""

from __future__ import annotations

import re
from datetime import timedelta

from croniter import croniter

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
DURATION_PATTERN = r"^\d+\s*[smhdw]$"


def parse_duration(text: object) -> timedelta:
    """'7d' -> 7 days. Raises ValueError with a message a marketer can act on."""
    if isinstance(text, timedelta):
        return text
    match = _DURATION.match(str(text).strip()) if isinstance(text, str | int) else None
    if match is None:
        raise ValueError(f"invalid duration '{text}': expected a number and a unit s, m, h, d or w (e.g. '30m', '7d')")
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError(f"invalid duration '{text}': must be longer than zero")
    return timedelta(seconds=amount * _UNIT_SECONDS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    """The shortest exact form: 604800 s -> '1w', 90 min -> '90m'."""
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def check_cron(text: object) -> str:
    """Return the expression if croniter accepts it as 5 fields; else a ValueError naming the bad field."""
    if not isinstance(text, str):
        raise ValueError(f"invalid cron '{text}': expected 5 fields: minute hour day month weekday")
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"invalid cron '{text}': expected 5 fields (minute hour day month weekday), got {len(fields)}")
    if croniter.is_valid(text):
        return text
    for position, ((name, low, high), field) in enumerate(zip(_CRON_FIELDS, fields, strict=True)):
        probe = " ".join(field if index == position else "*" for index in range(5))
        if not croniter.is_valid(probe):
            raise ValueError(
                f"invalid cron '{text}': {name} '{field}' is out of range or malformed (expected {low}-{high})"
            )
    raise ValueError(f"invalid cron '{text}': croniter cannot read it")
