"""Cohort table: containers grouped by the period they met the inclusion metric, followed period by period.

A container joins the cohort of the period in which its `include_min`-th inclusion event happened. In
period p after that (period 0 is the inclusion period itself) it counts when it had at least `return_min`
return events in that period, at or after its inclusion. Rolling: it counts in period p only if it met
the return metric in every period 0..p, so the row shows how many kept coming back. `returns_after_inclusion`
counts CJA's way instead, churn, latency and side-by-side cohorts (`by`) are further tables: cohort_rows.py and
cohort_by.py say how.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from functools import cache, partial
from typing import Any

from sqlalchemy import and_, case, distinct, func, or_, select, true, type_coerce
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE
from sqlalchemy.sql.sqltypes import NullType
from sqlmodel import col

from engine.analytics import cohort_by
from engine.analytics.bounds import MOST_EVENTS_NEEDED, MOST_PERIODS
from engine.analytics.choices import Container, Grain
from engine.analytics.cohort_rows import CohortRow, CohortTables, Counting, Followed, counted_tables
from engine.analytics.containers import EVENT, Filters, Population, population
from engine.analytics.errors import AnalyticsError
from engine.analytics.evaluation import prepared
from engine.analytics.firsts import first_events, later_than, materialized
from engine.analytics.periods import period_edge, period_start, periods_between
from engine.analytics.report import Report
from engine.analytics.selectors import Selector
from engine.collector import cycle_collector_paused
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


@cycle_collector_paused()
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
    people = population(container, filters, engine.dialect.name)
    inclusion, returning = prepared(engine, people, inclusion), prepared(engine, people, returning)
    dialect = engine.dialect.name
    included = _included(people, inclusion, include_min)
    cohort_start = period_start(included.c.t, grain, dialect)
    # Only the periods the tables show are read, each container's as one range of the (type, container, time)
    # indexes: periods 0..periods-1 from its inclusion event on; for latency also -(periods-1)..-1 before its
    # inclusion period, in the same range, leaving out period 0's events before the inclusion event (they count
    # nowhere).
    moment, edge = EVENT.c.occurred_at, partial(period_edge, included.c.t, grain, dialect=dialect)
    shown = and_(later_than(included), moment < edge(periods))
    if latency and periods > 1:
        shown = and_(moment >= edge(1 - periods), moment < edge(periods), or_(moment < edge(0), later_than(included)))
    found: list[tuple[Any, ...]] = []  # the containers and their cohorts, one by one (for a dimension)
    one_by_one: dict[str, Followed] = {}
    # All rows in one fetch each (`all()`), not one per row.
    with engine.connect() as connection:
        if dimension is None:
            # Alike containers counted together by the database: one row per cohort and set of return periods.
            grouped = _grouped(people, returning, included, return_min, shown, grain, cohort_start)
            followed = _followed_groups(connection.execute(grouped).all(), grain)
        else:
            members = cohort_by.members(included, cohort_start, dimension, people, filters)
            found = [tuple(row) for row in connection.execute(members).all()]
            cohort_of = {row[0]: date.fromisoformat(row[1]) for row in found}
            after = _returns(people, returning, included, return_min, shown, grain)
            returns = _offsets(connection.execute(after).all(), cohort_of, grain)
            one_by_one = {cid: Followed(start, returns.get(cid, frozenset())) for cid, start in cohort_of.items()}
            followed = list(one_by_one.values())
    counting = Counting(grain, periods, rolling, returns_after_inclusion, churn, latency, utcnow().date())
    overall = counted_tables(followed, counting)
    groups = None
    if dimension is not None:
        values = cohort_by.values_of(engine, found, dimension, container, filters)
        groups = []
        for value in cohort_by.ordered(values):
            counted = counted_tables((one_by_one[cid] for cid, texts in values.items() if value in texts), counting)
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
    # A buying group's or an opportunity's events are read through its account (Population.events_of), which
    # first_events carries for them: so does this.
    account = [EVENT.c.account_id.label("account")] if people.listed is not None else []
    ranked = (
        people.select(
            people.id.label("cid"), occurred.label("t"), col(ActivityEvent.id).label("eid"), *account, order.label("n")
        )
        .where(inclusion.condition())
        .subquery("ranked")
    )
    kept = [ranked.c.cid, ranked.c.t, ranked.c.eid]
    if account:
        kept.append(ranked.c.account)
    return materialized(select(*kept).where(ranked.c.n == include_min).cte("included"))


def _return_events(
    people: Population, returning: Selector, included: CTE, when: ColumnElement[bool]
) -> ColumnElement[bool]:
    """The included container's events that are returns meeting `when` (one container: of the enclosing row)."""
    account = included.c.account if people.listed is not None else None
    return and_(*people.events_of(included.c.cid, account), returning.condition(), when)


def _returns(
    people: Population,
    returning: Selector,
    included: CTE,
    return_min: int,
    when: ColumnElement[bool],
    grain: Grain,
) -> Select[Any]:
    """cid, period start of each period in which a container had `return_min` return events meeting `when`."""
    returned = _return_events(people, returning, included, when)
    # Each container's events read from the log as a range of an index, the containers the outer loop: left to
    # choose, SQLite sometimes walked every event of the type and looked its container up, and PostgreSQL hashed
    # them all. PostgreSQL groups each container's events in a LATERAL subquery (one it cannot merge into a join);
    # in SQLite an outer join's left side is always the outer loop (a container without returns then has one row
    # whose period is NULL).
    period = period_start(EVENT.c.occurred_at, grain, people.dialect)
    if people.dialect == "postgresql":
        periods = _at_least(select(period.label("period")).where(returned), (period,), return_min)
        lateral = periods.lateral("returned")
        return select(included.c.cid, lateral.c.period).select_from(included.join(lateral, true()))
    query = select(included.c.cid, period.label("period")).select_from(included.outerjoin(EVENT, returned))
    return _at_least(query, (included.c.cid, period), return_min)


def _grouped(
    people: Population,
    returning: Selector,
    included: CTE,
    return_min: int,
    when: ColumnElement[bool],
    grain: Grain,
    cohort_start: ColumnElement[str],
) -> Select[Any]:
    """cohort, periods, containers: how many included containers of each cohort returned (`return_min` events
    meeting `when`) in exactly the periods listed (their starts; NULL when in none). Tens of thousands of
    containers become a few hundred rows: sending each container's periods to Python and counting them there took
    as long as finding them."""
    returned = _return_events(people, returning, included, when)
    period = period_start(EVENT.c.occurred_at, grain, people.dialect)
    if people.dialect == "postgresql":
        # Each container's periods read as in _returns, listed in order so that alike lists group together.
        # Untyped: the driver returns lists already, which SQLAlchemy's ARRAY would copy item by item.
        if return_min == 1:
            # DISTINCT in the aggregate sorts each container's periods once (a DISTINCT subquery sorted twice).
            listed = _untyped(func.array_agg(aggregate_order_by(distinct(period), period)))
            lateral = select(listed.label("periods")).where(returned).lateral("returned")
        else:
            # (A FROM subquery is not correlated unless told: this one reads the container of the enclosing row.)
            periods = _at_least(select(period.label("period")).where(returned), (period,), return_min)
            found = periods.correlate(included).subquery("found")
            listed = _untyped(func.array_agg(aggregate_order_by(found.c.period, found.c.period)))
            lateral = select(listed.label("periods")).lateral("returned")
        each = select(cohort_start.label("cohort"), lateral.c.periods).select_from(included.join(lateral, true()))
    else:
        # One row per container and period (NULL period for a container without returns: the outer join), its
        # periods then joined into text. The order of group_concat is not promised: lists of the same periods in
        # another order only make two groups, counted alike.
        counted = (
            select(
                included.c.cid,
                cohort_start.label("cohort"),
                period.label("period"),
                func.count(EVENT.c.id).label("events"),
            )
            .select_from(included.outerjoin(EVENT, returned))
            .group_by(included.c.cid, period)
            .subquery("counted")
        )
        kept = case((counted.c.events >= return_min, counted.c.period))
        each = select(counted.c.cohort, func.group_concat(kept).label("periods")).group_by(counted.c.cid)
    alike = each.subquery("each")
    return select(alike.c.cohort, alike.c.periods, func.count().label("containers")).group_by(
        alike.c.cohort, alike.c.periods
    )


def _untyped(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    return type_coerce(expression, NullType())


def _followed_groups(rows: Sequence[Sequence[Any]], grain: Grain) -> list[Followed]:
    """The rows of _grouped as counted groups: the periods' starts (a PostgreSQL array, SQLite's comma-joined text)
    turned into periods after the cohort's."""
    offset = _offset_in(grain)
    groups = []
    for cohort_text, starts, containers in rows:
        if isinstance(starts, str):
            starts = starts.split(",")
        cohort = date.fromisoformat(cohort_text)
        groups.append(Followed(cohort, {offset(cohort, start) for start in starts or ()}, containers))
    return groups


def _at_least(query: Select[Any], keys: tuple[ColumnElement[Any], ...], return_min: int) -> Select[Any]:
    """Each group of `keys` once, if it has at least `return_min` events (NULL events, of the outer join, are none)."""
    if return_min == 1:
        return query.distinct()  # no count to compare
    return query.group_by(*keys).having(func.count(EVENT.c.id) >= return_min)


def _offsets(rows: Sequence[Sequence[Any]], cohort_of: dict[str, date], grain: Grain) -> dict[str, set[int]]:
    """container id -> the periods, counted from its inclusion period, in which it returned (`rows`: cid and
    period start of each return)."""
    offset = _offset_in(grain)
    offsets: dict[str, set[int]] = {}
    for cid, start in rows:
        if start is None:
            continue  # a container that did not return (_returns)
        offsets.setdefault(cid, set()).add(offset(cohort_of[cid], start))
    return offsets


def _offset_in(grain: Grain) -> Callable[[date, str], int]:
    """How many periods after a cohort's a period starts (given as 'YYYY-MM-DD'): each distinct pair computed once,
    as a report has few of them and many rows."""

    @cache
    def offset(cohort: date, start: str) -> int:
        return periods_between(cohort, date.fromisoformat(start), grain)

    return offset
