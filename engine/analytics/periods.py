"""Calendar periods (day, ISO week starting Monday, month, quarter, year; UTC) computed in SQL, the same on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import String, case, func
from sqlalchemy.sql.elements import ColumnElement

from engine.analytics.choices import Grain

_MONTHS = {Grain.month: 1, Grain.quarter: 3, Grain.year: 12}


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
            case Grain.quarter:
                # The quarter's first month, chosen on the zero-padded month text: no arithmetic on text.
                month = func.strftime("%m", moment, type_=String)
                first = case((month <= "03", "01"), (month <= "06", "04"), (month <= "09", "07"), else_="10")
                return func.strftime("%Y-", moment, type_=String) + first + "-01"
            case Grain.year:
                return func.strftime("%Y-01-01", moment)
    return func.to_char(func.date_trunc(grain.value, func.timezone("UTC", moment)), "YYYY-MM-DD")


def periods_between(start: date, later: date, grain: Grain) -> int:
    """How many periods `later` is after `start` (both period starts; negative when it is before)."""
    match grain:
        case Grain.day:
            return (later - start).days
        case Grain.week:
            return (later - start).days // 7
    months = (later.year - start.year) * 12 + later.month - start.month
    return months // _MONTHS[grain]


def period_after(start: date, periods: int, grain: Grain) -> date:
    """The first day of the period `periods` after the one starting on `start` (before it when negative).

    Raises ValueError or OverflowError past the calendar's ends (years 1 and 9999)."""
    match grain:
        case Grain.day:
            return start + timedelta(days=periods)
        case Grain.week:
            return start + timedelta(weeks=periods)
    months = start.year * 12 + start.month - 1 + periods * _MONTHS[grain]
    return date(months // 12, months % 12 + 1, 1)


def has_begun(start: date, periods: int, grain: Grain, today: date) -> bool:
    """Whether the period `periods` after (or before) the one starting on `start` has begun by `today`. A period
    past the calendar's end has not; one before its beginning has (it holds no events either way)."""
    try:
        return period_after(start, periods, grain) <= today
    except (ValueError, OverflowError):
        return periods < 0
