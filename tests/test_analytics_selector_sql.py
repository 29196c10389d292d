"""A selector's `where`, translated to SQL, matches the events the journey language itself matches: for every
operator, negated or not, on events where the field is present, absent or null, on SQLite and PostgreSQL.
The oracle is the language's own evaluation (what a `wait_for_event` node would decide), not this translation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import add_account

from engine.analytics.containers import EVENT
from engine.analytics.selectors import fields, parse_selector
from engine.db import ActivityEvent
from engine.language import conditions
from engine.language.errors import ExpressionError

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)

PAYLOADS: list[dict[str, Any]] = [
    {"form": "a", "score": 5},
    {"form": "b", "score": 10},
    {"form": None, "score": None},
    {},
    {"form": "a"},
    {"score": 7.5},
]
WHERES = [
    "event.form == 'a'",
    "event.form != 'a'",
    "not (event.form == 'a')",
    "not (event.form != 'a')",
    "'a' == event.form",
    "event.form in ['a', 'b']",
    "event.form not in ['a']",
    "not (event.form in ['a'])",
    "event.form is defined",
    "event.form is undefined",
    "event.form == 'a' or event.payload.score >= 10",
    "not (event.form == 'b' and event.payload.score == 10)",
    "event.payload.form == 'b'",
    "event.payload.score > 5",
    "event.payload.score >= 5",
    "event.payload.score < 10",
    "event.payload.score <= 7.5",
    "not (event.payload.score > 5)",
]


@pytest.fixture
def events(engine: Engine) -> dict[int, dict[str, Any]]:
    add_account(engine, "acme-corp")
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    with Session(engine) as session:
        rows = [
            ActivityEvent(key=f"e{n}", type="form_fill", account_id="acme-corp", payload=payload, occurred_at=moment)
            for n, payload in enumerate(PAYLOADS)
        ]
        session.add_all(rows)
        session.commit()
        return {int(row.id or 0): row.payload for row in rows}


@pytest.mark.parametrize("where", WHERES)
def test_sql_matches_what_the_language_matches(engine: Engine, events: dict[int, dict[str, Any]], where: str) -> None:
    selector = parse_selector(f"form_fill where {where}")
    assert selector.in_sql, "every case here is one SQL can express"
    with engine.connect() as connection:
        in_sql = set(connection.execute(select(EVENT.c.id).where(selector.condition())).scalars())
    condition = conditions.compile_condition(where, conditions.Scope({"event": fields("form_fill")}, "selectors"))
    expected = set()
    for event_id, payload in events.items():
        try:
            if condition.evaluate(event={**payload, "type": "form_fill", "payload": payload}, now=datetime.now(UTC)):
                expected.add(event_id)
        except ExpressionError:
            pass  # the language refuses the comparison (e.g. None > 5): the event does not match
    assert in_sql == expected
