"""Recording an event and delivering it to every running journey of its account.

An event is stored before anything else happens; an unknown account or person is kept as
`unmatched` with the reason, never dropped. A duplicate event id is stored once and delivered once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.context import person_data
from engine.db import Account, ActivityEvent, JourneyAccount, Person, email_digest, suppressed_emails, utcnow
from engine.language.model import EVENT_TYPES
from engine.runtime import temporal
from engine.workflow.contracts import JourneyEvent

Status = Literal["accepted", "duplicate", "unmatched"]
log = structlog.get_logger("events")
ERASED_REASON = "the person was erased (journey forget): stored without their address"


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
    """Store a batch in one transaction; each event is judged as `record` would. Accounts, people and
    known ids are read with one query each and the rows written with one INSERT: what makes batches fast."""
    for item in incoming:
        if item.type not in known:
            raise ValueError(f"unknown event type '{item.type}': expected one of {', '.join(known)}")
    try:
        with Session(engine) as session:
            results, rows = _Batch(session, incoming).judge()
            if rows:
                session.execute(insert(ActivityEvent), rows)
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


class _Batch:
    """What the database knows about a batch's ids, accounts and people, read up front."""

    def __init__(self, session: Session, incoming: Sequence[Incoming]) -> None:
        self.session = session
        self.incoming = [
            replace(item, event_id=item.event_id or f"cli-{uuid.uuid4()}", occurred_at=item.occurred_at or utcnow())
            for item in incoming
        ]
        keys = [item.event_id for item in self.incoming]
        self.seen = set(session.exec(select(ActivityEvent.key).where(col(ActivityEvent.key).in_(keys))).all())
        ids = {item.account_id for item in self.incoming if item.account_id}
        domains = {_domain(item.domain or item.email) for item in self.incoming if not item.account_id}
        domains.discard(None)
        self.accounts: dict[str, str] = {}
        self.domains: dict[str, str | None] = {}  # account id -> its domain, for the accounts named by id
        self.by_domain: dict[str, str] = {}
        if ids:
            query = select(Account.id, Account.domain).where(col(Account.id).in_(ids))
            for account, domain in session.exec(query).all():
                self.accounts[account], self.domains[account] = account, (domain or "").lower() or None
        if domains:
            query = select(Account.id, Account.domain).where(col(Account.domain).in_(domains))
            self.by_domain = {domain or "": account for account, domain in session.exec(query).all()}
        emails = {item.email for item in self.incoming if item.email}
        self.people: dict[str, Person] = {}
        if emails:
            self.people = {p.email or "": p for p in session.exec(select(Person).where(col(Person.email).in_(emails)))}
        self.erased = suppressed_emails(session, emails)

    def judge(self) -> tuple[list[Recorded], list[dict[str, Any]]]:
        results, rows = [], []
        for item in self.incoming:
            recorded, row = self._one(item)
            results.append(recorded)
            if row is not None:
                rows.append(row)
                self.seen.add(recorded.event.event_id)
        return results, rows

    def _one(self, item: Incoming) -> tuple[Recorded, dict[str, Any] | None]:
        assert item.event_id is not None and item.occurred_at is not None
        email, payload = item.email, item.payload
        duplicate = item.event_id in self.seen
        if item.account_id:
            account_id = self.accounts.get(item.account_id)
        else:
            account_id = self.by_domain.get(_domain(item.domain or email) or "")
        person = self.people.get(email) if email else None
        reason = None
        if person is not None and person.account_id != account_id:
            if account_id is not None and item.type in CREATING_EVENTS and not duplicate:
                reason = f"person '{email}' belongs to account '{person.account_id}', not '{account_id}'"
            person = None
        elif account_id is not None and email and person is None and not duplicate and item.type in CREATING_EVENTS:
            # Only an email on the account's own domain becomes one of its people: an event naming the account
            # by id must not add a stranger whom every `to: all` email would then reach.
            if not item.account_id or _domain(email) == self.domains.get(account_id):
                person = _create_person(self.session, account_id, email, payload, email in self.erased)
                self.people[email] = person
            else:
                reason = (
                    f"'{email}' is not on account '{account_id}''s domain "
                    f"({self.domains.get(account_id) or 'none set'}): only an email on it creates a person"
                )
        if person is None and email in self.erased and email not in self.people:
            # An erased person's old email opened or clicked, say: the account keeps the event, without them.
            email, payload, reason = None, {k: v for k, v in payload.items() if k != "fields"}, ERASED_REASON
        reason = reason or _unmatched(item, account_id, person)
        shown_account = account_id or item.account_id
        event = JourneyEvent(
            type=item.type,
            event_id=item.event_id,
            account_id=shown_account or "",
            email=email,
            person=person_data(person) if person is not None else None,
            payload=payload,
            occurred_at=item.occurred_at,
        )
        if duplicate:
            return Recorded("duplicate", event, f"event id '{item.event_id}' was already recorded"), None
        stored_payload = dict(payload)
        if account_id is None:
            stored_payload.update({"account_id": item.account_id} if item.account_id else {"domain": item.domain})
        now = utcnow()
        row = {
            "key": item.event_id,
            "type": item.type,
            "account_id": account_id,
            "person_id": person.id if person is not None else None,
            "email": email,
            "status": "unmatched" if reason else "matched",
            "reason": reason,
            "payload": stored_payload,
            "occurred_at": item.occurred_at,
            "recorded_at": now,
        }
        return Recorded("unmatched" if reason else "accepted", event, reason), row


def _domain(email_or_domain: str | None) -> str | None:
    return email_or_domain.rpartition("@")[2].lower() if email_or_domain else None


def _unmatched(item: Incoming, account_id: str | None, person: Person | None) -> str | None:
    if account_id is None:
        if item.account_id:
            return f"unknown account '{item.account_id}'"
        if item.domain:
            return f"no account has the domain '{item.domain}'"
        return f"no account has the domain of '{item.email}'"
    if item.email and person is None:
        return f"unknown person '{item.email}' in account '{account_id}'"
    return None


CREATING_EVENTS = frozenset({"person_added", "form_fill"})
_PERSON_FIELDS = ("first_name", "last_name", "job_title", "department", "seniority", "phone")


def _create_person(
    session: Session, account_id: str, email: str, payload: dict[str, Any], erased: bool = False
) -> Person:
    """A new person from the event's data (form fields or payload), committed with the event.

    An erased address comes back as an unsubscribed person: the form fill is theirs to make and still moves
    the account's journeys on, but the suppression stands, so no journey emails them (README, Erasure)."""
    fields = {**payload, **(payload.get("fields") or {})}
    person = Person(account_id=account_id, email=email, unsubscribed=erased)
    for name in _PERSON_FIELDS:
        if fields.get(name):
            setattr(person, name, str(fields[name]))
    session.add(person)
    session.flush()
    if erased:
        log.warning("person.recreated_unsubscribed", digest=email_digest(email), account=account_id, person=person.id)
    return person


async def deliver(client: Client, engine: Engine, event: JourneyEvent) -> list[str]:
    """Signal the event to every running journey of its account; the workflow ids it reached."""
    journeys = journeys_of(engine, [event.account_id]).get(event.account_id, [])
    reached = await signal_journeys(client, journeys, event)
    mark_delivered(engine, [event.event_id])
    return reached


def journeys_of(engine: Engine, account_ids: Collection[str]) -> dict[str, list[str]]:
    """The journeys each account was ever started in (db.JourneyAccount): the only ones it can be running in."""
    found: dict[str, list[str]] = {account_id: [] for account_id in account_ids}
    with Session(engine) as session:
        rows = session.exec(
            select(JourneyAccount.account_id, JourneyAccount.journey_id).where(
                col(JourneyAccount.account_id).in_(list(account_ids))
            )
        ).all()
    for account_id, journey_id in sorted(rows):
        found[account_id].append(journey_id)
    return found


async def signal_journeys(client: Client, journeys: Sequence[str], event: JourneyEvent) -> list[str]:
    """Signal `event` to the account's workflow in each journey at once; skips journeys it is not running
    in. Anything else (Temporal unreachable above all) propagates, so the caller tries again later."""

    async def one(journey_id: str) -> str | None:
        workflow_id = temporal.workflow_id(journey_id, event.account_id)
        try:
            await client.get_workflow_handle(workflow_id).signal("event", event)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None  # this account is not (or no longer) in that journey
            raise
        return workflow_id

    return [workflow_id for workflow_id in await asyncio.gather(*map(one, journeys)) if workflow_id is not None]


def mark_delivered(engine: Engine, keys: Sequence[str]) -> None:
    if not keys:
        return
    with Session(engine) as session:
        statement = update(ActivityEvent).where(col(ActivityEvent.key).in_(keys)).values(delivered_at=utcnow())
        session.execute(statement)
        session.commit()
