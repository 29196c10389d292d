"""Journey canvas: ordered milestones, how many containers reached each one after the previous, and how fast.

A container reaches step 1 at its first matching event; it reaches step k at its first step-k event after
the event that reached step k-1, in log order (time, then the log's id: one event never counts for two
steps). Taking the earliest match at each step makes the count exact: any ordered run of matches through
the steps implies this one. Broken down by variant, the accounts are grouped by the variant an A/B test gave them
(engine/analytics/variants.py) and each group gets its own canvas, so variants compare step by step.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from pydantic import Field
from sqlalchemy import func, literal, null, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.sql.selectable import CTE

from engine.analytics import variants
from engine.analytics.choices import Container
from engine.analytics.containers import Filters, population
from engine.analytics.errors import AnalyticsError
from engine.analytics.evaluation import prepared
from engine.analytics.firsts import first_events
from engine.analytics.periods import seconds_between
from engine.analytics.report import Report, ReportModel
from engine.analytics.selectors import Selector
from engine.analytics.timing import median_seconds, percent
from engine.collector import cycle_collector_paused


class CanvasStep(ReportModel):
    step: int
    label: str
    containers: int
    conversion_pct: float | None  # of the previous step's containers (of step 1's for step 1: 100)
    fallout: int  # containers of the previous step that never reached this one
    overall_pct: float | None  # of step 1's containers
    median_seconds_from_previous: float | None


class CanvasVariant(ReportModel):
    """The canvas of the accounts one variant of an A/B test was given."""

    variant: str
    holdout: bool
    accounts: int  # given this variant at the split, whether or not they reached a milestone
    steps: list[CanvasStep]


class CanvasReport(Report):
    report: str = "canvas"
    steps: list[CanvasStep]
    split: str | None = None  # the variant_split broken down by
    variants: list[CanvasVariant] = Field(default_factory=list)


@cycle_collector_paused()
def canvas(
    engine: Engine,
    steps: list[Selector],
    container: Container,
    filters: Filters,
    by_variant: bool = False,
    split: str | None = None,
) -> CanvasReport:
    """The milestones reached; with `by_variant`, also per variant of the journey's A/B test (accounts only)."""
    if not steps:
        raise AnalyticsError("a canvas needs at least one step: an event selector such as form_fill")
    chosen = None
    if by_variant:
        if container != Container.account:
            raise AnalyticsError(f"a breakdown by variant counts accounts, not {container}s: use --container account")
        chosen = variants.split_of(engine, filters.journey, split)
    people = population(container, filters, engine.dialect.name)
    ctes: list[CTE] = []
    for number, selector in enumerate(steps, start=1):
        step = prepared(engine, people, selector)
        ctes.append(first_events(people, step, f"step_{number}", ctes[-1] if ctes else None))
    # Stacked rather than joined: joining every step CTE makes PostgreSQL guess one row each and compare every
    # container with every other. A later step's rows carry the seconds since the previous step, computed in the
    # database: turning 130,000 stored times into datetimes in Python took longer than finding them.
    if chosen is None or filters.journey is None:
        # One row per step and time between steps, with how many containers took it: step 1 is only a count
        # (100,000 people were 100,000 rows to read and count in Python).
        counted = select(literal(0).label("step"), null().label("gap"), func.count().label("containers"))
        stacked = [counted.select_from(ctes[0])]
        for index, (before, cte) in enumerate(pairwise(ctes), start=1):
            gap = seconds_between(before.c.t, cte.c.t, people.dialect)
            joined = select(literal(index), gap, func.count()).join_from(cte, before, before.c.cid == cte.c.cid)
            stacked.append(joined.group_by(gap))
        with engine.connect() as connection:
            rows = connection.execute(union_all(*stacked)).all()  # one fetch
        return CanvasReport(container=container, filters=filters.describe(), steps=_steps(steps, rows), split=chosen)
    # By variant: one row per (step, container) reached, each container's variant looked up here.
    each = select(literal(0).label("step"), ctes[0].c.cid, null().label("gap"))
    each_later = (
        select(literal(index), cte.c.cid, seconds_between(before.c.t, cte.c.t, people.dialect)).join_from(
            cte, before, before.c.cid == cte.c.cid
        )
        for index, (before, cte) in enumerate(pairwise(ctes), start=1)
    )
    times: dict[str, dict[int, float | None]] = {}
    with engine.connect() as connection:
        for index, cid, gap in connection.execute(union_all(each, *each_later)).all():
            times.setdefault(cid, {})[index] = gap
    found = variants.assignments(engine, filters.journey, chosen)
    groups = variants.ordered(engine, filters.journey, chosen, set(found.values()))
    breakdown: list[CanvasVariant] = []
    for name, holdout in [*groups, (variants.NO_VARIANT, False)]:
        members = [by_step for cid, by_step in times.items() if found.get(cid, variants.NO_VARIANT) == name]
        if name == variants.NO_VARIANT and not members:
            continue
        accounts = sum(1 for variant in found.values() if variant == name)
        breakdown.append(
            CanvasVariant(variant=name, holdout=holdout, accounts=accounts, steps=_steps(steps, _tallied(members)))
        )
    return CanvasReport(
        container=container,
        filters=filters.describe(),
        steps=_steps(steps, _tallied(list(times.values()))),
        split=chosen,
        variants=breakdown,
    )


def _tallied(reached: list[dict[int, float | None]]) -> list[tuple[int, float | None, int]]:
    """The steps each container reached (step index -> seconds since the previous step; None for step 1) as the
    rows _steps counts: step, seconds, containers."""
    return [(index, gap, 1) for by_step in reached for index, gap in by_step.items()]


def _steps(steps: list[Selector], rows: Sequence[Sequence[Any]]) -> list[CanvasStep]:
    """Counts, conversion and median times of the steps, from rows of (step index, seconds since the previous
    step (None for step 1), how many containers)."""
    counts = [0] * len(steps)
    gaps: list[list[float]] = [[] for _ in steps]
    for index, gap, containers in rows:
        counts[index] += containers
        if gap is not None:
            gaps[index].extend([gap] * containers)
    result = []
    for index, selector in enumerate(steps):
        before = counts[index - 1] if index else counts[0]
        result.append(
            CanvasStep(
                step=index + 1,
                label=selector.label,
                containers=counts[index],
                conversion_pct=percent(counts[index], before),
                fallout=before - counts[index],
                overall_pct=percent(counts[index], counts[0]),
                median_seconds_from_previous=median_seconds(gaps[index]),
            )
        )
    return result
