"""Cohort table: containers grouped by the period they met the inclusion metric, followed period by period.

A container joins the cohort of the period in which its `include_min`-th inclusion event happened. In
period p after that (period 0 is the inclusion period itself) it counts when it had at least `return_min`
return events in that period, at or after its inclusion. Rolling: it counts in period p only if it met
the return metric in every period 0..p, so the row shows how many kept coming back.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE
from sqlmodel import col

from engine.analytics.bounds import MOST_EVENTS_NEEDED, MOST_PERIODS
from engine.analytics.choices import Container, Grain
from engine.analytics.containers import EVENT, Filters, Population, population
from engine.analytics.errors import AnalyticsError
from engine.analytics.evaluation import prepared
from engine.analytics.firsts import first_events, later_than
from engine.analytics.periods import period_after, period_start, periods_between
from engine.analytics.report import Report, ReportModel
from engine.analytics.selectors import Selector
from engine.analytics.timing import percent
from engine.db import ActivityEvent, utcnow


class CohortRow(ReportModel):
    cohort: str  # the period's first day, YYYY-MM-DD
    size: int
    counts: list[int]  # per period 0..periods-1
    percents: list[float | None]


class CohortReport(Report):
    report: str = "cohort"
    inclusion: str
    returning: str
    grain: Grain
    rolling: bool
    rows: list[CohortRow]


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
) -> CohortReport:
    if periods < 1 or include_min < 1 or return_min < 1:
        raise AnalyticsError("periods, include_min and return_min must be at least 1")
    if periods > MOST_PERIODS:
        raise AnalyticsError(f"at most {MOST_PERIODS} periods, got {periods:,}")
    if max(include_min, return_min) > MOST_EVENTS_NEEDED:
        # A database cannot compare a count with a number past 64 bits (it failed the request): refused plainly.
        raise AnalyticsError(f"include_min and return_min can be at most {MOST_EVENTS_NEEDED:,} events")
    people = population(container, filters)
    inclusion, returning = prepared(engine, people, inclusion), prepared(engine, people, returning)
    dialect = engine.dialect.name
    occurred: ColumnElement[Any] = EVENT.c.occurred_at
    included = _included(people, inclusion, include_min)
    members = select(included.c.cid, period_start(included.c.t, grain, dialect).label("cohort"))
    returned_period = period_start(occurred, grain, dialect)
    returns = (
        people.select(included.c.cid, returned_period.label("period"))
        .join_from(people.source, included, included.c.cid == people.id)
        .where(returning.condition(), later_than(included))
        .group_by(included.c.cid, returned_period)
        .having(func.count() >= return_min)
    )
    with engine.connect() as connection:
        cohort_of = {cid: date.fromisoformat(start) for cid, start in connection.execute(members)}
        offsets: dict[str, set[int]] = {}
        for cid, start in connection.execute(returns):
            offsets.setdefault(cid, set()).add(periods_between(cohort_of[cid], date.fromisoformat(start), grain))
    by_cohort: dict[date, list[str]] = {}
    for cid, start in cohort_of.items():
        by_cohort.setdefault(start, []).append(cid)
    rows = []
    today = utcnow().date()
    for start, cids in sorted(by_cohort.items()):
        # A period that has not begun shows 0, whatever the log holds for it (events stamped in the future).
        counts = [
            sum(1 for cid in cids if _counts(offsets.get(cid, set()), period, rolling))
            if period_after(start, period, grain) <= today
            else 0
            for period in range(periods)
        ]
        rows.append(
            CohortRow(
                cohort=start.isoformat(),
                size=len(cids),
                counts=counts,
                percents=[percent(count, len(cids)) for count in counts],
            )
        )
    return CohortReport(
        container=container,
        filters=filters.describe(),
        inclusion=f"{inclusion.label} >= {include_min}",
        returning=f"{returning.label} >= {return_min}",
        grain=grain,
        rolling=rolling,
        rows=rows,
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


def _counts(offsets: set[int], period: int, rolling: bool) -> bool:
    return all(p in offsets for p in range(period + 1)) if rolling else period in offsets
