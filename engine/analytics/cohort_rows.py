"""The cohort tables counted from what the database found: each container's cohort (the first day of its inclusion
period) and the periods, relative to that one, in which it met the return metric.

Retention: a container counts in period p when it returned in p; rolling, when it returned in every period from
the first counted one (0, or 1 with `after_inclusion`) to p. With `after_inclusion` (CJA's way) period 0 is the
cohort's size. Churn is the complement: the cohort's containers that do not count in period p. The latency table
counts, for each period -(N-1)..N-1 around the inclusion period, the containers that returned in it (never
rolling). A period that has not begun shows 0 in every table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from engine.analytics.choices import Grain
from engine.analytics.periods import has_begun
from engine.analytics.report import ReportModel
from engine.analytics.timing import percent


class CohortRow(ReportModel):
    cohort: str  # the period's first day, YYYY-MM-DD
    size: int
    counts: list[int]  # per period 0..periods-1 (latency: per period -(periods-1)..periods-1)
    percents: list[float | None]


class CohortTables(ReportModel):
    """Retention rows, and the churn and latency rows when asked for (None when not)."""

    rows: list[CohortRow]
    churn: list[CohortRow] | None = None
    latency: list[CohortRow] | None = None


@dataclass(frozen=True)
class Counting:
    """How the periods are counted: the report's options."""

    grain: Grain
    periods: int
    rolling: bool
    after_inclusion: bool
    churn: bool
    latency: bool
    today: date

    def latency_periods(self) -> list[int]:
        return list(range(1 - self.periods, self.periods))


class Followed(NamedTuple):
    """`containers` containers of one cohort that returned in exactly the same `periods` (relative to their
    inclusion period; empty when they never returned). Counting alike containers once keeps the work per report
    small where the database groups them (a few hundred groups for 77,000 people)."""

    cohort: date
    periods: Collection[int]
    containers: int = 1


def counted_tables(followed: Iterable[Followed], counting: Counting) -> CohortTables:
    """The tables over the containers `followed`."""
    # Alike containers merged first, as the database does (cohort.py): one by one they are mostly alike.
    alike: Counter[tuple[date, frozenset[int]]] = Counter()
    for group in followed:
        alike[group.cohort, frozenset(group.periods)] += group.containers
    by_cohort: dict[date, list[Followed]] = {}
    for (cohort, periods), containers in alike.items():
        by_cohort.setdefault(cohort, []).append(Followed(cohort, periods, containers))
    rows, churn, latency = [], [], []
    for start, groups in sorted(by_cohort.items()):
        size = sum(group.containers for group in groups)
        # Only the containers that returned: the others count in no period (a cohort is mostly those).
        returned = [group for group in groups if group.periods]
        retained = [
            count if has_begun(start, period, counting.grain, counting.today) else 0
            for period, count in enumerate(_retention(returned, size, counting))
        ]
        rows.append(_row(start, size, retained))
        if counting.churn:
            lost = [
                size - count if has_begun(start, period, counting.grain, counting.today) else 0
                for period, count in enumerate(retained)
            ]
            churn.append(_row(start, size, lost))
        if counting.latency:
            latency.append(_row(start, size, _latency(start, returned, size, counting)))
    return CohortTables(
        rows=rows, churn=churn if counting.churn else None, latency=latency if counting.latency else None
    )


def _row(start: date, size: int, counts: list[int]) -> CohortRow:
    return CohortRow(
        cohort=start.isoformat(), size=size, counts=counts, percents=[percent(count, size) for count in counts]
    )


def _retention(returned: list[Followed], size: int, counting: Counting) -> list[int]:
    """How many of the cohort's `size` containers count in each period 0..periods-1, one pass over the groups of
    those that returned."""
    counts = [0] * counting.periods
    first = 1 if counting.after_inclusion else 0
    for _, periods, containers in returned:
        if counting.rolling:
            # It counts from the first counted period up to its first period without a return.
            last = first
            while last < counting.periods and last in periods:
                last += 1
            shown: Iterable[int] = range(first, last)
        else:
            shown = (period for period in periods if first <= period < counting.periods)
        for period in shown:
            counts[period] += containers
    if counting.after_inclusion:
        counts[0] = size  # CJA: period 0 is the cohort itself
    return counts


def _latency(start: date, returned: list[Followed], size: int, counting: Counting) -> list[int]:
    containers: Counter[int] = Counter()
    for group in returned:
        for period in group.periods:
            containers[period] += group.containers
    counts = []
    for period in counting.latency_periods():
        if not has_begun(start, period, counting.grain, counting.today):
            counts.append(0)
        elif period == 0 and counting.after_inclusion:
            counts.append(size)
        else:
            counts.append(containers[period])
    return counts
