"""Time the analytics reports on a generated event log: `python bench/analytics.py --container person`.

Generates accounts, people, buying groups and events (bench/analytics_data.py; deterministic), bulk-loads them
into a fresh database (a temporary SQLite file, or a new database on the PostgreSQL server of --database-url,
dropped afterwards), then runs each report once over the chosen container and prints its time. `--dataset
people` is people-heavy: 2,000 accounts of 50 people each. The last line is
`analytics N events (container C): canvas X s, cohort Y s, flow Z s`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analytics_data import Shape, interest_of, load

from engine.analytics.canvas import canvas
from engine.analytics.choices import Container, Direction, Grain
from engine.analytics.cohort import cohort
from engine.analytics.containers import Filters
from engine.analytics.flow import flow
from engine.analytics.selectors import parse_selector
from engine.analytics.timeline import timeline
from engine.db import init_db, make_engine

# --dataset: (accounts, people per account); --accounts and --people-per-account override them.
DATASETS = {"accounts": (10_000, 5), "people": (2_000, 50)}
TIMELINE_ACCOUNT = 42


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
    """Wall time; this process's CPU time is printed too (SQLite's work, not PostgreSQL's): on a loaded machine
    it shows how much of the wall time was waiting for a core."""
    started, cpu = time.perf_counter(), time.process_time()
    run()
    elapsed = time.perf_counter() - started
    print(f"{what}: {elapsed:.2f} s (cpu here {time.process_time() - cpu:.2f} s)")
    return elapsed


def reports(engine: Engine, container: Container) -> dict[str, Callable[[], Any]]:
    """The timed reports over `container`, by the name printed before each time."""
    visit, lead, created = (
        parse_selector(s) for s in ("web_visit", "form_fill where event.form == 'lead-step-1'", "opportunity_created")
    )
    won = parse_selector("opportunity_stage_changed where event.stage == 'closed_won'")
    demo = parse_selector("form_fill where event.form == 'demo-request'")
    everything = Filters()
    # The timeline reads one account, or one buying group when the container is buying groups.
    interest = interest_of(TIMELINE_ACCOUNT) if container is Container.buying_group else None
    return {
        "canvas (3 steps)": lambda: canvas(engine, [visit, lead, created], container, everything),
        "canvas (2 steps)": lambda: canvas(engine, [visit, lead], container, everything),
        "cohort (opportunity created -> closed won, by month)": lambda: cohort(
            engine, created, won, container, everything, Grain.month, 12
        ),
        "cohort (first form fill -> web visits, by week)": lambda: cohort(
            engine, parse_selector("form_fill"), visit, container, everything, Grain.week, 8
        ),
        "cohort (the same, with the latency table)": lambda: cohort(
            engine, parse_selector("form_fill"), visit, container, everything, Grain.week, 8, latency=True
        ),
        "flow (event types leading to a demo request, 5 columns)": lambda: flow(
            engine, demo, Direction.ends_with, container, everything, "type", 5, 5
        ),
        f"timeline of one {'buying group' if interest else 'account'}": lambda: timeline(
            engine, f"a{TIMELINE_ACCOUNT}", everything, interest
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="accounts",
        help="accounts (10,000 x 5 people) or people (2,000 x 50 people)",
    )
    parser.add_argument("--accounts", type=int, help="overrides the data set's number of accounts")
    parser.add_argument("--people-per-account", type=int, help="overrides the data set's people per account")
    parser.add_argument("--container", choices=[c.value for c in Container], default=Container.account.value)
    parser.add_argument("--database-url", help="a PostgreSQL server (postgresql://user@host:port/db); default SQLite")
    options = parser.parse_args()
    accounts, people = DATASETS[options.dataset]
    shape = Shape(options.events, options.accounts or accounts, options.people_per_account or people)
    if min(shape.events, shape.accounts, shape.people_per_account) < 1:
        parser.error("--events, --accounts and --people-per-account must be at least 1")
    container = Container(options.container)
    with fresh_database(options.database_url) as engine:
        init_db(engine)
        print(f"database: {engine.dialect.name}")
        timed(
            f"load {shape.events} events, {shape.accounts} accounts x {shape.people_per_account} people",
            lambda: load(engine, shape),
        )
        times = {name: timed(f"{name}, {container.value}", run) for name, run in reports(engine, container).items()}
        slowest = max(times, key=lambda name: times[name])
        print(f"slowest: {slowest} {times[slowest]:.2f} s")
        canvas_s = times["canvas (3 steps)"]
        cohort_s = times["cohort (opportunity created -> closed won, by month)"]
        flow_s = times["flow (event types leading to a demo request, 5 columns)"]
        print(
            f"analytics {shape.events} events (container {container.value}): "
            f"canvas {canvas_s:.2f} s, cohort {cohort_s:.2f} s, flow {flow_s:.2f} s"
        )


if __name__ == "__main__":
    main()
