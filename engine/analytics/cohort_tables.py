"""The cohort report as tables: retention, then churn and latency when asked for, then the same for each value of
the `by` dimension. Table names: `cohorts`, `churn`, `latency`, and `<name>/<value>` for a value's tables."""

from __future__ import annotations

from engine.analytics.cohort import CohortReport
from engine.analytics.cohort_rows import CohortRow, CohortTables
from engine.analytics.tables import Table, Value


def cohort_tables(report: CohortReport) -> list[Table]:
    found = _tables(report, report.overall(), "", "")
    for group in report.groups or []:
        found += _tables(report, group, f"/{group.value}", f" · {report.by} = {group.value}")
    return found


def _tables(report: CohortReport, counted: CohortTables, suffix: str, where: str) -> list[Table]:
    grain = report.grain
    after = ", returns after the inclusion period (CJA)" if report.returns_after_inclusion else ""
    rolling = ", rolling" if report.rolling else ""
    about = f"by {grain}: {report.inclusion}, returning {report.returning}"
    found = [
        _table(
            f"cohorts{suffix}",
            f"Cohorts {about}{after}{rolling}{where}",
            [f"{grain} {period}" for period in range(_width(counted.rows))],
            counted.rows,
        )
    ]
    if counted.churn is not None:
        columns = [f"{grain} {period}" for period in range(_width(counted.churn))]
        title = f"Churn (did not return) {about}{after}{rolling}{where}"
        found.append(_table(f"churn{suffix}", title, columns, counted.churn))
    if counted.latency is not None:
        columns = [f"{grain} {period:+d}" if period else f"{grain} 0" for period in report.latency_periods or []]
        title = f"Latency {about}{after}, periods before and after inclusion{where}"
        found.append(_table(f"latency{suffix}", title, columns, counted.latency))
    return found


def _width(rows: list[CohortRow]) -> int:
    return max((len(row.counts) for row in rows), default=0)


def _table(name: str, title: str, periods: list[str], rows: list[CohortRow]) -> Table:
    columns = ["cohort", "size"]
    for period in periods:
        columns += [period, f"{period} %"]
    cells: list[list[Value]] = []
    for row in rows:
        values: list[Value] = [row.cohort, row.size]
        for count, share in zip(row.counts, row.percents, strict=True):
            values += [count, share]
        cells.append(values)
    return Table(name, title, columns, cells)
