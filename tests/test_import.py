"""Importing a team's own accounts, people and opportunities (issue 15), against real SQLite and PostgreSQL
databases: idempotent upserts, change events with old -> new, unsubscribed never turned back on, dry runs and
--skip-invalid, the batch core the HTTP API calls, and the schema added to existing databases."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import add_account, write_journey
from typer.testing import CliRunner

from engine.cli.app import app as cli
from engine.data.fields import FIELDS
from engine.data.importer import ImportFile, ImportReport, import_files, upsert_items
from engine.data.validate import Options
from engine.db import (
    Account,
    ActivityEvent,
    Opportunity,
    Person,
    Suppression,
    email_digest,
    init_db,
)
from engine.language.event_types import EventTypes
from engine.service import ingest

ACCOUNTS = """\
id,name,domain,industry,employees,country,timezone,segment
acme-corp,Acme Corp,acme-corp.example,Agriculture,1200,Germany,europe/berlin,enterprise
beta,Beta Inc,BETA.example,Software,50,US,America/Chicago,smb
"""
PEOPLE = """\
email;account_id;first_name;job_title;unsubscribed
Elena.Marquez@acme-corp.example;acme-corp;Elena;CTO;false
bob@beta.example;beta;Bob;Engineer;yes
"""


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


def run(engine: Engine, *files: tuple[str, Path], **options: Any) -> ImportReport:
    strict = options.pop("strict", False)
    return import_files(engine, [ImportFile(kind, path, Options(strict)) for kind, path in files], **options)  # type: ignore[arg-type]


def counts(report: ImportReport) -> list[tuple[int, int, int, int]]:
    return [(r.created, r.updated, r.unchanged, r.skipped) for r in report.files]


def change_events(engine: Engine) -> list[tuple[str, str | None, dict[str, Any]]]:
    with Session(engine) as session:
        rows = session.exec(
            select(ActivityEvent)
            .where(col(ActivityEvent.type).in_(["account_updated", "person_updated", "person_added"]))
            .order_by(col(ActivityEvent.id))
        ).all()
        return [(row.type, row.account_id, row.payload) for row in rows]


def dump(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        rows: list[Any] = [
            *session.exec(select(Account).order_by(col(Account.id))).all(),
            *session.exec(select(Person).order_by(col(Person.id))).all(),
            *session.exec(select(Opportunity).order_by(col(Opportunity.id))).all(),
        ]
        return [row.model_dump() for row in rows]


class TestUpsert:
    """An import creates, updates by key and leaves unchanged rows alone, on both databases."""

    def test_import_then_reimport_is_all_unchanged_and_records_nothing(self, engine: Engine, tmp_path: Path) -> None:
        """The second run of the same files changes no row and records no event."""
        accounts, people = write(tmp_path, "a.csv", ACCOUNTS), write(tmp_path, "p.csv", PEOPLE)
        first = run(engine, ("accounts", accounts), ("people", people))
        assert (first.problems, counts(first)) == (0, [(2, 0, 0, 0), (2, 0, 0, 0)])
        before = dump(engine)
        second = run(engine, ("accounts", accounts), ("people", people))
        assert counts(second) == [(0, 0, 2, 0), (0, 0, 2, 0)]
        assert dump(engine) == before
        assert change_events(engine) == []  # new people of accounts in no journey wake nobody

    def test_values_are_typed_and_normalised(self, engine: Engine, tmp_path: Path) -> None:
        """Countries become ISO codes, time zones and domains their canonical case, unknown columns attributes."""
        run(engine, ("accounts", write(tmp_path, "a.csv", ACCOUNTS)), ("people", write(tmp_path, "p.csv", PEOPLE)))
        with Session(engine) as session:
            acme, beta = session.get(Account, "acme-corp"), session.get(Account, "beta")
            assert acme is not None and beta is not None
            assert (acme.country, acme.timezone, acme.employees, acme.attributes) == (
                "DE",
                "Europe/Berlin",
                1200,
                {"segment": "enterprise"},
            )
            assert beta.domain == "beta.example"
            people = session.exec(select(Person).order_by(col(Person.id))).all()
            assert [(p.email, p.account_id, p.unsubscribed) for p in people] == [
                ("elena.marquez@acme-corp.example", "acme-corp", False),
                ("bob@beta.example", "beta", True),
            ]
            assert acme.updated_at is not None

    def test_a_change_records_an_event_with_old_and_new(self, engine: Engine, tmp_path: Path) -> None:
        """Only the changed fields and attributes are in the event, each with its old and new value."""
        run(engine, ("accounts", write(tmp_path, "a.csv", ACCOUNTS)), ("people", write(tmp_path, "p.csv", PEOPLE)))
        changed = write(tmp_path, "a2.csv", "id,industry,employees,segment\nacme-corp,Biotech,1200,mid-market\n")
        report = run(engine, ("accounts", changed))
        assert counts(report) == [(0, 1, 0, 0)]
        person = write(tmp_path, "p2.csv", "email,job_title,department\nELENA.MARQUEZ@acme-corp.example,CEO,\n")
        assert counts(run(engine, ("people", person))) == [(0, 1, 0, 0)]
        assert change_events(engine) == [
            (
                "account_updated",
                "acme-corp",
                {
                    "changes": {
                        "industry": {"old": "Agriculture", "new": "Biotech"},
                        "segment": {"old": "enterprise", "new": "mid-market"},
                    }
                },
            ),
            ("person_updated", "acme-corp", {"changes": {"job_title": {"old": "CTO", "new": "CEO"}}}),
        ]
        with Session(engine) as session:
            acme = session.get(Account, "acme-corp")
            assert acme is not None and (acme.name, acme.industry, acme.country) == ("Acme Corp", "Biotech", "DE")
            event = session.exec(select(ActivityEvent).where(ActivityEvent.type == "person_updated")).one()
            assert (event.email, event.journey_id, event.status, event.delivered_at) == (
                "elena.marquez@acme-corp.example",
                None,
                "matched",
                None,
            )
            assert event.key.startswith("~person_updated/")

    def test_the_same_change_made_again_later_is_a_new_event(self, engine: Engine, tmp_path: Path) -> None:
        """A -> B, B -> A, A -> B records three events: each is keyed by the version it changed."""
        add_account(engine)
        for industry in ("Biotech", "Agriculture", "Biotech"):
            run(engine, ("accounts", write(tmp_path, "x.csv", f"id,industry\nacme-corp,{industry}\n")))
        assert [payload["changes"]["industry"]["new"] for _, _, payload in change_events(engine)] == [
            "Biotech",
            "Agriculture",
            "Biotech",
        ]

    def test_unsubscribed_is_never_turned_back_on(self, engine: Engine, tmp_path: Path) -> None:
        """An import saying unsubscribed=false leaves an unsubscribed person unsubscribed, and records nothing."""
        run(engine, ("accounts", write(tmp_path, "a.csv", ACCOUNTS)), ("people", write(tmp_path, "p.csv", PEOPLE)))
        again = write(
            tmp_path, "p2.csv", "email,unsubscribed\nbob@beta.example,false\nelena.marquez@acme-corp.example,yes\n"
        )
        assert counts(run(engine, ("people", again))) == [(0, 1, 1, 0)]
        with Session(engine) as session:
            flags = dict(session.exec(select(Person.email, Person.unsubscribed)).all())
        assert flags == {"bob@beta.example": True, "elena.marquez@acme-corp.example": True}
        assert [payload for _, _, payload in change_events(engine)] == [
            {"changes": {"unsubscribed": {"old": False, "new": True}}}
        ]

    def test_an_erased_address_comes_back_unsubscribed(self, engine: Engine, tmp_path: Path) -> None:
        """A person erased with `journey forget` and imported again from a CRM is never emailed: unsubscribed."""
        add_account(engine, "beta", domain="beta.example")
        add_account(engine, "acme-corp")
        with Session(engine) as session:
            session.add(Suppression(digest=email_digest("bob@beta.example")))
            session.commit()
        run(engine, ("people", write(tmp_path, "p.csv", PEOPLE.replace(";yes", ";no"))))
        with Session(engine) as session:
            assert dict(session.exec(select(Person.email, Person.unsubscribed)).all()) == {
                "elena.marquez@acme-corp.example": False,
                "bob@beta.example": True,
            }

    def test_json_lines_null_clears_and_empty_csv_cell_keeps(self, engine: Engine, tmp_path: Path) -> None:
        """An empty CSV cell leaves a field as it is; a JSON null clears it and removes an attribute."""
        run(engine, ("accounts", write(tmp_path, "a.csv", ACCOUNTS)))
        run(engine, ("accounts", write(tmp_path, "b.csv", "id,industry,employees\nacme-corp,,\n")))
        lines = '{"id": "acme-corp", "industry": null, "segment": null, "tier": 2, "tags": ["seed"]}\n'
        report = run(engine, ("accounts", write(tmp_path, "c.jsonl", lines)))
        assert counts(report) == [(0, 1, 0, 0)]
        with Session(engine) as session:
            acme = session.get(Account, "acme-corp")
            assert acme is not None
            assert (acme.industry, acme.employees, acme.attributes) == (None, 1200, {"tier": 2, "tags": ["seed"]})

    def test_people_may_come_with_their_accounts_in_one_run(self, engine: Engine, tmp_path: Path) -> None:
        """A person's account may be created by the accounts file of the same run, checked before writing."""
        report = run(
            engine, ("accounts", write(tmp_path, "a.csv", ACCOUNTS)), ("people", write(tmp_path, "p.csv", PEOPLE))
        )
        assert report.problems == 0
        orphan = write(tmp_path, "p2.csv", "email,account_id\nx@nowhere.example,nowhere\n")
        refused = run(engine, ("people", orphan))
        assert refused.files[0].lines() == [
            f"{orphan}:2: column 'account_id': unknown account 'nowhere': import it first (journey import accounts "
            "FILE) or in the same run (--accounts FILE)"
        ]

    def test_opportunities_are_upserted_by_id(self, engine: Engine, tmp_path: Path) -> None:
        """Amounts, currencies, dates and flags are typed; a second run with a new stage updates the row."""
        add_account(engine)
        opportunities = "id,account_id,name,stage,amount,currency,close_date,is_closed\n"
        first = write(
            tmp_path, "o.csv", opportunities + "op-1,acme-corp,Seeds 2026,qualification,125000.50,eur,2026-03-31,no\n"
        )
        assert counts(run(engine, ("opportunities", first))) == [(1, 0, 0, 0)]
        later = write(tmp_path, "o2.csv", "id,stage,is_closed,is_won\nop-1,closed_won,yes,yes\n")
        assert counts(run(engine, ("opportunities", later))) == [(0, 1, 0, 0)]
        with Session(engine) as session:
            row = session.get(Opportunity, "op-1")
            assert row is not None
            assert (row.stage, row.amount, row.currency, str(row.close_date), row.is_closed, row.is_won) == (
                "closed_won",
                125000.5,
                "EUR",
                "2026-03-31",
                True,
                True,
            )


class TestChecksFirst:
    """Nothing is written while a problem stands, unless --skip-invalid; a dry run writes nothing at all."""

    BAD = "id,name,employees\ngood,Good Co,10\nbad,Bad Co,many\n"

    def test_a_problem_writes_nothing(self, engine: Engine, tmp_path: Path) -> None:
        report = run(engine, ("accounts", write(tmp_path, "a.csv", self.BAD)))
        assert (report.written, report.problems, dump(engine)) == (False, 1, [])

    def test_skip_invalid_writes_the_good_rows(self, engine: Engine, tmp_path: Path) -> None:
        report = run(engine, ("accounts", write(tmp_path, "a.csv", self.BAD)), skip_invalid=True)
        assert counts(report) == [(1, 0, 0, 1)]
        assert [row["id"] for row in dump(engine)] == ["good"]

    def test_dry_run_counts_and_writes_nothing(self, engine: Engine, tmp_path: Path) -> None:
        add_account(engine, "acme-corp", industry="Retail")
        before = dump(engine)
        dry = run(engine, ("accounts", write(tmp_path, "a.csv", ACCOUNTS)), dry_run=True)
        assert (dry.written, counts(dry)) == (False, [(1, 1, 0, 0)])
        assert dump(engine) == before
        assert change_events(engine) == []


class TestBatch:
    """The core of the HTTP upsert API: a verdict per item; rejected items store nothing, the others are written."""

    def test_verdicts_per_item(self, engine: Engine) -> None:
        add_account(engine)
        items: list[Any] = [
            {"id": "acme-corp", "industry": "Biotech"},
            {"id": "new-co", "name": "New Co", "timezone": "Mars/Olympus"},
            {"id": "new-co-2", "name": "New Co 2", "country": "FR"},
            {"id": "acme-corp", "industry": "Retail"},
            "not an object",
            {"id": "acme-corp"},
        ]
        results = upsert_items(engine, "accounts", items)
        assert [(r.index, r.key, r.verdict) for r in results] == [
            (0, "acme-corp", "updated"),
            (1, "new-co", "rejected"),
            (2, "new-co-2", "created"),
            (3, "acme-corp", "rejected"),
            (4, None, "rejected"),
            (5, "acme-corp", "rejected"),
        ]
        assert results[0].changes == {"industry": {"old": "Agriculture", "new": "Biotech"}}
        assert [(p.column, p.message) for p in results[1].problems] == [
            (
                "timezone",
                "unknown time zone 'Mars/Olympus': expected an IANA name such as 'Europe/Berlin' or 'America/Chicago'",
            )
        ]
        assert [p.message for p in results[3].problems] == [
            "account 'acme-corp' is also on item 0: give each account once"
        ]
        with Session(engine) as session:
            assert sorted(session.exec(select(Account.id)).all()) == ["acme-corp", "new-co-2"]
        again = upsert_items(engine, "accounts", [{"id": "acme-corp", "industry": "Biotech"}])
        assert [r.verdict for r in again] == ["unchanged"]

    def test_a_sender_may_not_send_account_updated(self) -> None:
        """`account_updated` is the engine's record of a change: journeys may wait for it, senders may not send it."""
        answer = ingest.judge(
            {"type": "account_updated", "account": {"id": "acme-corp"}, "event_id": "e-1"}, 0, True, EventTypes()
        )
        assert isinstance(answer, ingest.EventAnswer)
        assert (answer.status, answer.path) == ("rejected", "type")
        assert "recorded by the engine itself" in (answer.reason or "")
        assert "account_updated" in EventTypes().names  # the relay delivers it


class TestSchema:
    """init_db adds what this issue declared to a database created before it, on both databases."""

    def test_new_columns_and_tables_are_added_to_an_old_database(self, engine: Engine) -> None:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE opportunity"))
            connection.execute(text("DROP INDEX ix_person_email_lower"))
            for table in ("account", "person"):
                connection.execute(text(f"ALTER TABLE {table} DROP COLUMN updated_at"))
            connection.execute(text("INSERT INTO account (id, name, timezone, attributes, created_at) "
                                    "VALUES ('old', 'Old', 'UTC', '{}', CURRENT_TIMESTAMP)"))  # fmt: skip
        init_db(engine)
        init_db(engine)
        schema = inspect(engine)
        assert "opportunity" in schema.get_table_names()
        assert {"updated_at"} <= {column["name"] for column in schema.get_columns("person")}
        with Session(engine) as session:
            old = session.get(Account, "old")
            assert old is not None and old.updated_at is None
        assert run_items(engine, [{"id": "old", "industry": "Retail"}]) == ["updated"]


def run_items(engine: Engine, items: list[dict[str, Any]]) -> list[str]:
    return [result.verdict for result in upsert_items(engine, "accounts", items)]


def test_attributes_from_csv_are_typed(db: Engine, tmp_path: Path) -> None:
    """CSV attributes that read as numbers or true/false are stored as such; a postal code keeps its zero."""
    path = write(tmp_path, "a.csv", "id,name,webinars,score,vip,zip,note\nz,Z,3,4.5,TRUE,01234,hello\n")
    run(db, ("accounts", path))
    with Session(db) as session:
        account = session.get(Account, "z")
        assert account is not None
        assert json.dumps(account.attributes, sort_keys=True) == json.dumps(
            {"note": "hello", "score": 4.5, "vip": True, "webinars": 3, "zip": "01234"}, sort_keys=True
        )


class TestCommand:
    """`journey import`: a summary line on stdout, problems and notes on stderr, the exit code says which."""

    def invoke(self, tmp_path: Path, *args: str) -> Any:
        env = {"JOURNEY_DATABASE_URL": f"sqlite:///{tmp_path / 'journey.db'}"}
        return CliRunner().invoke(cli, ["import", *args], env=env)

    def test_summary_and_notes(self, tmp_path: Path) -> None:
        accounts = write(tmp_path, "a.csv", "id,name,industy\nacme-corp,Acme Corp,Retail\n")
        people = write(tmp_path, "p.csv", PEOPLE.replace("beta", "acme-corp").replace("@beta", "@acme-corp"))
        first = self.invoke(tmp_path, "people", str(people), "--accounts", str(accounts))
        assert (first.exit_code, first.stdout.splitlines(), first.stderr.splitlines()) == (
            0,
            [f"{accounts}: created 1, updated 0, unchanged 0", f"{people}: created 2, updated 0, unchanged 0"],
            [
                f"{accounts}:1: note: column 'industy': not a field of accounts: kept as the attribute 'industy' "
                "(did you mean 'industry'?)"
            ],
        )
        again = self.invoke(tmp_path, "accounts", str(accounts), "--map", "industy=industry", "--dry-run")
        assert (again.exit_code, again.stdout) == (
            0,
            f"{accounts}: created 0, updated 1, unchanged 0 (dry run: nothing written)\n",
        )

    def test_skip_invalid_reports_and_writes_the_rest(self, tmp_path: Path) -> None:
        path = write(tmp_path, "a.csv", TestChecksFirst.BAD)
        result = self.invoke(tmp_path, "accounts", str(path), "--skip-invalid")
        assert (result.exit_code, result.stdout, result.stderr) == (
            0,
            f"{path}: created 1, updated 0, unchanged 0, skipped 1\n",
            f"{path}:3: column 'employees': 'many' is not a whole number\n",
        )

    def test_a_missing_file_is_a_usage_error(self, tmp_path: Path) -> None:
        result = self.invoke(tmp_path, "accounts", str(tmp_path / "nope.csv"))
        assert (result.exit_code, result.stderr) == (2, f"journey: no such file: {tmp_path / 'nope.csv'}\n")


def test_the_documented_wait_for_a_change_compiles(tmp_path: Path) -> None:
    """docs/data.md's journey waiting for an account_updated event is a valid journey."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    snippet = docs.split("  ```yaml\n", 1)[1].split("  ```", 1)[0]
    body = textwrap.dedent(snippet) + "- id: enterprise_track\n  type: end\n- id: nurture\n  type: end\n"
    plan = write_journey(tmp_path, body, start="wait_for_growth")
    assert plan.nodes["wait_for_growth"].type == "wait_for_event"


def test_every_field_is_documented() -> None:
    """docs/data.md has a row for every field of every kind."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    for kind, fields in FIELDS.items():
        section = docs.split(f"## {kind.title()}\n", 1)[1].split("\n## ", 1)[0]
        assert [name for name in fields if f"| `{name}` |" not in section] == [], kind
