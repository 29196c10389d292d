"""Data is printed as data: brackets in names, keys and values are not read as rich markup (issue 13: a last
name '[/]' crashed `journey analytics timeline|flow` and `journey api-key list`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import add_account, add_person
from typer.testing import CliRunner

from engine.cli import app
from engine.db import ActivityEvent
from engine.service import auth

MARKUP = "[/]"


@pytest.fixture
def env(db: Engine) -> dict[str, str]:
    add_account(db, name=f"Acme {MARKUP}")
    person = add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana", last_name=MARKUP)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with Session(db) as session:
        for n, kind in enumerate([MARKUP, "[bold red]pricing", "form"]):
            session.add(
                ActivityEvent(
                    key=f"visit-{n}",
                    type="web_visit",
                    account_id="acme-corp",
                    person_id=person,
                    email="ana@acme-corp.example",
                    payload={"content_type": kind, MARKUP: "x"},
                    occurred_at=start + timedelta(hours=n),
                )
            )
        session.add(
            ActivityEvent(
                key="fill-1",
                type="form_fill",
                account_id="acme-corp",
                person_id=person,
                payload={"form": MARKUP},
                occurred_at=start + timedelta(days=1),
            )
        )
        session.commit()
    auth.create_key(db, f"site {MARKUP}")
    return {"JOURNEY_DATABASE_URL": str(db.url)}


@pytest.mark.parametrize(
    "args",
    [
        ["analytics", "timeline", "acme-corp"],
        ["analytics", "flow", "--ends-with", "form_fill", "--dimension", "content_type"],
        ["api-key", "list"],
    ],
    ids=["timeline", "flow", "api-key-list"],
)
def test_brackets_print_as_themselves(env: dict[str, str], args: list[str]) -> None:
    result = CliRunner().invoke(app, args, env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert MARKUP in result.output
