"""The schema is created idempotently and its unique keys hold, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from engine.db import Account, ActivityEvent, OutboxMessage, database_url, init_db, insert_new


class TestSchema:
    """Creating the schema twice changes nothing; the tables the engine relies on exist."""

    def test_init_twice(self, engine: Engine) -> None:
        """A second init_db leaves tables, rows and indexes as they were."""
        init_db(engine)
        with Session(engine) as session:
            session.merge(Account(id="acme-init", name="Acme", domain="acme-init.example"))
            session.commit()
        init_db(engine)
        with Session(engine) as session:
            assert session.get(Account, "acme-init") is not None
        tables = set(inspect(engine).get_table_names())
        assert {
            "account",
            "person",
            "buying_group",
            "buying_group_member",
            "outbox_message",
            "activity_event",
            "handoff",
            "solution_interest",
            "journey_version",
        } <= tables


class TestUniqueKeys:
    """Exactly-once effects rest on unique keys in the database, not on luck."""

    def test_outbox_key_unique(self, engine: Engine) -> None:
        """A second message with the same idempotency key is refused by the database."""
        init_db(engine)
        message = {
            "idempotency_key": "journey/x/acme/intro/7/1",
            "journey_id": "x",
            "account_id": "acme",
            "node_id": "intro",
            "to_address": "a@acme.example",
            "subject": "s",
            "html": "h",
            "text": "t",
        }
        with Session(engine) as session:
            session.add(OutboxMessage(**message))
            session.commit()
        with Session(engine) as session, pytest.raises(IntegrityError):
            session.add(OutboxMessage(**message))
            session.commit()

    def test_event_key_unique(self, engine: Engine) -> None:
        """The event log stores an event id once."""
        init_db(engine)
        with Session(engine) as session:
            session.add(ActivityEvent(key="evt-unique-1", type="form_fill", status="unmatched"))
            session.commit()
        with Session(engine) as session, pytest.raises(IntegrityError):
            session.add(ActivityEvent(key="evt-unique-1", type="form_fill", status="unmatched"))
            session.commit()

    def test_insert_new_writes_each_key_once(self, engine: Engine) -> None:
        """What a retried step batch relies on: rows already there are skipped, new ones in the same call added."""
        init_db(engine)
        table = ActivityEvent.__table__  # type: ignore[attr-defined]

        def row(key: str) -> dict[str, object]:
            return ActivityEvent(key=key, type="node_entered", payload={"visit": 1}).model_dump(exclude={"id"})

        with engine.begin() as connection:
            insert_new(connection, table, [row("~a"), row("~b")])
        with engine.begin() as connection:
            insert_new(connection, table, [row("~b"), row("~c"), row("~a")])
        with Session(engine) as session:
            keys = sorted(event.key for event in session.exec(select(ActivityEvent)))
        assert keys == ["~a", "~b", "~c"]


class TestDatabaseUrl:
    """Where the database lives is configured by environment variables only."""

    def test_default_is_sqlite_under_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without JOURNEY_DATABASE_URL the database is a SQLite file under JOURNEY_HOME."""
        monkeypatch.delenv("JOURNEY_DATABASE_URL", raising=False)
        monkeypatch.setenv("JOURNEY_HOME", str(tmp_path / "home"))
        assert database_url() == f"sqlite:///{tmp_path / 'home' / 'journey.db'}"

    def test_postgres_uses_psycopg(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A plain postgresql:// URL is driven by psycopg 3, the driver the project installs."""
        monkeypatch.setenv("JOURNEY_DATABASE_URL", "postgresql://u:secret@db.internal:5432/journeys")
        assert database_url() == "postgresql+psycopg://u:secret@db.internal:5432/journeys"
