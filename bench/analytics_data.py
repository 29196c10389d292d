"""The generated data set of bench/analytics.py: accounts, people, buying groups and their members, events.

Deterministic (seeded). Every account has `people_per_account` people and one buying group for one of three
solution interests, whose members are the first 60% of the account's people; events are web visits with a
content type, email opens and clicks, form fills and opportunities. Everything is bulk-loaded: SQLite through
executemany, PostgreSQL through COPY, so a people-heavy set (50 people per account) loads as fast as events.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.engine import Engine
from sqlalchemy.schema import DropIndex

from engine.db import ActivityEvent, init_db

START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 86_400
CONTENT = ["blog", "webinar", "pricing", "case_study", "docs", "video"]
FORMS = ["lead-step-1", "lead-step-2", "demo-request"]
INTERESTS = ["analytics", "platform", "security"]
ROLES = ["decision_maker", "influencer", "practitioner"]
MEMBER_SHARE = 0.6  # of an account's people in its buying group
# Share of each generated type (opportunities are added per account on top).
MIX = [("web_visit", 0.55), ("email_open", 0.18), ("email_click", 0.12), ("form_fill", 0.15)]
EVENT: Table = ActivityEvent.__table__  # type: ignore[attr-defined]
EVENT_COLUMNS = ("key", "type", "account_id", "person_id", "email", "status", "payload", "occurred_at", "recorded_at")


@dataclass(frozen=True)
class Shape:
    """How big the data set is."""

    events: int
    accounts: int
    people_per_account: int

    def person(self, account: int, number: int) -> int:
        return account * self.people_per_account + number + 1

    @property
    def members_per_account(self) -> int:
        return max(1, math.floor(self.people_per_account * MEMBER_SHARE))


def interest_of(account: int) -> str:
    return INTERESTS[account % len(INTERESTS)]


def events(shape: Shape, seed: int = 8) -> Iterator[tuple[Any, ...]]:
    """Rows for activity_event, occurred_at as an aware datetime, in no particular time order."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [share for _, share in MIX]
    opportunities = shape.accounts // 2
    for number in range(opportunities):  # every other account gets an opportunity; a third of those are won
        account = number * 2
        created = START + timedelta(seconds=rng.randrange(YEAR_SECONDS))
        opportunity = {"opportunity_id": f"opp-{account}", "stage": "qualify"}
        yield _row(f"o{number}", "opportunity_created", account, None, opportunity, created)
        if number % 3 == 0:
            won = created + timedelta(days=rng.randrange(10, 200))
            yield _row(
                f"w{number}", "opportunity_stage_changed", account, None, {**opportunity, "stage": "closed_won"}, won
            )
    for number in range(shape.events - opportunities - (opportunities + 2) // 3):
        account = rng.randrange(shape.accounts)
        person = shape.person(account, rng.randrange(shape.people_per_account))
        kind = rng.choices(kinds, weights)[0]
        payload: dict[str, Any] = {}
        if kind == "web_visit":
            payload = {"content_type": rng.choice(CONTENT), "url": "https://example.com/"}
        elif kind == "form_fill":
            payload = {"form": rng.choice(FORMS)}
        elif kind in ("email_open", "email_click"):
            payload = {"message": f"m-{rng.randrange(50)}"}
        yield _row(f"e{number}", kind, account, person, payload, START + timedelta(seconds=rng.randrange(YEAR_SECONDS)))


def _row(
    key: str, kind: str, account: int, person: int | None, payload: dict[str, Any], at: datetime
) -> tuple[Any, ...]:
    email = f"p{person}@a{account}.example" if person else None
    return (key, kind, f"a{account}", person, email, "matched", json.dumps(payload), at, at)


def load(engine: Engine, shape: Shape) -> None:
    """Bulk-load the data set into the (empty) tables init_db made in `engine`, then ANALYZE."""
    loaded = START
    accounts = range(shape.accounts)
    people = [(a, p) for a in accounts for p in range(shape.people_per_account)]
    members = [(a, p) for a in accounts for p in range(shape.members_per_account)]
    tables: list[tuple[str, tuple[str, ...], Iterable[tuple[Any, ...]]]] = [
        (
            "account",
            ("id", "name", "domain", "timezone", "attributes", "created_at"),
            ((f"a{a}", f"Account {a}", f"a{a}.example", "UTC", "{}", loaded) for a in accounts),
        ),
        (
            "person",
            ("id", "account_id", "email", "unsubscribed", "engagement_score", "attributes", "created_at"),
            (
                (shape.person(a, p), f"a{a}", f"p{shape.person(a, p)}@a{a}.example", False, 0.0, "{}", loaded)
                for a, p in people
            ),
        ),
        ("solution_interest", ("id", "name", "role_template"), ((i, i.title(), "default") for i in INTERESTS)),
        (
            "buying_group",
            ("id", "account_id", "solution_interest_id", "stage", "completeness", "engagement", "updated_at"),
            ((a + 1, f"a{a}", interest_of(a), "awareness", 0.0, 0.0, loaded) for a in accounts),
        ),
        (
            "buying_group_member",
            ("buying_group_id", "person_id", "role", "assigned_by", "assigned_at"),
            ((a + 1, shape.person(a, p), ROLES[p % len(ROLES)], "rule", loaded) for a, p in members),
        ),
        ("activity_event", EVENT_COLUMNS, events(shape)),
    ]
    # Building the log's indexes once, from sorted rows, is several times faster than keeping them up to date
    # through a million random inserts: drop them, load, and let init_db create them again.
    with engine.begin() as connection:
        for index in EVENT.indexes:
            connection.execute(DropIndex(index))
    raw: Any = engine.raw_connection()
    try:
        for table, columns, rows in tables:
            _copy(raw, engine.dialect.name, table, columns, rows)
        raw.commit()
    finally:
        raw.close()
    init_db(engine)
    # PostgreSQL: VACUUM too, as autovacuum would soon, so the index-only scans skip the heap (and the timed
    # reports do not share the machine with that autovacuum).
    command = "ANALYZE" if engine.dialect.name == "sqlite" else "VACUUM ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(command))


def _copy(raw: Any, dialect: str, table: str, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> None:
    cursor = raw.cursor()
    if dialect == "sqlite":
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text in UTC; write the same.
        stamp = "%Y-%m-%d %H:%M:%S.%f"
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            (tuple(v.strftime(stamp) if isinstance(v, datetime) else v for v in row) for row in rows),
        )
        return
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
