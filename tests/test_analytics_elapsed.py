"""seconds_between (SQL) gives the float Python's timedelta gives, to the microsecond, on SQLite and PostgreSQL:
the canvas's median times are computed from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import literal, select
from sqlalchemy.engine import Engine

from engine.analytics.periods import seconds_between
from engine.db import Instant

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)

START = datetime(2026, 2, 27, 23, 59, 59, 999_999, tzinfo=UTC)
GAPS = [
    timedelta(0),  # the same instant
    timedelta(microseconds=1),
    timedelta(microseconds=999_999),
    timedelta(seconds=1, microseconds=1),  # across a second boundary from .999999
    timedelta(days=1, microseconds=1),  # across the month's end (2026 is not a leap year)
    timedelta(days=366, hours=5, microseconds=123_456),  # across a year
    timedelta(days=3_000, seconds=7, microseconds=500_000),
]


@pytest.mark.parametrize("gap", GAPS, ids=str)
def test_the_same_seconds_as_python(engine: Engine, gap: timedelta) -> None:
    earlier, later = START, START + gap
    query = select(
        seconds_between(literal(earlier, Instant()), literal(later, Instant()), engine.dialect.name),
        seconds_between(literal(later, Instant()), literal(earlier, Instant()), engine.dialect.name),
    )
    with engine.connect() as connection:
        forward, backward = connection.execute(query).one()
    assert forward == gap.total_seconds()
    assert backward == -gap.total_seconds()


def test_whole_seconds_stored_without_a_fraction(engine: Engine) -> None:
    """A moment at a whole second reads as such (SQLite stores '.000000'; nothing is lost either way)."""
    earlier, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    with engine.connect() as connection:
        seconds = connection.execute(
            select(seconds_between(literal(earlier, Instant()), literal(later, Instant()), engine.dialect.name))
        ).scalar()
    assert seconds == 2.0
