"""Side-by-side cohorts (`--by DIMENSION`): the value(s) each included container has for the dimension.

Every container belongs to one account, the account of its inclusion event. A dimension is an account column
(industry, country, ...: the account's value), `solution_interest` (the interests of the account's buying groups,
so an account in several interests is in each of their cohorts; a buying group has its own), or `variant` (the
variant the journey's A/B test gave the account, variants.py). A missing value is NONE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, null, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from engine.analytics import variants
from engine.analytics.bounds import MOST_BY_VALUES
from engine.analytics.choices import Container
from engine.analytics.containers import EVENT, Filters, Population
from engine.analytics.errors import AnalyticsError
from engine.analytics.timing import utc
from engine.db import Account, BuyingGroup
from engine.language.errors import did_you_mean

NONE = "(none)"
SOLUTION_INTEREST = "solution_interest"
VARIANT = "variant"
ACCOUNT: Table = Account.__table__  # type: ignore[attr-defined]
GROUP: Table = BuyingGroup.__table__  # type: ignore[attr-defined]
# Columns whose value names a group; `attributes` is a JSON object, not a value.
ACCOUNT_COLUMNS = [column.name for column in ACCOUNT.columns if column.name != "attributes"]


@dataclass(frozen=True)
class Dimension:
    name: str
    split: str | None = None  # the variant_split node, for `variant`


def dimension(engine: Engine, by: str | None, split: str | None, filters: Filters) -> Dimension | None:
    """The dimension asked for, checked before anything is counted."""
    if split is not None and by != VARIANT:
        raise AnalyticsError("--split chooses the A/B test for --by variant: give --by variant too")
    if by is None:
        return None
    if by == VARIANT:
        return Dimension(by, variants.split_of(engine, filters.journey, split))
    if by != SOLUTION_INTEREST and by not in ACCOUNT_COLUMNS:
        shown = by if len(by) <= 64 else f"{by[:64]}..."
        hint = did_you_mean(by, [VARIANT, SOLUTION_INTEREST, *ACCOUNT_COLUMNS])
        raise AnalyticsError(
            f"unknown dimension '{shown}'{hint}: use {VARIANT}, {SOLUTION_INTEREST} or an account column "
            f"({', '.join(ACCOUNT_COLUMNS)})"
        )
    return Dimension(by)


def members(
    included: CTE, cohort: ColumnElement[str], dimension: Dimension | None, people: Population, filters: Filters
) -> Select[Any]:
    """cid, cohort; with a dimension also the account and the value (one row per solution interest)."""
    if dimension is None:
        return select(included.c.cid, cohort.label("cohort"))
    event = EVENT.alias("inclusion_event")
    account = event.c.account_id
    query = select(included.c.cid, cohort.label("cohort"), account.label("account")).join_from(
        included, event, event.c.id == included.c.eid
    )
    if dimension.name in ACCOUNT_COLUMNS:
        return query.add_columns(ACCOUNT.c[dimension.name].label("value")).outerjoin(ACCOUNT, ACCOUNT.c.id == account)
    if dimension.name == SOLUTION_INTEREST and people.container is Container.buying_group:
        # A buying group's id is computed from its own row (containers.py): each group's interest, events unread.
        own = select(people.id.label("cid"), GROUP.c.solution_interest_id.label("value")).select_from(GROUP)
        interest = own.subquery("own_interest")
        return query.add_columns(interest.c.value).outerjoin(interest, interest.c.cid == included.c.cid)
    if dimension.name == SOLUTION_INTEREST:
        joined = GROUP.c.account_id == account
        if filters.solution_interest:  # the filter keeps the accounts of one interest: their cohorts are its own
            joined = and_(joined, GROUP.c.solution_interest_id == filters.solution_interest)
        return query.add_columns(GROUP.c.solution_interest_id.label("value")).outerjoin(GROUP, joined)
    return query.add_columns(null().label("value"))


def values_of(
    engine: Engine, rows: list[tuple[Any, ...]], dimension: Dimension, container: Container, filters: Filters
) -> dict[str, set[str]]:
    """container id -> its values, from the rows of `members`; at most MOST_BY_VALUES different ones."""
    found: dict[str, set[str]] = {}
    assigned = (
        variants.assignments(engine, filters.journey, dimension.split)
        if dimension.split is not None and filters.journey is not None
        else {}
    )
    for cid, _, account, value in rows:
        text = assigned.get(account, NONE) if dimension.name == VARIANT else _text(value)
        found.setdefault(cid, set()).add(text)
    distinct = {text for texts in found.values() for text in texts}
    if len(distinct) > MOST_BY_VALUES:
        raise AnalyticsError(
            f"--by {dimension.name} has {len(distinct):,} values among the included {container}s, at most "
            f"{MOST_BY_VALUES}: choose a dimension with fewer values, or narrow the report with --since, --until, "
            "--journey or --solution-interest"
        )
    return found


def ordered(values: dict[str, set[str]]) -> list[str]:
    """The values found, sorted, the missing value last."""
    distinct = {text for texts in values.values() for text in texts}
    return [*sorted(distinct - {NONE}), *([NONE] if NONE in distinct else [])]


def _text(value: object) -> str:
    """A value as a group's name, the same from SQLite and PostgreSQL."""
    if value is None:
        return NONE
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return str(value)
