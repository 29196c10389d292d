"""Durations as marketers write them ('30m', '12h', '7d', '2w') and cron expressions, checked early."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

from croniter import CroniterError, croniter

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
# Longer is a typo, and would overflow timedelta and Temporal's timers (99999999999999999999d).
MAX_DURATION = timedelta(days=3650)
MAX_CRON_LENGTH = 100  # '0 9 * * 1-5' is 11 characters; croniter expands every list it is given


def parse_duration(text: object) -> timedelta:
    """'7d' -> 7 days. Raises ValueError with a message a marketer can act on."""
    if isinstance(text, timedelta):
        return text
    match = _DURATION.match(str(text).strip()) if isinstance(text, str | int) else None
    if match is None:
        raise ValueError(
            f"invalid duration '{_cut(text)}': expected a number and a unit s, m, h, d or w (e.g. '30m', '7d')"
        )
    digits = match.group(1).lstrip("0")
    if not digits:
        raise ValueError(f"invalid duration '{text}': must be longer than zero")
    seconds = int(digits) * _UNIT_SECONDS[match.group(2)] if len(digits) <= 12 else None
    if seconds is None or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration '{_cut(text)}': at most 10 years ('{MAX_DURATION.days}d')")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest exact form: 604800 s -> '1w', 90 min -> '90m'."""
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def check_cron(text: object) -> str:
    """Return the expression if croniter accepts it as 5 fields and it matches some date; else a ValueError
    naming the bad field."""
    if not isinstance(text, str):
        raise ValueError(f"invalid cron '{_cut(text)}': expected 5 fields: minute hour day month weekday")
    if len(text) > MAX_CRON_LENGTH:
        raise ValueError(f"invalid cron '{_cut(text)}': longer than {MAX_CRON_LENGTH} characters")
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"invalid cron '{text}': expected 5 fields (minute hour day month weekday), got {len(fields)}")
    if croniter.is_valid(text):
        if not _ever_matches(text):
            day, month = fields[2], fields[3]
            raise ValueError(f"invalid cron '{text}': it never matches: no month '{month}' has a day '{day}'")
        return text
    for position, ((name, low, high), field) in enumerate(zip(_CRON_FIELDS, fields, strict=True)):
        probe = " ".join(field if index == position else "*" for index in range(5))
        if not croniter.is_valid(probe):
            raise ValueError(
                f"invalid cron '{text}': {name} '{field}' is out of range or malformed (expected {low}-{high})"
            )
    raise ValueError(f"invalid cron '{text}': croniter cannot read it")


@lru_cache(maxsize=1024)
def _ever_matches(text: str) -> bool:
    """False for a cron no date satisfies ('0 0 31 2 *'); the send window and `wait.until` would raise at
    run time. Day of month and month are the only fields that can rule out every date, and croniter gives
    up after searching decades, so the year started from does not matter."""
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        return False
    return True


def _cut(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]}"
