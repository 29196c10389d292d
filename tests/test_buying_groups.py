"""Buying-group activities against a real SQLite file, a real SMTP server and a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import SmtpInbox, add_account
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.buying_groups import BuyingGroupActivities
from activities.delivery import SmtpDelivery
from engine.db import Account, ActivityEvent, BuyingGroup, BuyingGroupMember, Handoff, OutboxMessage, Person
from engine.language.model import Role, RoleTemplate, SolutionInterest
from engine.runtime import events
from engine.workflow.contracts import BuyingGroupRequest, BuyingGroupSnapshot, HandoffResult

TEMPLATE = RoleTemplate(
    id="three-roles",
    roles=[
        Role(role="decision_maker", weight="vital", when="'chief' in person.job_title | lower"),
        Role(role="economic_buyer", weight="important", when="person.department == 'finance'"),
        Role(role="technical", weight="normal", when="person.department == 'it'"),
    ],
)


def request(key: str = "wf/run/assign/1", interest: str = "platform", journey: str = "journey-a") -> BuyingGroupRequest:
    return BuyingGroupRequest(
        key=key,
        journey_id=journey,
        account_id="acme-corp",
        solution_interest=SolutionInterest(id=interest, name=interest.title(), role_template=TEMPLATE.id),
        role_template=TEMPLATE,
    )


def person(db: Engine, first: str, title: str, department: str) -> int:
    with Session(db) as session:
        row = Person(
            account_id="acme-corp",
            email=f"{first.lower()}@acme-corp.example",
            first_name=first,
            last_name="Doe",
            job_title=title,
            department=department,
        )
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def roles(snapshot: BuyingGroupSnapshot) -> list[tuple[str, int, str]]:
    return [(member.role, member.person_id, member.assigned_by) for member in snapshot.members]


async def assign(activities: BuyingGroupActivities, req: BuyingGroupRequest) -> BuyingGroupSnapshot:
    result: BuyingGroupSnapshot = await ActivityEnvironment().run(activities.assign, req)
    return result


async def handoff(activities: BuyingGroupActivities, req: BuyingGroupRequest) -> HandoffResult:
    result: HandoffResult = await ActivityEnvironment().run(activities.handoff, req)
    return result


@pytest.fixture
def account(db: Engine) -> Engine:
    add_account(db, owner_email="owner@seller.example")
    return db


class _Crm(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append((dict(self.headers.items()), body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[dict[str, str], Any]]]:
    """A real HTTP server standing in for the CRM webhook, configured through the environment."""
    calls: list[tuple[dict[str, str], Any]] = []
    handler = type("Handler", (_Crm,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("JOURNEY_CRM_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/handoffs")
    monkeypatch.setenv("JOURNEY_CRM_WEBHOOK_SECRET", "s3cret")
    yield calls
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def activities(account: Engine, smtp: tuple[str, SmtpInbox]) -> AsyncIterator[BuyingGroupActivities]:
    async with httpx.AsyncClient() as http:
        yield BuyingGroupActivities(account, SmtpDelivery(smtp[0]), http)


class TestAssign:
    """People get the first matching role of the template, and the group's scores are stored."""

    async def test_first_matching_role_in_template_order(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """A CTO in IT matches two rules and gets the earlier one; nobody matching stays out."""
        cto = person(db, "Ann", "Chief Technology Officer", "it")
        engineer = person(db, "Bob", "Engineer", "it")
        person(db, "Cid", "Account Executive", "sales")
        snapshot = await assign(activities, request())
        assert roles(snapshot) == [("decision_maker", cto, "rule"), ("technical", engineer, "rule")]
        assert snapshot.missing_roles == ["economic_buyer"]
        assert snapshot.stage == "awareness"
        with Session(db) as session:
            member = session.exec(select(BuyingGroupMember).where(BuyingGroupMember.person_id == cto)).one()
        assert member.rule == TEMPLATE.roles[0].when

    async def test_manual_role_is_kept(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """A person placed by hand keeps that role even when a rule would choose another."""
        cto = person(db, "Ann", "Chief Technology Officer", "it")
        group_id = (await assign(activities, request())).id
        with Session(db) as session:
            member = session.exec(select(BuyingGroupMember).where(BuyingGroupMember.person_id == cto)).one()
            member.role, member.assigned_by, member.rule = "economic_buyer", "manual", None
            session.add(member)
            session.commit()
        snapshot = await assign(activities, request())
        assert (snapshot.id, roles(snapshot)) == (group_id, [("economic_buyer", cto, "manual")])

    async def test_person_in_several_groups(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """One person holds a role in the group of each solution interest."""
        cto = person(db, "Ann", "Chief Technology Officer", "it")
        first = await assign(activities, request(interest="platform"))
        second = await assign(activities, request(interest="analytics"))
        assert first.id != second.id
        assert roles(first) == roles(second) == [("decision_maker", cto, "rule")]

    async def test_one_of_three_roles_is_33_percent(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """One of three required roles filled gives 33.3% completeness, returned and stored."""
        person(db, "Ann", "Chief Executive Officer", "board")
        snapshot = await assign(activities, request())
        assert round(snapshot.completeness, 1) == 33.3
        assert snapshot.missing_roles == ["economic_buyer", "technical"]
        with Session(db) as session:
            group = session.get(BuyingGroup, snapshot.id)
            assert group is not None
            assert round(group.completeness, 1) == 33.3

    async def test_engagement_from_event_log(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """Recent weighted events raise the member's stored score and the group's; old ones do not count."""
        cto = person(db, "Ann", "Chief Technology Officer", "it")
        now = datetime.now(UTC)
        with Session(db) as session:
            for days, key in ((1, "recent"), (45, "old")):
                occurred = now - timedelta(days=days)
                session.add(
                    ActivityEvent(
                        key=key, type="form_fill", account_id="acme-corp", person_id=cto, occurred_at=occurred
                    )
                )
            session.commit()
        snapshot = await assign(activities, request())
        expected = 100 * (40 / 10_800) ** 0.5
        assert snapshot.members[0].engagement_score == pytest.approx(expected)
        assert snapshot.engagement == pytest.approx(100 * (expected / 100) ** 0.5)
        with Session(db) as session:
            stored = session.get(Person, cto)
            assert stored is not None
            assert stored.engagement_score == pytest.approx(expected)

    async def test_running_again_changes_nothing(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """A second run returns the same snapshot and leaves every row as it was."""
        person(db, "Ann", "Chief Technology Officer", "it")
        person(db, "Fay", "Controller", "finance")
        first = await assign(activities, request())
        with Session(db) as session:
            before = session.get(BuyingGroup, first.id)
            members_before = len(session.exec(select(BuyingGroupMember)).all())
        second = await assign(activities, request())
        with Session(db) as session:
            after = session.get(BuyingGroup, first.id)
            members_after = len(session.exec(select(BuyingGroupMember)).all())
        assert second == first
        assert before is not None and after is not None
        assert (after.updated_at, after.completeness, members_after) == (
            before.updated_at,
            before.completeness,
            members_before,
        )

    async def test_load_picks_up_a_person_who_arrived(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """A person added after the first assignment gets a role on the next load, and completeness rises."""
        person(db, "Ann", "Chief Technology Officer", "it")
        first = await assign(activities, request())
        fay = person(db, "Fay", "Controller", "finance")
        loaded: BuyingGroupSnapshot = await ActivityEnvironment().run(activities.load, request())
        assert ("economic_buyer", fay, "rule") in roles(loaded)
        assert (round(first.completeness, 1), round(loaded.completeness, 1)) == (33.3, 66.7)


class TestHandoff:
    """The handoff happens once per group: one record, one stage move, one email, one webhook call."""

    async def test_hands_off_once(
        self,
        activities: BuyingGroupActivities,
        db: Engine,
        smtp: tuple[str, SmtpInbox],
        crm: list[tuple[dict[str, str], Any]],
    ) -> None:
        """The first handoff does everything; running it again (a retry) repeats none of it."""
        person(db, "Ann", "Chief Technology Officer", "it")
        result = await handoff(activities, request(key="wf/run/handoff/1"))
        assert (result.created, result.owner_emailed, result.webhook_status) == (True, True, 201)
        again = await handoff(activities, request(key="wf/run/handoff/1"))
        assert again == result
        with Session(db) as session:
            assert len(session.exec(select(Handoff)).all()) == 1
            group = session.get(BuyingGroup, result.buying_group_id)
            assert group is not None and group.stage == "sales_qualified"
            # Ann placed in her role once (member_added, for journeys waiting for a new member), handed off once.
            assert [e.type for e in session.exec(select(ActivityEvent)).all()] == [
                "member_added",
                "sales_handoff",
                "handoff_webhook",
            ]
        inbox = smtp[1]
        assert [recipients for recipients, _ in inbox.messages] == [["owner@seller.example"]]
        message = email.message_from_bytes(inbox.messages[0][1], policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        assert body is not None
        text = body.get_content().replace("\r\n", "\n")
        assert "decision_maker: Ann Doe, Chief Technology Officer" in text
        assert "Missing roles\n\neconomic_buyer, technical" in text
        assert "Completeness: 33%" in text
        assert len(crm) == 1
        headers, payload = crm[0]
        group_key = f"handoff/{result.buying_group_id}"
        assert (headers["Idempotency-Key"], headers["Authorization"]) == (group_key, "Bearer s3cret")
        assert (payload["missing_roles"], payload["completeness"]) == (["economic_buyer", "technical"], 33)

    async def test_sender_event_ids_cannot_pre_empt_the_handoff(
        self,
        activities: BuyingGroupActivities,
        db: Engine,
        smtp: tuple[str, SmtpInbox],
        crm: list[tuple[dict[str, str], Any]],
    ) -> None:
        """Events posted with the ids the handoff used to record itself under ('handoff/<group>', its webhook
        receipt) neither block the handoff nor stop the CRM call: the engine's keys are out of senders' reach
        (issue 13)."""
        person(db, "Ann", "Chief Technology Officer", "it")
        group = (await assign(activities, request())).id
        for event_id in (f"handoff/{group}", f"handoff/{group}/webhook", f"handoff/{group}/owner"):
            recorded = events.record(db, "web_visit", "acme-corp", None, {"status": 200}, event_id)
            assert recorded.status == "accepted"
        result = await handoff(activities, request(key="wf/run/handoff/1"))
        assert (result.created, result.owner_emailed, result.webhook_status) == (True, True, 201)
        assert (len(crm), len(smtp[1].messages)) == (1, 1)

    async def test_two_journeys_race(
        self,
        activities: BuyingGroupActivities,
        db: Engine,
        smtp: tuple[str, SmtpInbox],
        crm: list[tuple[dict[str, str], Any]],
    ) -> None:
        """Two journeys handing off the same group together make one record, one email and one webhook call."""
        person(db, "Ann", "Chief Technology Officer", "it")
        results = await asyncio.gather(
            handoff(activities, request(key="wf-a/run/handoff/1", journey="journey-a")),
            handoff(activities, request(key="wf-b/run/handoff/1", journey="journey-b")),
        )
        assert sorted(result.created for result in results) == [False, True]
        assert results[0].handoff_id == results[1].handoff_id
        with Session(db) as session:
            assert len(session.exec(select(Handoff)).all()) == 1
            assert len(session.exec(select(OutboxMessage)).all()) == 1
        assert (len(smtp[1].messages), len(crm)) == (1, 1)

    async def test_failure_stage_refuses(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """A disqualified group cannot be handed off: a non-retryable error names the stages, nothing is written."""
        snapshot = await assign(activities, request())
        with Session(db) as session:
            group = session.get(BuyingGroup, snapshot.id)
            assert group is not None
            group.stage = "disqualified"
            session.add(group)
            session.commit()
        with pytest.raises(ApplicationError) as raised:
            await handoff(activities, request())
        assert raised.value.non_retryable
        assert "cannot move from 'disqualified' to 'sales_qualified'" in str(raised.value)
        with Session(db) as session:
            assert session.exec(select(Handoff)).all() == []

    async def test_no_owner_no_email(self, activities: BuyingGroupActivities, db: Engine) -> None:
        """Without an account owner the handoff still happens and reports that nobody was emailed."""
        with Session(db) as session:
            account = session.get(Account, "acme-corp")
            assert account is not None
            account.owner_email = None
            session.add(account)
            session.commit()
        result = await handoff(activities, request())
        assert (result.created, result.owner_emailed, result.webhook_status) == (True, False, None)
