"""Recording an event and delivering it to every running journey of its account.

An event is stored before anything else happens; an unknown account or person is kept as
`unmatched` with the reason, never dropped. A duplicate event id is stored once and delivered once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.context import person_data
from engine import runtime
from engine.contracts import JourneyEvent
from engine.db import Account, ActivityEvent, JourneyVersion, Person, utcnow
from engine.model import EVENT_TYPES

Status = Literal["accepted", "duplicate", "unmatched"]


@dataclass
class Recorded:
    status: Status
    event: JourneyEvent
    reason: str | None = None
    delivered_to: list[str] | None = None


def record(
    engine: Engine,
    type_: str,
    account_id: str | None,
    email: str | None,
    payload: dict[str, Any],
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Recorded:
    """Store the event (once per event id) and say whether it matched a known account and person.

    The account is the one named, or else the one whose domain is the email's. A `person_added` or
    `form_fill` event carrying a new email creates that person in the account (buying groups then
    pick them up); other events from unknown people are kept as unmatched.
    """
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type '{type_}': expected one of {', '.join(EVENT_TYPES)}")
    event_id = event_id or f"cli-{uuid.uuid4()}"
    occurred_at = occurred_at or utcnow()
    with Session(engine) as session:
        existing = session.exec(select(ActivityEvent).where(ActivityEvent.key == event_id)).first()
        account = session.get(Account, account_id) if account_id else _by_domain(session, email)
        account_id = account.id if account is not None else account_id
        person = _person(session, account.id, email) if account is not None else None
        if account is not None and email and person is None and existing is None and type_ in CREATING_EVENTS:
            person = _create_person(session, account.id, email, payload)
        reason = None
        if account is None:
            reason = f"unknown account '{account_id}'" if account_id else f"no account has the domain of '{email}'"
        elif email and person is None:
            reason = f"unknown person '{email}' in account '{account_id}'"
        event = JourneyEvent(
            type=type_,
            event_id=event_id,
            account_id=account_id or "",
            email=email,
            person=person_data(person) if person is not None else None,
            payload=payload,
            occurred_at=occurred_at,
        )
        if existing is not None:
            return Recorded("duplicate", event, f"event id '{event_id}' was already recorded")
        session.add(
            ActivityEvent(
                key=event_id,
                type=type_,
                account_id=account_id if account is not None else None,
                person_id=person.id if person is not None else None,
                email=email,
                status="unmatched" if reason else "matched",
                reason=reason,
                payload={**payload, "account_id": account_id} if account is None else payload,
                occurred_at=occurred_at,
            )
        )
        try:
            session.commit()
        except IntegrityError:  # the same id, recorded by a concurrent sender a moment ago
            session.rollback()
            return Recorded("duplicate", event, f"event id '{event_id}' was already recorded")
    return Recorded("unmatched" if reason else "accepted", event, reason)


CREATING_EVENTS = frozenset({"person_added", "form_fill"})
_PERSON_FIELDS = ("first_name", "last_name", "job_title", "department", "seniority", "phone")


def _by_domain(session: Session, email: str | None) -> Account | None:
    domain = email.rpartition("@")[2].lower() if email and "@" in email else None
    return session.exec(select(Account).where(Account.domain == domain)).first() if domain else None


def _create_person(session: Session, account_id: str, email: str, payload: dict[str, Any]) -> Person:
    """A new person from the event's data (form fields or payload), committed with the event."""
    fields = {**payload, **(payload.get("fields") or {})}
    person = Person(account_id=account_id, email=email)
    for name in _PERSON_FIELDS:
        if fields.get(name):
            setattr(person, name, str(fields[name]))
    session.add(person)
    session.flush()
    return person


def _person(session: Session, account_id: str, email: str | None) -> Person | None:
    if not email:
        return None
    return session.exec(select(Person).where(Person.account_id == account_id, Person.email == email)).first()


async def deliver(client: Client, engine: Engine, event: JourneyEvent) -> list[str]:
    """Signal the event to every running journey of its account; the workflow ids it reached."""
    with Session(engine) as session:
        journeys = sorted(set(session.exec(select(JourneyVersion.journey_id)).all()))
    reached = []
    for journey_id in journeys:
        workflow_id = runtime.workflow_id(journey_id, event.account_id)
        try:
            await client.get_workflow_handle(workflow_id).signal("event", event)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                continue  # this account is not (or no longer) in that journey
            raise
        reached.append(workflow_id)
    with Session(engine) as session:
        row = session.exec(select(ActivityEvent).where(ActivityEvent.key == event.event_id)).first()
        if row is not None:
            row.delivered_at = utcnow()
            session.add(row)
            session.commit()
    return reached
