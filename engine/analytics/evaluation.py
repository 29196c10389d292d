"""`where` clauses SQL cannot express (regexes, filters, arithmetic), evaluated in Python.

Only the rows of the selector's event type that the report's container and filters already narrowed are
read, each condition is compiled once by the journey language, and the ids of the matching events go back
into the SQL of the report. Simple comparisons never come here: they are translated to SQL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Engine

from engine.analytics.containers import EVENT, Population
from engine.analytics.errors import AnalyticsError
from engine.analytics.selectors import Selector, fields
from engine.analytics.timing import utc
from engine.db import utcnow
from engine.language import conditions
from engine.language.errors import ExpressionError


def prepared(engine: Engine, people: Population, selector: Selector) -> Selector:
    """The selector, ready for SQL: unchanged when its `where` translates, else with its matching event ids."""
    if selector.in_sql or selector.where is None:
        return selector
    condition = conditions.compile_condition(
        selector.where, conditions.Scope({"event": fields(selector.type)}, "selectors")
    )
    # An event can belong to several containers (buying groups, opportunities): a repeat is harmless here.
    rows = (
        people.select(
            EVENT.c.id,
            EVENT.c.key,
            EVENT.c.type,
            EVENT.c.email,
            EVENT.c.node_id,
            EVENT.c.journey_id,
            EVENT.c.payload,
            EVENT.c.occurred_at,
        )
        .where(EVENT.c.type == selector.type)
        .order_by(EVENT.c.id)
    )
    now = utcnow()
    matching = set()
    with engine.connect() as connection:
        for row in connection.execute(rows):
            try:
                if condition.evaluate(event=_event_data(row), now=now):
                    matching.add(int(row[0]))
            except ExpressionError as error:
                raise AnalyticsError(f"selector '{selector.label}': {error} (event '{row.key}')") from None
    return replace(selector, matching_ids=frozenset(matching))


def _event_data(row: Any) -> dict[str, Any]:
    """The event as `wait_for_event` conditions see it: its payload keys, plus the log's columns."""
    payload = dict(row.payload or {})
    return {
        **payload,
        "type": row.type,
        "event_id": row.key,
        "email": row.email,
        "node": row.node_id,
        "journey": row.journey_id,
        "occurred_at": utc(row.occurred_at).isoformat(),
        "payload": payload,
    }
