"""Calendar periods (day, ISO week starting Monday, month, quarter, year; UTC) and the time between two moments,
computed in SQL, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Float, Integer, String, case, cast, extract, func, literal
from sqlalchemy.sql.elements import ColumnElement

from engine.analytics.choices import Grain

_MONTHS = {Grain.month: 1, Grain.quarter: 3, Grain.year: 12}
_AFTER_THE_CALENDAR = "9999-12-31 24:00:00"  # SQLite: sorts after every stored moment (hour 24 > 23)


def period_start(moment: ColumnElement[Any], grain: Grain, dialect: str) -> ColumnElement[str]:
    """The first day of the period holding `moment` (UTC), as 'YYYY-MM-DD' text."""
    if dialect == "sqlite":
        # SQLite stores UTC as naive text, 'YYYY-MM-DD HH:MM:SS.ffffff': the period is read from the date's text.
        # Its date functions round to the millisecond (23:59:59.9999 became the next day), and text is cheaper.
        day = func.substr(moment, 1, 10, type_=String)
        match grain:
            case Grain.day:
                return day
            case Grain.week:
                # 'weekday 0' goes forward to Sunday, then back six days to Monday.
                return func.date(day, "weekday 0", "-6 days")
            case Grain.month:
                return func.substr(moment, 1, 8, type_=String) + "01"
            case Grain.quarter:
                # The quarter's first month, chosen on the zero-padded month text: no arithmetic on text.
                month = func.substr(moment, 6, 2, type_=String)
                first = case((month <= "03", "01"), (month <= "06", "04"), (month <= "09", "07"), else_="10")
                return func.substr(moment, 1, 5, type_=String) + first + "-01"
            case Grain.year:
                return func.substr(moment, 1, 5, type_=String) + "01-01"
    return func.to_char(func.date_trunc(grain.value, func.timezone("UTC", moment)), "YYYY-MM-DD")


def period_edge(moment: ColumnElement[Any], grain: Grain, periods: int, dialect: str) -> ColumnElement[Any]:
    """The first moment of the period `periods` after the one holding `moment` (before it when negative), in the
    stored form of a moment, so that `occurred_at` compared with it is a range an index serves."""
    days = {Grain.day: 1, Grain.week: 7}.get(grain, 0) * periods
    months = _MONTHS.get(grain, 0) * periods
    if dialect == "sqlite":
        # 'YYYY-MM-DD' sorts just before every stored 'YYYY-MM-DD HH:MM:SS.ffffff' of that day: text compares right.
        shift = f"{days:+d} days" if days else f"{months:+d} months"
        edge = func.date(period_start(moment, grain, dialect), shift)
        # date() is NULL past 9999-12-31: the period never begins, so every later moment is before it.
        return func.coalesce(edge, literal(_AFTER_THE_CALENDAR, String)) if periods > 0 else edge
    start = func.date_trunc(grain.value, func.timezone("UTC", moment))
    return func.timezone("UTC", start + func.make_interval(0, months, 0, days))


def seconds_between(earlier: ColumnElement[Any], later: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The seconds from one stored moment to another, to the microsecond: the same float Python's
    `(later - earlier).total_seconds()` gives (both divide a whole number of microseconds by a million)."""
    if dialect == "sqlite":
        # From the stored text 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds since 1970 from strftime, microseconds
        # from the text. julianday() would keep only milliseconds.
        def microseconds(moment: ColumnElement[Any]) -> ColumnElement[int]:
            whole = cast(func.strftime("%s", func.substr(moment, 1, 19)), Integer)
            return whole * 1_000_000 + cast(func.substr(moment, 21, 6), Integer)

        return (microseconds(later) - microseconds(earlier)) / literal(1_000_000.0, Float)
    return cast(extract("epoch", later - earlier), Float)


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
