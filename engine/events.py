"""Recording an event and delivering it to every running journey of its account.

An event is stored before anything else happens; an unknown account or person is kept as
`unmatched` with the reason, never dropped. A duplicate event id is stored once and delivered once.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
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


@dataclass(frozen=True)
class Incoming:
    """An event as a sender describes it: the account by id or domain (else the email's domain)."""

    type: str
    account_id: str | None
    email: str | None
    payload: dict[str, Any]
    event_id: str | None = None
    occurred_at: datetime | None = None
    domain: str | None = None


def record(
    engine: Engine,
    type_: str,
    account_id: str | None,
    email: str | None,
    payload: dict[str, Any],
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    domain: str | None = None,
    known: Collection[str] = EVENT_TYPES,
) -> Recorded:
    """Store the event (once per event id) and say whether it matched a known account and person.

    The account is the one named, or the one with the given domain, or else the one whose domain is the
    email's. A `person_added` or `form_fill` event carrying a new email creates that person in the account
    (buying groups then pick them up); other events from unknown people are kept as unmatched.
    """
    item = Incoming(type_, account_id, email, payload, event_id, occurred_at, domain)
    return record_many(engine, [item], known)[0]


def record_many(engine: Engine, incoming: Sequence[Incoming], known: Collection[str] = EVENT_TYPES) -> list[Recorded]:
    """Store a batch in one transaction (what makes batches fast); each event is judged as `record` would."""
    for item in incoming:
        if item.type not in known:
            raise ValueError(f"unknown event type '{item.type}': expected one of {', '.join(known)}")
    try:
        with Session(engine) as session:
            results = [_record_in(session, item) for item in incoming]
            session.commit()
            return results
    except IntegrityError:  # an id recorded by a concurrent sender a moment ago: judge one by one
        if len(incoming) > 1:
            return [record_many(engine, [item], known)[0] for item in incoming]
        item = incoming[0]
        event = JourneyEvent(
            type=item.type,
            event_id=item.event_id or "",
            account_id=item.account_id or "",
            email=item.email,
            payload=item.payload,
            occurred_at=item.occurred_at or utcnow(),
        )
        return [Recorded("duplicate", event, f"event id '{item.event_id}' was already recorded")]


def _record_in(session: Session, item: Incoming) -> Recorded:
    type_, email, payload = item.type, item.email, item.payload
    event_id = item.event_id or f"cli-{uuid.uuid4()}"
    occurred_at = item.occurred_at or utcnow()
    existing = session.exec(select(ActivityEvent.id).where(ActivityEvent.key == event_id)).first()
    by_id = item.account_id
    account = session.get(Account, by_id) if by_id else _by_domain(session, item.domain or email)
    account_id = account.id if account is not None else item.account_id
    person = _person(session, account.id, email) if account is not None else None
    reason = None
    if account is not None and email and person is None and existing is None and type_ in CREATING_EVENTS:
        elsewhere = session.exec(select(Person.account_id).where(Person.email == email)).first()
        if elsewhere is not None:
            reason = f"person '{email}' belongs to account '{elsewhere}', not '{account_id}'"
        else:
            person = _create_person(session, account.id, email, payload)
    reason = reason or _unmatched(item, account, person, account_id)
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
    stored_payload = dict(payload)
    if account is None:
        stored_payload.update({"account_id": account_id} if account_id else {"domain": item.domain})
    session.add(
        ActivityEvent(
            key=event_id,
            type=type_,
            account_id=account_id if account is not None else None,
            person_id=person.id if person is not None else None,
            email=email,
            status="unmatched" if reason else "matched",
            reason=reason,
            payload=stored_payload,
            occurred_at=occurred_at,
        )
    )
    session.flush()  # later events of the same batch see this id
    return Recorded("unmatched" if reason else "accepted", event, reason)


def _unmatched(item: Incoming, account: Account | None, person: Person | None, account_id: str | None) -> str | None:
    if account is None:
        if account_id:
            return f"unknown account '{account_id}'"
        if item.domain:
            return f"no account has the domain '{item.domain}'"
        return f"no account has the domain of '{item.email}'"
    if item.email and person is None:
        return f"unknown person '{item.email}' in account '{account_id}'"
    return None


CREATING_EVENTS = frozenset({"person_added", "form_fill"})
_PERSON_FIELDS = ("first_name", "last_name", "job_title", "department", "seniority", "phone")


def _by_domain(session: Session, email_or_domain: str | None) -> Account | None:
    domain = email_or_domain.rpartition("@")[2].lower() if email_or_domain else None
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
    reached = await signal_journeys(client, journey_ids(engine), event)
    mark_delivered(engine, [event.event_id])
    return reached


def journey_ids(engine: Engine) -> list[str]:
    """Every journey ever published: an account may be running in any of them."""
    with Session(engine) as session:
        return sorted(set(session.exec(select(JourneyVersion.journey_id)).all()))


async def signal_journeys(client: Client, journeys: Sequence[str], event: JourneyEvent) -> list[str]:
    """Signal `event` to the account's workflow in each journey; skips journeys it is not running in.
    Anything else (Temporal unreachable above all) propagates, so the caller tries again later."""
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
    return reached


def mark_delivered(engine: Engine, keys: Sequence[str]) -> None:
    if not keys:
        return
    with Session(engine) as session:
        statement = update(ActivityEvent).where(col(ActivityEvent.key).in_(keys)).values(delivered_at=utcnow())
        session.execute(statement)
        session.commit()
