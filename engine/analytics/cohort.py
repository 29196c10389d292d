"""Cohort table: containers grouped by the period they met the inclusion metric, followed period by period.

A container joins the cohort of the period in which its `include_min`-th inclusion event happened. In
period p after that (period 0 is the inclusion period itself) it counts when it had at least `return_min`
return events in that period, at or after its inclusion. Rolling: it counts in period p only if it met
the return metric in every period 0..p, so the row shows how many kept coming back. `returns_after_inclusion`
counts CJA's way instead, churn, latency and side-by-side cohorts (`by`) are further tables: cohort_rows.py and
cohort_by.py say how.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE
from sqlmodel import col

from engine.analytics import cohort_by
from engine.analytics.bounds import MOST_EVENTS_NEEDED, MOST_PERIODS
from engine.analytics.choices import Container, Grain
from engine.analytics.cohort_rows import CohortRow, CohortTables, Counting, counted_tables
from engine.analytics.containers import EVENT, Filters, Population, population
from engine.analytics.errors import AnalyticsError
from engine.analytics.evaluation import prepared
from engine.analytics.firsts import earlier_than, first_events, later_than
from engine.analytics.periods import period_start, periods_between
from engine.analytics.report import Report
from engine.analytics.selectors import Selector
from engine.db import ActivityEvent, utcnow

__all__ = ["CohortGroup", "CohortReport", "CohortRow", "cohort"]


class CohortGroup(CohortTables):
    """The tables of the containers with one value of the `by` dimension."""

    value: str


class CohortReport(Report):
    report: str = "cohort"
    inclusion: str
    returning: str
    grain: Grain
    rolling: bool
    rows: list[CohortRow]
    returns_after_inclusion: bool = False
    churn: list[CohortRow] | None = None
    latency: list[CohortRow] | None = None
    latency_periods: list[int] | None = None  # the latency columns: periods -(N-1)..N-1 around inclusion
    by: str | None = None
    split: str | None = None  # the variant_split node of `by: variant`
    groups: list[CohortGroup] | None = None  # one per value of `by`, sorted, '(none)' last

    def overall(self) -> CohortTables:
        """The tables of every included container."""
        return CohortTables(rows=self.rows, churn=self.churn, latency=self.latency)


def cohort(
    engine: Engine,
    inclusion: Selector,
    returning: Selector,
    container: Container,
    filters: Filters,
    grain: Grain = Grain.month,
    periods: int = 6,
    include_min: int = 1,
    return_min: int = 1,
    rolling: bool = False,
    *,
    returns_after_inclusion: bool = False,
    churn: bool = False,
    latency: bool = False,
    by: str | None = None,
    split: str | None = None,
) -> CohortReport:
    if periods < 1 or include_min < 1 or return_min < 1:
        raise AnalyticsError("periods, include_min and return_min must be at least 1")
    if periods > MOST_PERIODS:
        raise AnalyticsError(f"at most {MOST_PERIODS} periods, got {periods:,}")
    if max(include_min, return_min) > MOST_EVENTS_NEEDED:
        # A database cannot compare a count with a number past 64 bits (it failed the request): refused plainly.
        raise AnalyticsError(f"include_min and return_min can be at most {MOST_EVENTS_NEEDED:,} events")
    dimension = cohort_by.dimension(engine, by, split, filters)
    people = population(container, filters)
    inclusion, returning = prepared(engine, people, inclusion), prepared(engine, people, returning)
    dialect = engine.dialect.name
    included = _included(people, inclusion, include_min)
    members = cohort_by.members(included, period_start(included.c.t, grain, dialect), dimension, people, filters)
    with engine.connect() as connection:
        found = [tuple(row) for row in connection.execute(members)]
        cohort_of = {row[0]: date.fromisoformat(row[1]) for row in found}
        after = _returns(people, returning, included, return_min, later_than(included), grain, dialect)
        returns = _offsets(connection, after, cohort_of, grain)
        if latency:
            # Before the inclusion event: only periods before the inclusion period count (period 0 is after it).
            before = _returns(people, returning, included, return_min, earlier_than(included), grain, dialect)
            for cid, earlier in _offsets(connection, before, cohort_of, grain).items():
                returns.setdefault(cid, set()).update(p for p in earlier if p < 0)
    counting = Counting(grain, periods, rolling, returns_after_inclusion, churn, latency, utcnow().date())
    overall = counted_tables(cohort_of, returns, counting)
    groups = None
    if dimension is not None:
        values = cohort_by.values_of(engine, found, dimension, container, filters)
        groups = []
        for value in cohort_by.ordered(values):
            members_of = {cid: cohort_of[cid] for cid, texts in values.items() if value in texts}
            counted = counted_tables(members_of, returns, counting)
            groups.append(CohortGroup(value=value, rows=counted.rows, churn=counted.churn, latency=counted.latency))
    return CohortReport(
        container=container,
        filters=filters.describe(),
        inclusion=f"{inclusion.label} >= {include_min}",
        returning=f"{returning.label} >= {return_min}",
        grain=grain,
        rolling=rolling,
        rows=overall.rows,
        returns_after_inclusion=returns_after_inclusion,
        churn=overall.churn,
        latency=overall.latency,
        latency_periods=counting.latency_periods() if latency else None,
        by=dimension.name if dimension else None,
        split=dimension.split if dimension else None,
        groups=groups,
    )


def _included(people: Population, inclusion: Selector, include_min: int) -> CTE:
    """cid, t, eid of the event with which each container met the inclusion metric (its include_min-th)."""
    occurred = col(ActivityEvent.occurred_at)
    if include_min == 1:
        return first_events(people, inclusion, "included")
    order = func.row_number().over(partition_by=people.id, order_by=(occurred, col(ActivityEvent.id)))
    ranked = (
        people.select(people.id.label("cid"), occurred.label("t"), col(ActivityEvent.id).label("eid"), order.label("n"))
        .where(inclusion.condition())
        .subquery("ranked")
    )
    return select(ranked.c.cid, ranked.c.t, ranked.c.eid).where(ranked.c.n == include_min).cte("included")


def _returns(
    people: Population,
    returning: Selector,
    included: CTE,
    return_min: int,
    when: ColumnElement[bool],
    grain: Grain,
    dialect: str,
) -> Select[Any]:
    """cid, period start of each period in which a container had `return_min` return events meeting `when`."""
    returned_period = period_start(EVENT.c.occurred_at, grain, dialect)
    return (
        people.select(included.c.cid, returned_period.label("period"))
        .join_from(people.source, included, included.c.cid == people.id)
        .where(returning.condition(), when)
        .group_by(included.c.cid, returned_period)
        .having(func.count() >= return_min)
    )


def _offsets(
    connection: Connection, returns: Select[Any], cohort_of: dict[str, date], grain: Grain
) -> dict[str, set[int]]:
    """container id -> the periods, counted from its inclusion period, in which it returned."""
    offsets: dict[str, set[int]] = {}
    for cid, start in connection.execute(returns):
        offsets.setdefault(cid, set()).add(periods_between(cohort_of[cid], date.fromisoformat(start), grain))
    return offsets
