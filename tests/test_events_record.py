"""Recording events: instants keep their offsets on every database, and only an email on the account's own
domain creates a person (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import add_account
from typer.testing import CliRunner

from engine.cli import app as cli
from engine.db import ActivityEvent, Person, init_db, make_engine
from engine.runtime import events


def stored_at(engine: Engine, key: str) -> datetime:
    with Session(engine) as session:
        return session.exec(select(ActivityEvent).where(ActivityEvent.key == key)).one().occurred_at


class TestInstants:
    """10:00+02:00 is stored and read back as 08:00 UTC, on SQLite and PostgreSQL alike."""

    def test_offsets_survive_storage(self, engine: Engine) -> None:
        add_account(engine)
        plus_two = datetime(2026, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
        minus_five = datetime(2026, 1, 1, 3, 30, tzinfo=timezone(timedelta(hours=-5)))
        events.record(engine, "web_visit", "acme-corp", None, {"url": "/a"}, "tz-1", plus_two)
        events.record(engine, "web_visit", "acme-corp", None, {"url": "/b"}, "tz-2", minus_five)
        assert stored_at(engine, "tz-1") == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
        assert stored_at(engine, "tz-1").tzinfo is not None
        assert stored_at(engine, "tz-2") == datetime(2026, 1, 1, 8, 30, tzinfo=UTC)
        with Session(engine) as session:  # the order of events is the order of the instants
            ordered = session.exec(select(ActivityEvent.key).order_by(ActivityEvent.occurred_at)).all()  # type: ignore[arg-type]
        assert ordered == ["tz-1", "tz-2"]

    def test_cli_keeps_the_offset(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        engine = make_engine(f"sqlite:///{tmp_path / 'journey.db'}")
        init_db(engine)
        add_account(engine)
        monkeypatch.setenv("JOURNEY_DATABASE_URL", str(engine.url))
        monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # nobody there: the event is stored, not delivered
        result = CliRunner().invoke(
            cli,
            [
                "event",
                "web-visit",
                "--account",
                "acme-corp",
                "--event-id",
                "cli-tz",
                "--occurred-at",
                "2026-01-01T10:00:00+02:00",
            ],
        )
        assert result.exit_code == 0, result.output
        assert stored_at(engine, "cli-tz") == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


class TestPeopleFromEvents:
    """A form fill creates a person only for an email on the account's domain (docs/events.md)."""

    def test_off_domain_email_with_account_id_creates_nobody(self, engine: Engine) -> None:
        add_account(engine)  # domain acme-corp.example
        recorded = events.record(
            engine, "form_fill", "acme-corp", "stranger@evil.example", {"form": "demo-request"}, "off-1"
        )
        assert recorded.status == "unmatched"
        assert recorded.reason == (
            "'stranger@evil.example' is not on account 'acme-corp''s domain (acme-corp.example): "
            "only an email on it creates a person"
        )
        with Session(engine) as session:
            assert session.exec(select(Person)).all() == []

    def test_on_domain_email_creates_the_person(self, engine: Engine) -> None:
        add_account(engine)
        recorded = events.record(
            engine, "form_fill", "acme-corp", "ana@acme-corp.example", {"form": "demo-request"}, "on-1"
        )
        assert recorded.status == "accepted"
        with Session(engine) as session:
            assert [p.email for p in session.exec(select(Person)).all()] == ["ana@acme-corp.example"]
