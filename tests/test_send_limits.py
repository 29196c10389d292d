"""limits.yaml's caps in the send_email activity, against real SQLite and PostgreSQL and a real SMTP server: many
journeys sending to one person at once never pass the cap, a suppressed send is recorded with its cap, a retried
attempt neither counts its own reservation nor sends twice, and transactional sends pass the caps."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import SmtpInbox, add_account, add_person
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.delivery import SmtpDelivery
from activities.email import EmailActivities
from activities.send_limits import reserve
from engine.db import BuyingGroup, BuyingGroupMember, OutboxMessage, SolutionInterestRecord
from engine.language.limits import LimitsFile
from engine.language.model import Recipients
from engine.workflow.contracts import SendEmailRequest, SendEmailResult

ONE_PERSON = Recipients.model_validate({"where": "person.email == 'ana@acme-corp.example'"})
PERSON_CAP = LimitsFile.model_validate({"person": [{"max": 3, "per": "7d"}]})


def request(journey: str, limits: LimitsFile | None, to: Recipients = ONE_PERSON, **extra: Any) -> SendEmailRequest:
    return SendEmailRequest(
        key_prefix=f"journey/{journey}/acme-corp/run/hello/1",
        journey_id=journey,
        journey_name=journey.title(),
        version="v1",
        account_id="acme-corp",
        node_id="hello",
        to=to,
        subject="Hello {{ person.first_name }}",
        html_template="<p>Hi {{ person.first_name }}</p>",
        limits=limits,
        **extra,
    )


def send(engine: Engine, url: str, payload: SendEmailRequest) -> Any:
    activities = EmailActivities(engine, SmtpDelivery(url), sender="Journeys <journeys@acme.example>")
    return ActivityEnvironment().run(activities.send_email, payload)


def outbox(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


@pytest.fixture
def ana(engine: Engine) -> int:
    add_account(engine)
    return add_person(engine, "acme-corp", "ana@acme-corp.example", first_name="Ana")


class TestConcurrentSends:
    """Fifty journeys emailing the same person at the same moment send exactly as many as the cap allows."""

    async def test_fifty_journeys_never_pass_the_person_cap(
        self, engine: Engine, ana: int, smtp: tuple[str, SmtpInbox]
    ) -> None:
        url, inbox = smtp
        results = await asyncio.gather(*(send(engine, url, request(f"j{n}", PERSON_CAP)) for n in range(50)))
        assert sum(result.sent for result in results) == 3
        assert sum(result.suppressed for result in results) == 47
        assert len(inbox.messages) == 3
        rows = outbox(engine)
        assert sorted(row.status for row in rows) == ["sent"] * 3 + ["suppressed"] * 47
        assert {row.suppressed_by for row in rows if row.status == "suppressed"} == {"limit:person:3/7d"}

    async def test_account_cap_counts_every_person_of_the_account(
        self, engine: Engine, ana: int, smtp: tuple[str, SmtpInbox]
    ) -> None:
        url, inbox = smtp
        for name in ("bo", "cy", "di"):
            add_person(engine, "acme-corp", f"{name}@acme-corp.example", first_name=name.title())
        limits = LimitsFile.model_validate({"account": [{"max": 5, "per": "1d"}]})
        everyone = Recipients.model_validate({"all": True})
        results = await asyncio.gather(*(send(engine, url, request(f"j{n}", limits, everyone)) for n in range(10)))
        assert (sum(r.sent for r in results), sum(r.suppressed for r in results)) == (5, 35)
        assert len(inbox.messages) == 5
        reasons = {row.suppressed_by for row in outbox(engine) if row.status == "suppressed"}
        assert reasons == {"limit:account:5/1d"}


class TestBuyingGroupCap:
    """A buying group's cap counts the messages to all its members, whichever person they went to."""

    async def test_members_share_the_groups_cap(self, engine: Engine, ana: int, smtp: tuple[str, SmtpInbox]) -> None:
        url, inbox = smtp
        bo = add_person(engine, "acme-corp", "bo@acme-corp.example", first_name="Bo")
        with Session(engine) as session:
            session.add(SolutionInterestRecord(id="seeds", name="Seeds", role_template="trio"))
            session.commit()
            group = BuyingGroup(account_id="acme-corp", solution_interest_id="seeds")
            session.add(group)
            session.commit()
            assert group.id is not None
            session.add_all(
                [
                    BuyingGroupMember(buying_group_id=group.id, person_id=ana, role="champion"),
                    BuyingGroupMember(buying_group_id=group.id, person_id=bo, role="user"),
                ]
            )
            session.commit()
        limits = LimitsFile.model_validate({"buying_group": [{"max": 3, "per": "7d"}]})
        to_bo = Recipients.model_validate({"where": "person.email == 'bo@acme-corp.example'"})
        first = await send(engine, url, request("j1", limits))
        second = await send(engine, url, request("j2", limits, to_bo))
        third = await send(engine, url, request("j3", limits))
        fourth = await send(engine, url, request("j4", limits, to_bo))
        assert [r.sent for r in (first, second, third, fourth)] == [1, 1, 1, 0]
        assert fourth.suppressed == 1
        assert outbox(engine)[-1].suppressed_by == "limit:buying_group:3/7d"
        assert len(inbox.messages) == 3


class TestRetries:
    """A retried attempt sends its reserved message once and is never held back by its own reservation."""

    async def test_retry_after_reserving_sends_despite_a_full_cap(
        self, engine: Engine, ana: int, smtp: tuple[str, SmtpInbox]
    ) -> None:
        url, inbox = smtp
        limits = LimitsFile.model_validate({"person": [{"max": 1, "per": "7d"}]})
        payload = request("crashed", limits)

        class Flaky(SmtpDelivery):
            """Dies once after the reservation was committed, as a worker killed mid-delivery would."""

            failed = False

            def deliver(self, message: EmailMessage, key: str) -> None:
                if not Flaky.failed:
                    Flaky.failed = True
                    raise ConnectionError("the worker went away")
                super().deliver(message, key)

        activities = EmailActivities(engine, Flaky(url), sender="Journeys <journeys@acme.example>")
        with pytest.raises(ApplicationError, match="will retry"):
            await ActivityEnvironment().run(activities.send_email, payload)
        assert [(row.status, row.suppressed_by) for row in outbox(engine)] == [("failed", None)]
        retried: SendEmailResult = await ActivityEnvironment().run(activities.send_email, payload)
        assert (retried.sent, retried.suppressed) == (1, 0)
        again: SendEmailResult = await ActivityEnvironment().run(activities.send_email, payload)
        assert (again.sent, again.already_sent) == (0, 1)
        other = await send(engine, url, request("other", limits))
        assert (other.sent, other.suppressed) == (0, 1)
        assert len(inbox.messages) == 1

    async def test_row_reserved_before_a_crash_is_sent_not_recounted(
        self, engine: Engine, ana: int, smtp: tuple[str, SmtpInbox]
    ) -> None:
        """The worker died right after the reservation committed: the row is 'pending' and fills the cap."""
        url, inbox = smtp
        limits = LimitsFile.model_validate({"person": [{"max": 1, "per": "7d"}]})
        payload = request("crashed", limits)
        with Session(engine) as session:
            reserved = OutboxMessage(
                idempotency_key=f"{payload.key_prefix}/{ana}",
                journey_id="crashed",
                account_id="acme-corp",
                person_id=ana,
                node_id="hello",
                to_address="ana@acme-corp.example",
                subject="s",
                html="h",
                text="t",
            )
            assert reserve(session, reserved, limits) is None  # may go: no cap reached
            assert reserved.status == "pending"
        result = await send(engine, url, payload)
        assert (result.sent, result.suppressed) == (1, 0)
        assert [row.status for row in outbox(engine)] == ["sent"]
        assert len(inbox.messages) == 1

    async def test_suppressed_stays_suppressed_on_retry(
        self, engine: Engine, ana: int, smtp: tuple[str, SmtpInbox]
    ) -> None:
        url, inbox = smtp
        limits = LimitsFile.model_validate({"person": [{"max": 1, "per": "7d"}]})
        await send(engine, url, request("first", limits))
        payload = request("second", limits)
        assert (await send(engine, url, payload)).suppressed == 1
        with Session(engine) as session:  # room again (the first message left the window): the decision stands
            session.delete(outbox(engine)[0])
            session.commit()
        assert (await send(engine, url, payload)).suppressed == 1
        assert len(inbox.messages) == 1


class TestTransactional:
    """A transactional send passes a full cap and does not count against it."""

    async def test_transactional_is_neither_capped_nor_counted(
        self, engine: Engine, ana: int, smtp: tuple[str, SmtpInbox]
    ) -> None:
        url, inbox = smtp
        limits = LimitsFile.model_validate({"person": [{"max": 1, "per": "7d"}]})
        receipt = await send(engine, url, request("receipt", None, transactional=True))
        marketing = await send(engine, url, request("news", limits))
        second_receipt = await send(engine, url, request("receipt-2", None, transactional=True))
        more = await send(engine, url, request("more-news", limits))
        assert [r.sent for r in (receipt, marketing, second_receipt, more)] == [1, 1, 1, 0]
        assert [row.transactional for row in outbox(engine)] == [True, None, True, None]
        assert len(inbox.messages) == 3


def test_no_limits_serialises_as_before() -> None:
    """A request without limits is scheduled with the very payload it had before limits existed."""
    data = request("j", None).model_dump(mode="json")
    assert "limits" not in data and "transactional" not in data
    assert request("j", PERSON_CAP).model_dump(mode="json")["limits"]["person"] == [{"max": 3, "per": "1w"}]
