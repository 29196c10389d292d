"""Time the analytics reports on a generated event log: `python bench/analytics.py --events 1000000`.

Generates accounts, people and events (web visits with a content type, email opens and clicks, form fills,
opportunities; deterministic), bulk-loads them into a fresh database (a temporary SQLite file, or a new
database on the PostgreSQL server of --database-url, dropped afterwards), then runs each report once and
prints its time. The last line is `analytics N events: canvas X s, cohort Y s, flow Z s`.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from engine.analytics.canvas import canvas
from engine.analytics.choices import Container, Direction, Grain
from engine.analytics.cohort import cohort
from engine.analytics.containers import Filters
from engine.analytics.flow import flow
from engine.analytics.selectors import parse_selector
from engine.analytics.timeline import timeline
from engine.db import Account, Person, init_db, make_engine

START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 86_400
CONTENT = ["blog", "webinar", "pricing", "case_study", "docs", "video"]
FORMS = ["lead-step-1", "lead-step-2", "demo-request"]
# Share of each generated type (opportunities are added per account on top).
MIX = [("web_visit", 0.55), ("email_open", 0.18), ("email_click", 0.12), ("form_fill", 0.15)]
COLUMNS = ("key", "type", "account_id", "person_id", "email", "status", "payload", "occurred_at", "recorded_at")


def events(count: int, accounts: int, people_per_account: int, seed: int = 8) -> Iterator[tuple[Any, ...]]:
    """Rows for activity_event, occurred_at as an aware datetime, in no particular time order."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [share for _, share in MIX]
    opportunities = accounts // 2
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
    for number in range(count - opportunities - (opportunities + 2) // 3):
        account = rng.randrange(accounts)
        person = account * people_per_account + rng.randrange(people_per_account) + 1
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


def load(engine: Engine, count: int, accounts: int, people_per_account: int) -> None:
    with Session(engine) as session:
        session.add_all(Account(id=f"a{n}", name=f"Account {n}", domain=f"a{n}.example") for n in range(accounts))
        session.flush()
        session.add_all(
            Person(
                id=a * people_per_account + p + 1,
                account_id=f"a{a}",
                email=f"p{a * people_per_account + p + 1}@a{a}.example",
            )
            for a in range(accounts)
            for p in range(people_per_account)
        )
        session.commit()
    rows = events(count, accounts, people_per_account)
    raw: Any = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text in UTC; write the same.
            stamp = "%Y-%m-%d %H:%M:%S.%f"
            cursor = raw.cursor()
            cursor.executemany(
                f"INSERT INTO activity_event ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                ((*r[:7], r[7].strftime(stamp), r[8].strftime(stamp)) for r in rows),
            )
        else:
            cursor = raw.cursor()
            with cursor.copy(f"COPY activity_event ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))


@contextmanager
def fresh_database(url: str | None) -> Iterator[Engine]:
    if url is None:
        with tempfile.TemporaryDirectory(prefix="journey-bench-") as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
            try:
                yield engine
            finally:
                engine.dispose()
        return
    server = make_url(url).set(drivername="postgresql+psycopg")
    name = f"journey_bench_{uuid.uuid4().hex[:8]}"
    admin = (
        f"host={server.host} port={server.port or 5432} user={server.username} dbname={server.database or 'postgres'}"
    )
    if server.password:
        admin += f" password={server.password}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    engine = make_engine(server.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE {name}")


def timed(what: str, run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    print(f"{what}: {elapsed:.2f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--people-per-account", type=int, default=5)
    parser.add_argument("--database-url", help="a PostgreSQL server (postgresql://user@host:port/db); default SQLite")
    options = parser.parse_args()
    with fresh_database(options.database_url) as engine:
        init_db(engine)
        print(f"database: {engine.dialect.name}")
        timed(
            f"load {options.events} events over {options.accounts} accounts",
            lambda: load(engine, options.events, options.accounts, options.people_per_account),
        )
        steps = [
            parse_selector(s)
            for s in ("web_visit", "form_fill where event.form == 'lead-step-1'", "opportunity_created")
        ]
        everything = Filters()
        canvas_s = timed("canvas (3 steps, accounts)", lambda: canvas(engine, steps, Container.account, everything))
        won = parse_selector("opportunity_stage_changed where event.stage == 'closed_won'")
        cohort_s = timed(
            "cohort (opportunity created -> closed won, by month)",
            lambda: cohort(
                engine, parse_selector("opportunity_created"), won, Container.account, everything, Grain.month, 12
            ),
        )
        milestone = parse_selector("form_fill where event.form == 'demo-request'")
        flow_s = timed(
            "flow (event types leading to a demo request, 5 columns)",
            lambda: flow(engine, milestone, Direction.ends_with, Container.account, everything, "type", 5, 5),
        )
        timed(
            "cohort (first form fill -> web visits, by week)",
            lambda: cohort(engine, parse_selector("form_fill"), steps[0], Container.account, everything, Grain.week, 8),
        )
        timed("canvas (2 steps, people)", lambda: canvas(engine, steps[:2], Container.person, everything))
        timed("timeline of one account", lambda: timeline(engine, "a42", everything))
        print(
            f"analytics {options.events} events: canvas {canvas_s:.2f} s, cohort {cohort_s:.2f} s, flow {flow_s:.2f} s"
        )


if __name__ == "__main__":
    main()
