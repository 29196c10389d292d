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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

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


def counted_tables(cohort_of: dict[str, date], returns: dict[str, set[int]], counting: Counting) -> CohortTables:
    """The tables over the containers of `cohort_of` (id -> cohort), `returns` holding each one's return periods."""
    by_cohort: dict[date, list[str]] = {}
    for cid, start in cohort_of.items():
        by_cohort.setdefault(start, []).append(cid)
    rows, churn, latency = [], [], []
    for start, cids in sorted(by_cohort.items()):
        # Only the containers that returned: the others count in no period (a cohort is mostly those).
        followed = [returns[cid] for cid in cids if cid in returns]
        retained = [
            count if has_begun(start, period, counting.grain, counting.today) else 0
            for period, count in enumerate(_retention(followed, len(cids), counting))
        ]
        rows.append(_row(start, len(cids), retained))
        if counting.churn:
            lost = [
                len(cids) - count if has_begun(start, period, counting.grain, counting.today) else 0
                for period, count in enumerate(retained)
            ]
            churn.append(_row(start, len(cids), lost))
        if counting.latency:
            latency.append(_row(start, len(cids), _latency(start, followed, len(cids), counting)))
    return CohortTables(
        rows=rows, churn=churn if counting.churn else None, latency=latency if counting.latency else None
    )


def _row(start: date, size: int, counts: list[int]) -> CohortRow:
    return CohortRow(
        cohort=start.isoformat(), size=size, counts=counts, percents=[percent(count, size) for count in counts]
    )


def _retention(followed: list[set[int]], size: int, counting: Counting) -> list[int]:
    """How many of the cohort's `size` containers count in each period 0..periods-1, one pass over the return
    periods of each that returned (`followed`)."""
    counts = [0] * counting.periods
    first = 1 if counting.after_inclusion else 0
    for periods in followed:
        if counting.rolling:
            # It counts from the first counted period up to its first period without a return.
            last = first
            while last < counting.periods and last in periods:
                last += 1
            shown: Iterable[int] = range(first, last)
        else:
            shown = (period for period in periods if first <= period < counting.periods)
        for period in shown:
            counts[period] += 1
    if counting.after_inclusion:
        counts[0] = size  # CJA: period 0 is the cohort itself
    return counts


def _latency(start: date, followed: list[set[int]], size: int, counting: Counting) -> list[int]:
    returned = Counter(period for periods in followed for period in periods)
    counts = []
    for period in counting.latency_periods():
        if not has_begun(start, period, counting.grain, counting.today):
            counts.append(0)
        elif period == 0 and counting.after_inclusion:
            counts.append(size)
        else:
            counts.append(returned[period])
    return counts
