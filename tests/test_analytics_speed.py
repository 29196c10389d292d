"""What keeps every container as fast as accounts: the indexes init_db creates and the plans that use them.

bench/analytics.py measures the time on 1,000,000 events; these tests pin the causes, so a change that
brings back a per-event row read (an expression as the container's key, an index without the container's
column) fails here rather than only in a benchmark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine

from engine.analytics.canvas import canvas
from engine.analytics.choices import Container
from engine.analytics.containers import Filters
from engine.analytics.selectors import parse_selector
from engine.db import REPLACED_INDEXES, init_db, make_engine

ANALYTICS_INDEXES = {
    "ix_activity_event_type_account_order": ["type", "account_id", "occurred_at", "id", "person_id"],
    "ix_activity_event_type_person_order": ["type", "person_id", "occurred_at", "id", "account_id"],
    "ix_activity_event_person_order_type": ["person_id", "occurred_at", "id", "account_id", "type"],
    "ix_activity_event_account_order": ["account_id", "occurred_at", "id", "person_id", "type"],
}


def event_indexes(engine: Engine) -> dict[str, list[str]]:
    indexes = inspect(engine).get_indexes("activity_event")
    return {str(index["name"]): [str(column) for column in index["column_names"]] for index in indexes}


class TestIndexes:
    """init_db gives a new database and one made before the indexes the same analytics indexes."""

    def test_a_new_database_has_them(self, engine: Engine) -> None:
        found = event_indexes(engine)
        assert {name: found.get(name) for name in ANALYTICS_INDEXES} == ANALYTICS_INDEXES
        assert not set(REPLACED_INDEXES) & set(found)

    def test_an_older_database_gains_them_and_loses_the_replaced_ones(self, engine: Engine) -> None:
        with engine.begin() as connection:
            for name in ANALYTICS_INDEXES:
                connection.execute(text(f"DROP INDEX {name}"))
            # The indexes of databases made before this change.
            connection.execute(
                text(
                    "CREATE INDEX ix_activity_event_type_account_time ON activity_event (type, account_id, occurred_at)"
                )
            )
            connection.execute(text("CREATE INDEX ix_activity_event_person_id ON activity_event (person_id)"))
            connection.execute(
                text(
                    "CREATE INDEX ix_activity_event_type_account_time_person "
                    "ON activity_event (type, account_id, occurred_at, person_id)"
                )
            )
            connection.execute(
                text(
                    "CREATE INDEX ix_activity_event_type_person_time "
                    "ON activity_event (type, person_id, occurred_at, account_id)"
                )
            )
            connection.execute(
                text("CREATE INDEX ix_activity_event_person_time ON activity_event (person_id, occurred_at)")
            )
            connection.execute(
                text(
                    "CREATE INDEX ix_activity_event_person_order "
                    "ON activity_event (person_id, occurred_at, id, account_id)"
                )
            )
            connection.execute(
                text("CREATE INDEX ix_activity_event_account_time ON activity_event (account_id, occurred_at)")
            )
        assert set(REPLACED_INDEXES) <= set(event_indexes(engine))
        init_db(engine)
        found = event_indexes(engine)
        assert {name: found.get(name) for name in ANALYTICS_INDEXES} == ANALYTICS_INDEXES
        assert not set(REPLACED_INDEXES) & set(found)


def canvas_plans(engine: Engine, container: Container) -> list[str]:
    """SQLite's plan lines for the event log in the queries of a 2-step canvas (the second step has a `where`)."""
    statements: list[tuple[str, Any]] = []

    def record(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        steps = [parse_selector("web_visit"), parse_selector("form_fill where event.form == 'lead-step-1'")]
        canvas(engine, steps, container, Filters())
    finally:
        event.remove(engine, "before_cursor_execute", record)
    raw: Any = engine.raw_connection()
    try:
        return [
            row[3]
            for statement, parameters in statements
            if "activity_event" in statement
            for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            if "activity_event" in row[3] or "buying_group_member" in row[3]
        ]
    finally:
        raw.close()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'journey.db'}")
    init_db(engine)
    return engine


class TestPlans:
    """Every step searches an index rather than reading the whole log. Over accounts and people the first step
    (no payload condition) is found in the index alone; buying groups and opportunities, a small set of their
    own, walk each one's account's events; every later step walks each container's events from the previous
    step's event, through the index that holds them in log order."""

    @pytest.mark.parametrize(
        ("container", "key"), [(Container.account, "account"), (Container.person, "person")], ids=str
    )
    def test_account_and_person(self, sqlite_engine: Engine, container: Container, key: str) -> None:
        plans = canvas_plans(sqlite_engine, container)
        index = f"ix_activity_event_type_{key}_order"
        assert plans == [
            f"SEARCH activity_event USING COVERING INDEX {index} (type=? AND {key}_id>?)",
            f"SEARCH activity_event USING COVERING INDEX {index} (type=? AND {key}_id=? AND occurred_at=?)",
            f"SEARCH activity_event USING INDEX {index} (type=? AND {key}_id=? AND occurred_at>?)",
            "SEARCH activity_event USING INTEGER PRIMARY KEY (rowid=?)",
        ]

    def test_buying_group(self, sqlite_engine: Engine) -> None:
        plans = canvas_plans(sqlite_engine, Container.buying_group)
        index = "ix_activity_event_type_account_order"
        member = (
            "SEARCH buying_group_member USING COVERING INDEX sqlite_autoindex_buying_group_member_1 "
            "(buying_group_id=? AND person_id=?)"
        )
        assert plans == [
            f"SEARCH activity_event USING COVERING INDEX {index} (type=? AND account_id=?)",
            member,
            "SEARCH activity_event USING INTEGER PRIMARY KEY (rowid=?)",
            f"SEARCH activity_event USING INDEX {index} (type=? AND account_id=? AND occurred_at>?)",
            member,
            "SEARCH activity_event USING INTEGER PRIMARY KEY (rowid=?)",
        ]

    def test_opportunity(self, sqlite_engine: Engine) -> None:
        plans = canvas_plans(sqlite_engine, Container.opportunity)
        # After the opportunities are derived (their events, and handoffs with none), each one's account is
        # searched: never a scan of the log, nor an index SQLite builds over it for the query.
        walks = [line for line in plans if "account_id=?" in line or "rowid=?" in line]
        assert len(walks) == len(plans) - 1, plans
        assert all(line.startswith("SEARCH activity_event USING") for line in plans), plans
