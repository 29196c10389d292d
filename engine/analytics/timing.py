"""Time helpers shared by the reports: one notion of UTC whatever the database hands back, and medians."""

from __future__ import annotations

from datetime import UTC, datetime
from statistics import median

from engine.analytics.errors import AnalyticsError


def utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes (stored as UTC), PostgreSQL aware ones: both become aware UTC."""
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def median_seconds(values: list[float]) -> float | None:
    return round(median(values), 3) if values else None


def percent(part: int, whole: int) -> float | None:
    """Percent with one decimal; None when there is nothing to divide by (an empty step, an empty cohort)."""
    return round(100.0 * part / whole, 1) if whole else None


def parse_moment(text: str | None, option: str) -> datetime | None:
    """'2026-01-31' or an ISO time -> aware UTC; naive input is taken as UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AnalyticsError(f"{option} '{text}' is not a date: use YYYY-MM-DD or an ISO time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
