"""Time helpers shared by the reports: one notion of UTC whatever the database hands back, and medians."""

from __future__ import annotations

from datetime import UTC, datetime
from statistics import median


def utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes (stored as UTC), PostgreSQL aware ones: both become aware UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def median_seconds(values: list[float]) -> float | None:
    return round(median(values), 3) if values else None


def percent(part: int, whole: int) -> float | None:
    """Percent with one decimal; None when there is nothing to divide by (an empty step, an empty cohort)."""
    return round(100.0 * part / whole, 1) if whole else None
