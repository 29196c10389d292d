"""Erasure (GDPR Art. 17): `journey forget` and `DELETE /v1/people/{email}` on SQLite and PostgreSQL. The
person's rows go or are scrubbed, the address is suppressed (no journey, handoff or event brings it back into
an email), nothing of theirs is logged, and afterwards no text in any table holds their address or name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
import pytest
from service_support import SECRET, signed
from sqlalchemy import LargeBinary, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select
from structlog.testing import capture_logs
from support import SmtpInbox, add_account, add_person
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner

from activities import handoff_summary
from activities.delivery import RecipientRefusedError, SmtpDelivery
from activities.email import EmailActivities, send_once
from engine.cli import app as cli
from engine.data.erasure import ERASED, ErasureError, forget
from engine.db import (
    Account,
    ActivityEvent,
    BuyingGroup,
    BuyingGroupMember,
    Handoff,
    Opportunity,
    OutboxMessage,
    PayloadBlob,
    Person,
    SolutionInterestRecord,
    Suppression,
    email_digest,
)
from engine.language.model import Recipients, Role, RoleTemplate
from engine.runtime import events
from engine.service import auth
from engine.service.app import ServiceConfig, create_app
from engine.service.serve import serving
from engine.workflow.contracts import BuyingGroupSnapshot, GroupMember, SendEmailRequest, SendEmailResult

ANA = "Ana.Ruiz@acme-corp.example"  # stored as typed; erased in another case, with spaces around
ADDRESS = ANA.lower()
PHONE = "+34 600 111 222"
OWNER = "olga@northfield.example"


@dataclass(frozen=True)
class Seeded:
    ana: int
    bob: int
    group: int


def seed(engine: Engine) -> Seeded:
    """Ana everywhere the engine keeps people: her row and role, her events (a form fill she typed her phone
    into, a click, a sender's event id and an unmatched reason naming her), emails to her, the owner's handoff
    email, the handoff summary, a colleague's and the account's attributes, a stored payload value."""
    add_account(engine, owner_email=OWNER, attributes={"champion_contact": ANA.upper()})
    add_account(engine, "globex", name="Globex")
    ana = add_person(engine, "acme-corp", ANA, first_name="Ana", last_name="Ruiz", job_title="CTO", phone=PHONE)
    bob = add_person(
        engine, "acme-corp", "bob@acme-corp.example", first_name="Bob", last_name="Stone", attributes={"pa_of": ANA}
    )
    with Session(engine) as session:
        session.add(SolutionInterestRecord(id="ai-seeds", name="AI seeds", role_template="abm"))
        session.flush()
        group = BuyingGroup(account_id="acme-corp", solution_interest_id="ai-seeds")
        session.add(group)
        session.flush()
        assert group.id is not None
        session.add(BuyingGroupMember(buying_group_id=group.id, person_id=ana, role="champion"))
        session.add(BuyingGroupMember(buying_group_id=group.id, person_id=bob, role="decision_maker"))
        session.commit()
        group_id = group.id
    fields = {"phone": PHONE, "message": "Call me, Ana Ruiz"}
    events.record(engine, "form_fill", None, ANA, {"form": "demo-request", "fields": fields}, "f-1")
    events.record(engine, "email_click", "acme-corp", ANA, {"url": "https://acme.example/x"}, "c-1")
    events.record(engine, "web_visit", "acme-corp", ANA, {"url": "/pricing"}, f"visit/{ANA}/1")
    events.record(engine, "form_fill", "globex", ANA, {"form": "webinar"}, "f-2")  # her, on another account
    events.record(engine, "web_visit", "acme-corp", "bob@acme-corp.example", {"url": "/"}, "v-bob")
    with Session(engine) as session:
        recent = session.exec(select(ActivityEvent).where(col(ActivityEvent.person_id).is_not(None))).all()
        snapshot = BuyingGroupSnapshot(
            id=group_id,
            account_id="acme-corp",
            solution_interest="ai-seeds",
            stage="awareness",
            completeness=100.0,
            engagement=40.0,
            missing_roles=[],
            members=[
                GroupMember(
                    person_id=ana,
                    email=ANA,
                    name="Ana Ruiz",
                    job_title="CTO",
                    role="champion",
                    assigned_by="rule",
                    engagement_score=9,
                ),
                GroupMember(
                    person_id=bob,
                    email="bob@acme-corp.example",
                    name="Bob Stone",
                    job_title=None,
                    role="decision_maker",
                    assigned_by="manual",
                    engagement_score=3,
                ),
            ],
        )
        template = RoleTemplate(
            id="abm", roles=[Role(role="champion", when="true"), Role(role="decision_maker", when="true")]
        )
        acme = session.get(Account, "acme-corp")
        assert acme is not None
        summary = handoff_summary.build("k", "ai-seed-abm", snapshot, template, acme, recent, "sales_ready")
        session.add(
            Handoff(buying_group_id=group_id, account_id="acme-corp", journey_id="ai-seed-abm", summary=summary)
        )
        session.add(
            ActivityEvent(
                key="~handoff/1",
                type="sales_handoff",
                account_id="acme-corp",
                payload=handoff_summary.webhook_body(summary),
            )
        )
        subject, html, text = handoff_summary.render(summary)
        session.add(outbox("handoff/1/owner", OWNER, None, subject, html, text))
        unsubscribe = "mailto:unsubscribe@northfield.example?subject=unsubscribe%20" + ANA.replace("@", "%40")
        session.add(
            outbox("j/run/intro/1/1", ANA, ana, "Ana, about AI seeds", f"<p>Hi Ana</p>{unsubscribe}", f"Hi Ana\n{ANA}")
        )
        referral = f"<a href='https://acme.example/r?by={ANA.replace('@', '%40')}'>Ana Ruiz</a> recommends us"
        session.add(outbox("j/run/intro/1/2", "bob@acme-corp.example", bob, "Hi Bob", referral, "Ana Ruiz says hi"))
        pending = outbox("j/run/reminder/1/1", ANA, ana, "Ana?", "<p>Hi Ana</p>", "Hi Ana")
        pending.status, pending.error = "failed", f"RecipientRefusedError: 550 <{ANA}> mailbox full"
        session.add(pending)
        session.add(Opportunity(id="opp-1", account_id="acme-corp", name="AI seeds pilot", attributes={"contact": ANA}))
        session.add(PayloadBlob(digest="0" * 64, data=json.dumps({"members": [{"email": ANA}]}).encode()))
        session.commit()
    return Seeded(ana, bob, group_id)


def outbox(key: str, to: str, person: int | None, subject: str, html: str, text: str) -> OutboxMessage:
    return OutboxMessage(
        idempotency_key=key,
        journey_id="ai-seed-abm",
        account_id="acme-corp",
        person_id=person,
        node_id="intro",
        to_address=to,
        subject=subject,
        html=html,
        text=text,
        status="sent",
    )


def texts_holding(engine: Engine, *needles: str) -> list[str]:
    """'table.column' of every text or JSON value, in every table, that holds one of `needles` (any case)."""
    found = []
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(table.select()).mappings():
                for column in table.columns:
                    value = row[column.name]
                    if isinstance(column.type, LargeBinary) or value is None:
                        continue
                    shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
                    if any(needle.lower() in shown.lower() for needle in needles):
                        found.append(f"{table.name}.{column.name}")
    return found


def erased_rows(engine: Engine) -> list[ActivityEvent]:
    with Session(engine) as session:
        return list(session.exec(select(ActivityEvent).where(ActivityEvent.type == "person_erased")).all())


def event_row(engine: Engine, key: str) -> ActivityEvent:
    with Session(engine) as session:
        return session.exec(select(ActivityEvent).where(ActivityEvent.key == key)).one()


def outbox_row(engine: Engine, key: str) -> OutboxMessage:
    with Session(engine) as session:
        return session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == key)).one()


class TestForget:
    """Everything the database holds about the person goes or is scrubbed; the exactly-once keys stay."""

    def test_counts(self, engine: Engine) -> None:
        seed(engine)
        erasure = forget(engine, f"  {ANA.upper()} ", "dpo@northfield.example", f"ticket 42 from {ANA}")
        assert (erasure.found, erasure.suppressed_before) == (True, False)
        assert erasure.removed == {"people": 1, "buying_group_members": 1}
        # events: form fill, click, visit, the other account's form fill, the handoff; outbox: two to Ana, the
        # owner's handoff email and Bob's naming her; acme's attributes; Bob's attributes; the opportunity's.
        assert erasure.scrubbed == {
            "events": 5,
            "outbox_messages": 4,
            "handoffs": 1,
            "accounts": 1,
            "other_people": 1,
            "opportunities": 1,
        }
        assert erasure.kept_payload_values == 1
        assert erasure.digest == email_digest(ADDRESS)
        assert erasure.message == (
            "erased: removed 1 person, 1 buying-group membership; scrubbed 5 events, 4 outbox messages, 1 handoff, "
            "1 account, 1 other person's attributes, 1 opportunity; the address is suppressed and will never be "
            "emailed again; 1 payload value of Temporal histories still holds it (see README, Erasure)"
        )

    def test_no_trace_left(self, engine: Engine) -> None:
        """No text in any table holds the address (in any case or encoding), the name or the phone number."""
        seed(engine)
        assert texts_holding(engine, ADDRESS, "Ana Ruiz", PHONE)  # the scan finds what is there
        forget(engine, ANA, "dpo@northfield.example", f"asked by {ANA}")
        assert texts_holding(engine, ADDRESS, "Ana Ruiz", PHONE, "ana.ruiz%40") == []

    def test_rows(self, engine: Engine) -> None:
        """The person and her role are gone; Bob, his role and his events are as they were."""
        seeded = seed(engine)
        forget(engine, ANA, "dpo")
        with Session(engine) as session:
            assert session.get(Person, seeded.ana) is None
            bob = session.get(Person, seeded.bob)
            assert bob is not None and bob.attributes == {"pa_of": ERASED}
            members = session.exec(select(BuyingGroupMember.person_id, BuyingGroupMember.role)).all()
            assert list(members) == [(seeded.bob, "decision_maker")]
        visit = event_row(engine, "v-bob")
        assert (visit.person_id, visit.email) == (seeded.bob, "bob@acme-corp.example")

    def test_events_kept_for_the_account(self, engine: Engine) -> None:
        """Her events stay, without her: the form's name and the page stay, what she typed goes; a sender's
        event id made of her address becomes an engine key that says nothing."""
        seed(engine)
        forget(engine, ANA, "dpo")
        form = event_row(engine, "f-1")
        assert (form.account_id, form.person_id, form.email, form.payload) == (
            "acme-corp",
            None,
            None,
            {"form": "demo-request"},
        )
        assert event_row(engine, "c-1").payload == {"url": "https://acme.example/x"}
        other = event_row(engine, "f-2")
        assert (other.email, other.status, other.reason) == (
            None,
            "unmatched",
            f"person '{ERASED}' belongs to account 'acme-corp', not 'globex'",
        )
        with Session(engine) as session:
            visits = session.exec(select(ActivityEvent).where(col(ActivityEvent.key).startswith("~erased/"))).all()
        assert [(row.type, row.payload) for row in visits] == [("web_visit", {"url": "/pricing"})]

    def test_outbox_keys_stay_used(self, engine: Engine) -> None:
        """Messages to her keep key and status, so a retried send finds the key used and sends nothing; one not
        sent is failed for good. The owner's handoff email keeps Bob and loses her."""
        seed(engine)
        forget(engine, ANA, "dpo")
        sent = outbox_row(engine, "j/run/intro/1/1")
        assert (sent.status, sent.to_address, sent.subject, sent.html, sent.text, sent.person_id) == (
            "sent",
            ERASED,
            "",
            "",
            "",
            None,
        )
        failed = outbox_row(engine, "j/run/reminder/1/1")
        assert (failed.status, failed.error) == ("failed", "not sent: the person was erased (journey forget)")
        to_bob = outbox_row(engine, "j/run/intro/1/2")
        assert (to_bob.to_address, to_bob.html, to_bob.text) == (
            "bob@acme-corp.example",
            f"<a href='https://acme.example/r?by={ERASED}'>{ERASED}</a> recommends us",
            f"{ERASED} says hi",
        )
        owner = outbox_row(engine, "handoff/1/owner")
        assert owner.to_address == OWNER
        assert "Bob Stone" in owner.html and "Bob Stone" in owner.text
        assert f"<strong>champion</strong>: {ERASED}, {ERASED} &lt;{ERASED}&gt; (engagement" in owner.html

    def test_handoff_summary_keeps_its_shape(self, engine: Engine) -> None:
        """Her entry still fills the role (completeness is history), with nothing of hers; the summary still
        renders, as a retried handoff would render it."""
        seeded = seed(engine)
        forget(engine, ANA, "dpo")
        with Session(engine) as session:
            summary = session.exec(select(Handoff.summary)).one()
            webhook = session.exec(select(ActivityEvent.payload).where(ActivityEvent.type == "sales_handoff")).one()
        champion = summary["members_by_role"]["champion"]
        assert champion == [
            {
                "person_id": None,
                "name": ERASED,
                "email": None,
                "job_title": None,
                "assigned_by": "rule",
                "engagement": 9,
            }
        ]
        assert summary["members_by_role"]["decision_maker"][0]["person_id"] == seeded.bob
        assert {item["email"] for item in summary["recent_activity"]} == {None, "bob@acme-corp.example"}
        assert webhook == handoff_summary.webhook_body(summary)
        handoff_summary.render(summary)

    def test_suppression_and_audit(self, engine: Engine) -> None:
        """One anonymous suppression record and one `person_erased` event: digest, who, why, counts."""
        seed(engine)
        forget(engine, ANA, "dpo@northfield.example", f"ticket 42 from {ANA}")
        with Session(engine) as session:
            suppressions = session.exec(select(Suppression.digest, Suppression.reason)).all()
        assert list(suppressions) == [(email_digest(ANA), "erased")]
        (row,) = erased_rows(engine)
        assert (row.account_id, row.person_id, row.email, row.delivered_at is not None) == (None, None, None, True)
        assert row.key.startswith("~person_erased/")
        assert row.payload["digest"] == email_digest(ANA)
        assert (row.payload["by"], row.payload["reason"]) == ("dpo@northfield.example", f"ticket 42 from {ERASED}")
        assert row.payload["removed"] == {"people": 1, "buying_group_members": 1}

    def test_twice(self, engine: Engine) -> None:
        """A second erasure finds nothing more, changes nothing, records no second event, and says so."""
        seed(engine)
        forget(engine, ANA, "dpo")
        again = forget(engine, ANA, "dpo")
        assert (again.found, again.suppressed_before) == (False, True)
        assert not any(again.removed.values()) and not any(again.scrubbed.values())
        assert again.message == (
            "already erased: nothing more was found; the address stays suppressed; 1 payload value of Temporal "
            "histories still holds it (see README, Erasure)"
        )
        assert len(erased_rows(engine)) == 1

    def test_unknown_address(self, engine: Engine) -> None:
        """Nobody has it: the suppression is recorded anyway (the person may arrive later) and the answer says
        that nothing was found."""
        add_account(engine)
        erasure = forget(engine, "nobody@acme-corp.example", "dpo")
        assert (erasure.found, erasure.suppressed_before) == (False, False)
        assert erasure.message == (
            "no person with this address was found; the address is now suppressed, so it is never emailed if it "
            "arrives later"
        )
        with Session(engine) as session:
            assert session.get(Suppression, email_digest("nobody@acme-corp.example")) is not None
        assert len(erased_rows(engine)) == 1

    @pytest.mark.parametrize("given", ["", "   ", "ana", "ana@", "a b@acme.example", "x" * 320 + "@acme.example"])
    def test_not_an_address(self, engine: Engine, given: str) -> None:
        with pytest.raises(ErasureError, match="is not an email address: give the person's address"):
            forget(engine, given, "dpo")
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(Suppression)).one() == 0

    def test_logged_without_the_address(self, engine: Engine) -> None:
        """The log names the digest and the counts, never the address."""
        seed(engine)
        with capture_logs() as logs:
            forget(engine, ANA, "dpo")
            forget(engine, ANA, "dpo")
        assert [entry["event"] for entry in logs] == ["person.erased", "person.already_erased"]
        assert logs[0]["digest"] == email_digest(ANA) and logs[0]["people"] == 1
        assert ADDRESS not in json.dumps(logs, default=str).lower()


class TestSuppression:
    """An erased address is never emailed again: not by a journey, not by a handoff, not after it came back."""

    def test_a_form_fill_brings_them_back_unsubscribed(self, engine: Engine) -> None:
        """The form fill is accepted (the account's journeys move on) and the person re-created, unsubscribed."""
        seed(engine)
        forget(engine, ANA, "dpo")
        with capture_logs() as logs:
            recorded = events.record(engine, "form_fill", None, ANA, {"form": "demo-request"}, "f-back")
        assert recorded.status == "accepted"
        with Session(engine) as session:
            person = session.exec(select(Person).where(Person.email == ANA)).one()
        assert person.unsubscribed is True
        assert [(entry["event"], entry["digest"]) for entry in logs] == [
            ("person.recreated_unsubscribed", email_digest(ANA))
        ]

    def test_an_old_link_records_no_address(self, engine: Engine) -> None:
        """A click in an email she got before: kept for the account, without her address."""
        seed(engine)
        forget(engine, ANA, "dpo")
        recorded = events.record(engine, "email_click", "acme-corp", ANA, {"url": "https://acme.example/x"}, "c-2")
        assert (recorded.status, recorded.reason, recorded.event.email) == ("unmatched", events.ERASED_REASON, None)
        row = event_row(engine, "c-2")
        assert (row.email, row.account_id) == (None, "acme-corp")

    def test_a_journey_skips_them(self, engine: Engine, smtp: tuple[str, SmtpInbox]) -> None:
        """Re-created and then made mailable by hand: the email node still skips her (counted and logged as
        'erased'), and the real SMTP server receives Bob's message only."""
        seed(engine)
        forget(engine, ANA, "dpo")
        events.record(engine, "form_fill", None, ANA, {"form": "demo-request"}, "f-back")
        with Session(engine) as session:
            person = session.exec(select(Person).where(Person.email == ANA)).one()
            person.unsubscribed = False
            session.add(person)
            session.commit()
            person_id = person.id
        url, inbox = smtp
        with capture_logs() as logs:
            result = send(EmailActivities(engine, SmtpDelivery(url)), email_request())
        assert result == SendEmailResult(sent=1, skipped_erased=1)
        assert [recipients for recipients, _ in inbox.messages] == [["bob@acme-corp.example"]]
        skipped = [(entry["person"], entry["reason"]) for entry in logs if entry["event"] == "email.skipped"]
        assert skipped == [(person_id, "erased")]

    def test_erased_while_a_batch_is_sent(self, engine: Engine, smtp: tuple[str, SmtpInbox]) -> None:
        """Erased between two messages of one batch: the second is not sent."""
        add_account(engine)
        add_person(engine, "acme-corp", "bob@acme-corp.example")
        add_person(engine, "acme-corp", ANA)
        url, inbox = smtp

        class ErasingDelivery(SmtpDelivery):
            def deliver(self, message: EmailMessage, key: str) -> None:
                super().deliver(message, key)
                forget(engine, ANA, "dpo")

        result = send(EmailActivities(engine, ErasingDelivery(url)), email_request())
        assert result == SendEmailResult(sent=1, skipped_erased=1)
        assert [recipients for recipients, _ in inbox.messages] == [["bob@acme-corp.example"]]

    def test_the_handoff_owner(self, engine: Engine, smtp: tuple[str, SmtpInbox]) -> None:
        """An erased owner address (set again by an import, say) gets no handoff email; nothing is stored."""
        add_account(engine)
        forget(engine, OWNER, "dpo")
        message = EmailMessage()
        message["To"] = OWNER
        message.set_content("ready for sales")
        url, inbox = smtp
        with pytest.raises(RecipientRefusedError, match="erased"):
            send_once(engine, SmtpDelivery(url), outbox("handoff/9/owner", OWNER, None, "s", "h", "t"), message)
        assert inbox.messages == []
        assert texts_holding(engine, OWNER) == []


def email_request() -> SendEmailRequest:
    return SendEmailRequest(
        key_prefix="journey/nurture/acme-corp/run/intro/1",
        journey_id="nurture",
        journey_name="Nurture",
        version="v1",
        account_id="acme-corp",
        node_id="intro",
        to=Recipients(all=True),
        subject="Hello {{ person.first_name }}",
        html_template="<p>Hi</p>",
    )


def send(activities: EmailActivities, request: SendEmailRequest) -> SendEmailResult:
    return asyncio.run(ActivityEnvironment().run(activities.send_email, request))


class TestCommand:
    """`journey forget` asks first (unless --yes) and prints what it removed."""

    @pytest.fixture
    def database(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
        monkeypatch.setenv("JOURNEY_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        seed(engine)
        return engine

    def test_yes(self, database: Engine) -> None:
        result = CliRunner().invoke(cli, ["forget", ANA, "--yes", "--by", "dpo", "--reason", "ticket 42"])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("erased: removed 1 person, 1 buying-group membership; scrubbed 5 events")
        assert erased_rows(database)[0].payload["by"] == "dpo"

    def test_asks_first(self, database: Engine) -> None:
        result = CliRunner().invoke(cli, ["forget", ANA], input="n\n")
        assert result.exit_code == 1
        assert "nothing erased" in result.stderr
        with Session(database) as session:
            assert session.exec(select(Person).where(Person.email == ANA)).first() is not None
        result = CliRunner().invoke(cli, ["forget", ANA], input="y\n")
        assert result.exit_code == 0, result.output
        assert f"Erase everything the journey database holds about '{ANA}'?" in result.stdout

    def test_json_and_twice(self, database: Engine) -> None:
        CliRunner().invoke(cli, ["forget", ANA, "--yes"])
        result = CliRunner().invoke(cli, ["forget", ANA, "--yes", "--json"])
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        assert (answer["found"], answer["suppressed_before"]) == (False, True)
        assert answer["message"].startswith("already erased")

    def test_not_an_address(self, database: Engine) -> None:
        result = CliRunner().invoke(cli, ["forget", "ana", "--yes"])
        assert result.exit_code == 2
        assert result.stderr == (
            "journey forget: 'ana' is not an email address: give the person's address, e.g. ana@acme.example\n"
        )


@dataclass
class Service:
    http: httpx.AsyncClient
    db: Engine
    key: auth.CreatedKey
    revoked: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key.key}"}


@pytest.fixture
async def service(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Service]:
    monkeypatch.setenv("JOURNEY_WEBHOOK_SECRET", SECRET)
    seed(engine)
    key = auth.create_key(engine, "privacy-desk")
    revoked = auth.create_key(engine, "old")
    auth.revoke_key(engine, revoked.id)
    async with serving(create_app(ServiceConfig(engine))) as url, httpx.AsyncClient(base_url=url) as http:
        yield Service(http, engine, key, revoked.key)


def suppressions(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Suppression)).one())


class TestHttp:
    """`DELETE /v1/people/{email}` over real HTTP: the credentials of events, the same erasure, in the spec."""

    async def test_erase_then_again(self, service: Service) -> None:
        answer = await service.http.delete(
            f"/v1/people/{ANA.upper()}", params={"reason": "ticket 7"}, headers=service.auth
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["found"], body["suppressed_before"], body["digest"]) == (True, False, email_digest(ANA))
        assert body["removed"] == {"people": 1, "buying_group_members": 1}
        assert body["message"].startswith("erased: removed 1 person")
        (row,) = erased_rows(service.db)
        assert (row.payload["by"], row.payload["reason"]) == (f"{service.key.id} (privacy-desk)", "ticket 7")
        again = (await service.http.delete(f"/v1/people/{ANA}", headers=service.auth)).json()
        assert (again["found"], again["suppressed_before"]) == (False, True)
        assert texts_holding(service.db, ADDRESS, "Ana Ruiz") == []

    async def test_no_credentials(self, service: Service) -> None:
        """401 and nothing erased."""
        answer = await service.http.delete(f"/v1/people/{ANA}")
        assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized")
        assert suppressions(service.db) == 0
        assert texts_holding(service.db, ADDRESS)

    async def test_revoked_key(self, service: Service) -> None:
        answer = await service.http.delete(f"/v1/people/{ANA}", headers={"authorization": f"Bearer {service.revoked}"})
        assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")
        assert suppressions(service.db) == 0

    async def test_signed(self, service: Service) -> None:
        """A signed request works too; the signature covers DELETE and this path."""
        target = "/v1/people/nobody@acme-corp.example"
        _, headers = signed(b"", method="DELETE", target=target)
        answer = await service.http.delete(target, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["found"] is False
        assert erased_rows(service.db)[0].payload["by"] == "webhook"

    async def test_not_an_address(self, service: Service) -> None:
        answer = await service.http.delete("/v1/people/ana", headers=service.auth)
        assert answer.status_code == 422
        assert answer.json() == {
            "error": "invalid_email",
            "detail": "'ana' is not an email address: give the person's address, e.g. ana@acme.example",
            "path": "email",
        }
        assert suppressions(service.db) == 0

    async def test_in_the_spec(self, service: Service) -> None:
        spec = (await service.http.get("/openapi.json")).json()
        operation = spec["paths"]["/v1/people/{email}"]["delete"]
        assert set(operation["responses"]) == {"200", "401", "403", "422"}
        assert operation["security"] == [{"HTTPBearer": []}, {"signature": []}]
