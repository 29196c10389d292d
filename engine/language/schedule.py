"""Times of day in an account's time zone: send windows and `wait.until`, computed with croniter.

Pure functions of their inputs: workflow code calls them with `workflow.now()`, so replay gives the
same answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


def zone(name: str | None) -> ZoneInfo:
    """The account's zone; UTC when it has none or an unknown one (logged by the caller)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def next_time(cron: str, now: datetime, tz: str | None) -> datetime:
    """The first time strictly after `now` that matches `cron` in zone `tz`, as an aware UTC datetime."""
    local = now.astimezone(zone(tz))
    following: datetime = croniter(cron, local).get_next(datetime)
    return following.astimezone(UTC)


def window_opens_in(cron: str, now: datetime, tz: str | None) -> timedelta:
    """Zero when the window is open now (the current minute matches `cron`), else the wait until it opens.

    A send window such as '* 9-17 * * 1-5' is open in every minute it matches.
    """
    local = now.astimezone(zone(tz)).replace(second=0, microsecond=0)
    if croniter.match(cron, local):
        return timedelta(0)
    return next_time(cron, now, tz) - now
