"""The demo data set: deterministic, idempotent, and shaped so the example journeys have work to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from engine.db import Account, BuyingGroup, Person, SolutionInterestRecord, init_db, make_engine
from engine.dev.demo_data import load_demo_data
from engine.language import catalog
from engine.language.conditions import Scope, compile_condition
from engine.language.workspace import load_workspace

JOURNEYS = Path(__file__).resolve().parent.parent / "journeys"


def _engine(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    return engine


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = _engine(tmp_path_factory.mktemp("demo") / "x.db")
    load_demo_data(engine, JOURNEYS)
    return engine


def _dump(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        accounts = session.exec(select(Account).order_by(Account.id)).all()
        people = session.exec(select(Person).order_by(col(Person.id))).all()
        interests = session.exec(select(SolutionInterestRecord).order_by(SolutionInterestRecord.id)).all()
        return [row.model_dump() for row in [*accounts, *people, *interests]]


def _account_dict(account: Account) -> dict[str, Any]:
    # Journeys see custom attributes (set by update_account) as top-level keys next to the fields.
    return {**account.attributes, **account.model_dump()}


def test_loading_twice_gives_the_same_counts_and_rows(tmp_path: Path) -> None:
    """A second load returns the same counts and changes no row."""
    engine = _engine(tmp_path / "x.db")
    first = load_demo_data(engine, JOURNEYS)
    before = _dump(engine)
    second = load_demo_data(engine, JOURNEYS)
    assert first == second
    assert first["accounts"] == 300
    assert first["solution interests"] == 3
    assert 300 * 3 <= first["people"] <= 300 * 8 + 12
    after = _dump(engine)
    assert before == after
    assert len(after) == sum(first.values())


def test_two_fresh_databases_get_identical_data(tmp_path: Path, loaded: Engine) -> None:
    """The data set is the same on every run: a fresh database gets exactly the same rows."""
    other = _engine(tmp_path / "y.db")
    load_demo_data(other, JOURNEYS)
    assert _dump(other) == _dump(loaded)


def test_a_smaller_set_is_a_prefix_of_the_default_one(tmp_path: Path, loaded: Engine) -> None:
    """Asking for fewer accounts gives the first accounts of the full set, with the same people."""
    small = _engine(tmp_path / "small.db")
    counts = load_demo_data(small, JOURNEYS, accounts=20)
    assert counts["accounts"] == 20
    with Session(small) as session, Session(loaded) as full:
        emails = set(session.exec(select(Person.email)).all())
        assert emails <= set(full.exec(select(Person.email)).all())


def test_acme_corp_is_the_seed_example(loaded: Engine) -> None:
    """acme-corp has the seed document's fields and a buying group's worth of people, but no buying group."""
    with Session(loaded) as session:
        acme = session.get(Account, "acme-corp")
        assert acme is not None
        assert (acme.name, acme.industry, acme.domain) == ("Acme Corp", "Agriculture", "acme-corp.example")
        people = session.exec(select(Person).where(Person.account_id == "acme-corp")).all()
        titles = {person.job_title for person in people}
        assert {"Chief Technology Officer", "VP Engineering", "Procurement Manager", "Solutions Architect"} <= titles
        assert len(people) >= 8
        assert session.exec(select(BuyingGroup)).first() is None


def test_rows_are_well_formed(loaded: Engine) -> None:
    """Domains and emails are .example and unique; created_at lies in 2025; some people are unreachable."""
    with Session(loaded) as session:
        accounts = session.exec(select(Account)).all()
        people = session.exec(select(Person)).all()
    assert all(a.domain == f"{a.id}.example" and a.created_at.year == 2025 for a in accounts)
    assert all(a.owner_email is not None and a.owner_email.endswith("@sales.example") for a in accounts)
    assert len({a.timezone for a in accounts}) >= 10
    emails = [p.email for p in people if p.email is not None]
    assert len(emails) == len(set(emails))
    assert all(email.endswith(".example") and email.isascii() for email in emails)
    assert all(p.created_at.year == 2025 and len(p.job_title or "") >= 3 for p in people)
    assert 0 < sum(p.email is None for p in people) < len(people) * 0.05
    assert 0 < sum(p.unsubscribed for p in people) < len(people) * 0.08


def test_every_example_audience_matches_enough_accounts(loaded: Engine) -> None:
    """Each example journey's audience expression matches at least 5 demo accounts, but not all of them."""
    plans = catalog.validate([JOURNEYS]).plans
    assert len(plans) >= 4
    with Session(loaded) as session:
        accounts = [_account_dict(account) for account in session.exec(select(Account)).all()]
    for plan in plans:
        condition = compile_condition(plan.audience.accounts, Scope({"account": None}, "audience"))
        matched = sum(condition.evaluate(account=account) for account in accounts)
        assert 5 <= matched < len(accounts), plan.journey


def test_every_enterprise_software_role_has_someone_at_acme(loaded: Engine) -> None:
    """Each role rule of the enterprise-software template places at least one Acme Corp person."""
    template = next(t for t in load_workspace(JOURNEYS).buying_groups.role_templates if t.id == "enterprise-software")
    scope = Scope({"person": None, "account": None}, "roles")
    with Session(loaded) as session:
        acme = session.get(Account, "acme-corp")
        assert acme is not None
        people = [p.model_dump() for p in session.exec(select(Person).where(Person.account_id == "acme-corp")).all()]
    for role in template.roles:
        condition = compile_condition(role.when, scope)
        assert any(condition.evaluate(person=p, account=_account_dict(acme)) for p in people), role.role


def test_postgresql_gets_the_same_rows_as_sqlite(postgres_url: str, loaded: Engine) -> None:
    """On PostgreSQL, loading twice gives the SQLite rows, and later inserts still get fresh ids."""
    engine = make_engine(postgres_url)
    SQLModel.metadata.drop_all(engine)  # the server lives for the session
    init_db(engine)
    try:
        load_demo_data(engine, JOURNEYS)
        counts = load_demo_data(engine, JOURNEYS)
        assert _dump(engine) == _dump(loaded)  # instants read back aware, in UTC, from both databases
        with Session(engine) as session:
            person = Person(account_id="acme-corp", email="new.colleague@acme-corp.example")
            session.add(person)
            session.commit()
            assert person.id is not None and person.id > counts["people"]
    finally:
        SQLModel.metadata.drop_all(engine)
        engine.dispose()
