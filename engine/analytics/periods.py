"""Calendar periods (day, ISO week starting Monday, month) computed in SQL, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.sql.elements import ColumnElement

from engine.analytics.choices import Grain


def period_start(moment: ColumnElement[Any], grain: Grain, dialect: str) -> ColumnElement[str]:
    """The first day of the period holding `moment` (UTC), as 'YYYY-MM-DD' text."""
    if dialect == "sqlite":
        # SQLite stores UTC as naive text; 'weekday 0' goes forward to Sunday, then back six days to Monday.
        match grain:
            case Grain.day:
                return func.date(moment)
            case Grain.week:
                return func.date(moment, "weekday 0", "-6 days")
            case Grain.month:
                return func.strftime("%Y-%m-01", moment)
    return func.to_char(func.date_trunc(grain.value, func.timezone("UTC", moment)), "YYYY-MM-DD")


def periods_between(start: date, later: date, grain: Grain) -> int:
    """How many periods `later` is after `start` (both period starts)."""
    match grain:
        case Grain.day:
            return (later - start).days
        case Grain.week:
            return (later - start).days // 7
        case Grain.month:
            return (later.year - start.year) * 12 + later.month - start.month


def period_after(start: date, periods: int, grain: Grain) -> date:
    """The first day of the period `periods` after the one starting on `start`."""
    match grain:
        case Grain.day:
            return start + timedelta(days=periods)
        case Grain.week:
            return start + timedelta(weeks=periods)
        case Grain.month:
            months = start.year * 12 + start.month - 1 + periods
            return date(months // 12, months % 12 + 1, 1)
