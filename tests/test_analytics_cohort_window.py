"""The cohort report reads each container's return events only within the periods its tables show (issue 18,
report speed): periods 0..N-1 from the inclusion event on, and with latency -(N-1)..-1 before the inclusion
period. Events on both sides of each edge of that window, to the microsecond, per grain and per container, on
SQLite and PostgreSQL; the tables are computed by hand from the dates below.

Every case has N = 3 periods and one container that fills the form once (its inclusion) and visits:
- at the first moment of period 1 and the last moment of period 2: counted in periods 1 and 2;
- at the first moment of period 3, past the window: shown nowhere;
- for latency, at the first moment of period -2 and the last of period -1 (counted), the last moment of period -3
  (past the window) and the first moment of period 0, before the inclusion event (period 0 counts only after it).
So retention is [0, 1, 1] and latency (periods -2..2) [1, 1, 0, 1, 1]. All in 2017-2023, long begun.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import literal, select
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import add_account

from engine.analytics.choices import Container, Grain
from engine.analytics.cohort import CohortReport, cohort
from engine.analytics.containers import Filters
from engine.analytics.periods import period_after, period_edge
from engine.analytics.selectors import parse_selector
from engine.db import ActivityEvent, BuyingGroup, BuyingGroupMember, Instant, Person, SolutionInterestRecord

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)

JUST = timedelta(microseconds=1)
ACCOUNT = "edge-corp"
OPPORTUNITY = "opp-1"


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


# grain: (inclusion, first moment of period -2, of period 0, of period 1, of period 3)
EDGES = {
    Grain.day: (at(2020, 1, 15, 12), at(2020, 1, 13), at(2020, 1, 15), at(2020, 1, 16), at(2020, 1, 18)),
    Grain.week: (at(2020, 1, 15, 12), at(2019, 12, 30), at(2020, 1, 13), at(2020, 1, 20), at(2020, 2, 3)),
    Grain.month: (at(2020, 1, 31, 12), at(2019, 11, 1), at(2020, 1, 1), at(2020, 2, 1), at(2020, 4, 1)),
    Grain.quarter: (at(2020, 5, 15, 12), at(2019, 10, 1), at(2020, 4, 1), at(2020, 7, 1), at(2021, 1, 1)),
    Grain.year: (at(2020, 6, 1, 12), at(2018, 1, 1), at(2020, 1, 1), at(2021, 1, 1), at(2023, 1, 1)),
}
COHORTS = {Grain.day: "2020-01-15", Grain.week: "2020-01-13", Grain.month: "2020-01-01"}
COHORTS |= {Grain.quarter: "2020-04-01", Grain.year: "2020-01-01"}


def load(engine: Engine, grain: Grain, extra: list[datetime] | None = None) -> None:
    """One account, one person in one buying group, one opportunity; the person's form fill and visits."""
    inclusion, minus_two, zero, one, three = EDGES[grain]
    visits = [one, three - JUST, three, minus_two, minus_two - JUST, zero - JUST, zero, *(extra or [])]
    add_account(engine, ACCOUNT)
    with Session(engine) as session:
        session.add(SolutionInterestRecord(id="seeds", name="Seeds", role_template="standard"))
        session.flush()  # the interest before the group that names it
        person = Person(account_id=ACCOUNT, email="pat@edge.example")
        group = BuyingGroup(account_id=ACCOUNT, solution_interest_id="seeds")
        session.add_all([person, group])
        session.flush()
        assert person.id is not None and group.id is not None
        session.add(BuyingGroupMember(buying_group_id=group.id, person_id=person.id, role="champion"))
        opened = ("opportunity_created", None, at(2010, 1, 1), {"opportunity_id": OPPORTUNITY})
        filled: tuple[str, int | None, datetime, dict[str, str]] = ("form_fill", person.id, inclusion, {})
        events = [opened, filled, *(("web_visit", person.id, moment, {}) for moment in visits)]
        for number, (kind, person_id, moment, payload) in enumerate(events):
            session.add(
                ActivityEvent(
                    key=f"e{number}",
                    type=kind,
                    account_id=ACCOUNT,
                    person_id=person_id,
                    occurred_at=moment,
                    payload=payload,
                )
            )
        session.commit()


def report(engine: Engine, grain: Grain, container: Container = Container.account, return_min: int = 1) -> CohortReport:
    return cohort(
        engine,
        parse_selector("form_fill"),
        parse_selector("web_visit"),
        container,
        Filters(),
        grain,
        3,
        return_min=return_min,
        latency=True,
    )


@pytest.mark.parametrize("grain", list(Grain))
def test_each_edge_of_the_window(engine: Engine, grain: Grain) -> None:
    load(engine, grain)
    result = report(engine, grain)
    assert [(row.cohort, row.size, row.counts) for row in result.rows] == [(COHORTS[grain], 1, [0, 1, 1])]
    assert result.latency is not None
    assert [row.counts for row in result.latency] == [[1, 1, 0, 1, 1]]


@pytest.mark.parametrize("container", [Container.person, Container.buying_group, Container.opportunity])
def test_every_container_reads_the_same_window(engine: Engine, container: Container) -> None:
    load(engine, Grain.week)
    result = report(engine, Grain.week, container)
    assert [(row.cohort, row.size, row.counts) for row in result.rows] == [("2020-01-13", 1, [0, 1, 1])]
    assert result.latency is not None
    assert [row.counts for row in result.latency] == [[1, 1, 0, 1, 1]]


@pytest.mark.parametrize("container", [Container.account, Container.buying_group])
def test_a_return_threshold_counts_inside_the_window_only(engine: Engine, container: Container) -> None:
    # A second visit at the last moment of period 2 and in period -2 (2 there: counted), one more past each end
    # and in period 0 before inclusion (periods 3, -3 and 0 stay unshown or empty).
    _, minus_two, zero, _, three = EDGES[Grain.week]
    load(engine, Grain.week, [three - JUST, minus_two + timedelta(days=1), three, minus_two - JUST, zero + JUST])
    result = report(engine, Grain.week, container, return_min=2)
    assert [row.counts for row in result.rows] == [[0, 0, 1]]
    assert result.latency is not None
    assert [row.counts for row in result.latency] == [[1, 0, 0, 0, 1]]


MOMENTS = [at(2020, 1, 15, 12) + JUST, at(2020, 12, 31, 23) + timedelta(minutes=59, seconds=59), at(2021, 3, 1)]


@pytest.mark.parametrize("grain", list(Grain))
def test_the_edge_in_sql_is_the_period_after(engine: Engine, grain: Grain) -> None:
    """period_edge (SQL) against period_after (Python), compared with a stored moment the way reports compare."""
    dialect = engine.dialect.name
    with engine.connect() as connection:
        for moment in MOMENTS:
            for periods in range(-3, 4):
                start = _period_start(moment, grain)
                edge = at(*period_after(start, periods, grain).timetuple()[:3])
                stored = literal(moment, Instant())
                sql_edge = period_edge(stored, grain, periods, dialect)
                before, after = literal(edge - JUST, Instant()), literal(edge, Instant())
                assert connection.execute(select(before < sql_edge, after < sql_edge)).one() == (True, False)


def test_past_the_calendar_every_moment_is_before_the_edge(engine: Engine) -> None:
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    edge = period_edge(literal(datetime(9999, 12, 20, tzinfo=UTC), Instant()), Grain.week, 4, engine.dialect.name)
    with engine.connect() as connection:
        assert connection.execute(select(literal(last, Instant()) < edge)).scalar() is True


def _period_start(moment: datetime, grain: Grain) -> date:
    """The first day of the period holding `moment` (UTC), worked out here without the code under test."""
    day = moment.date()
    match grain:
        case Grain.day:
            return day
        case Grain.week:
            return day - timedelta(days=day.weekday())
        case Grain.month:
            return day.replace(day=1)
        case Grain.quarter:
            return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)
