"""The simulation's own database: a throw-away SQLite file, filled from the scenario or copied from the journey
database. The real database is only ever read (SQLite through a read-only backup, PostgreSQL by selecting rows)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, func, insert, select
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel

from engine.db import (
    Account,
    ActivityEvent,
    BuyingGroup,
    BuyingGroupMember,
    BuyingGroupRemoval,
    Handoff,
    JourneyAccount,
    JourneyVersion,
    Opportunity,
    OutboxMessage,
    Person,
    SendQuota,
    SolutionInterestRecord,
    init_db,
    make_engine,
)
from engine.language.plan import Plan
from engine.simulate.scenario import MAX_ACCOUNTS, MAX_PEOPLE, AccountSpec

# What an account's journey reads (in dependency order), and what earlier journeys left behind: a simulation
# starts every account afresh, so a past entry must not hold it back as re-entry would.
COPIED: tuple[type[SQLModel], ...] = (
    SolutionInterestRecord,
    Account,
    Person,
    Opportunity,
    BuyingGroup,
    BuyingGroupMember,
    BuyingGroupRemoval,
)
RUN_HISTORY: tuple[type[SQLModel], ...] = (
    Handoff,
    ActivityEvent,
    OutboxMessage,
    SendQuota,
    JourneyAccount,
    JourneyVersion,
)
CHUNK = 500


class SandboxError(Exception):
    """The journey database cannot be copied (missing, unreachable, or larger than a simulation takes)."""


def sandbox_engine(folder: Path) -> Engine:
    engine = _throw_away(folder / "simulation.db")
    init_db(engine)
    return engine


def _throw_away(path: Path) -> Engine:
    """SQLite without waiting for the disk: the file is deleted when the simulation ends, so a lost write costs
    nothing, while thousands of step and outbox commits each waited for a sync."""
    engine = make_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _no_sync)
    return engine


def _no_sync(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def seed(engine: Engine, plan: Plan, accounts: list[AccountSpec]) -> None:
    """The scenario's accounts and people, and the journey's solution interest (its buying groups need it)."""
    with Session(engine) as session:
        _add_interest(session, plan)
        for spec in accounts:
            values = spec.model_dump(exclude={"people"})
            values.setdefault("domain", None)
            session.add(Account(**values))
        session.flush()
        for spec in accounts:
            for person in spec.people:
                session.add(Person(account_id=spec.id, **person.model_dump()))
        session.commit()


def copy_database(url: str, folder: Path, plan: Plan) -> Engine:
    """A throw-away copy of the journey database at `url` with the rows a journey reads."""
    target = folder / "simulation.db"
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        source = Path(parsed.database or "")
        if not parsed.database or not source.is_file():
            raise SandboxError(f"no journey database at '{source}': set JOURNEY_DATABASE_URL or run `journey import`")
        try:
            # mode=ro: the real file is opened read-only, whatever this code does by mistake.
            real = sqlite3.connect(f"file:{source.resolve()}?mode=ro", uri=True)
            copy = sqlite3.connect(target)
            try:
                real.backup(copy)
            finally:
                real.close()
                copy.close()
        except sqlite3.Error as error:
            raise SandboxError(f"cannot copy the journey database '{source}': {error}") from None
        engine = _throw_away(target)
        init_db(engine)
        with engine.begin() as connection:
            for model in RUN_HISTORY:
                connection.execute(delete(model.__table__))  # type: ignore[attr-defined]
    else:
        engine = sandbox_engine(folder)
        _copy_rows(url, engine)
    with Session(engine) as session:
        _add_interest(session, plan)
        session.commit()
        accounts = session.execute(select(func.count()).select_from(Account)).scalar_one()
        people = session.execute(select(func.count()).select_from(Person)).scalar_one()
    if accounts > MAX_ACCOUNTS or people > MAX_PEOPLE:
        raise SandboxError(
            f"the journey database has {accounts:,} accounts and {people:,} people; a simulation takes at most "
            f"{MAX_ACCOUNTS:,} and {MAX_PEOPLE:,}: simulate with a scenario's own accounts instead"
        )
    return engine


def _copy_rows(url: str, engine: Engine) -> None:
    real = make_engine(url)
    try:
        with real.connect() as source, engine.begin() as target:
            for model in COPIED:
                table = model.__table__  # type: ignore[attr-defined]
                count = source.execute(select(func.count()).select_from(table)).scalar_one()
                if count > MAX_PEOPLE:
                    raise SandboxError(f"the journey database has {count:,} rows in {table.name}: too many to simulate")
                rows_of = source.execution_options(stream_results=True).execute(select(table)).mappings()
                while rows := rows_of.fetchmany(CHUNK):
                    target.execute(insert(table), [dict(row) for row in rows])
            source.rollback()  # nothing was written; ends the read transaction plainly
    except SandboxError:
        raise
    except Exception as error:
        raise SandboxError(f"cannot read the journey database: {str(error).splitlines()[0]}") from None
    finally:
        real.dispose()


def _add_interest(session: Session, plan: Plan) -> None:
    interest = plan.solution_interest
    if interest is not None and session.get(SolutionInterestRecord, interest.id) is None:
        session.add(
            SolutionInterestRecord(
                id=interest.id,
                name=interest.name,
                role_template=interest.role_template,
                description=interest.description,
            )
        )
