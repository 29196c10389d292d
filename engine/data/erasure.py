"""Erasure (GDPR Art. 17): `forget` removes a person's personal data from the journey database and keeps an
anonymous suppression record (db.Suppression) so that the address is never emailed again.

Rows that carry exactly-once guarantees are scrubbed, not deleted: an outbox message keeps its idempotency key
and status, so a retried send finds the key used and sends nothing; an event keeps its key, so a sender's
retry stays a duplicate. What Temporal's histories hold is out of this database's reach (README, Erasure).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
from sqlalchemy import Text, cast, delete, func, or_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from engine.context import full_name
from engine.db import (
    Account,
    ActivityEvent,
    BuyingGroupMember,
    BuyingGroupRemoval,
    Handoff,
    Opportunity,
    OutboxMessage,
    PayloadBlob,
    Person,
    Suppression,
    email_digest,
    engine_key,
    normalise_email,
    utcnow,
)

log = structlog.get_logger("erasure")

ERASED = "[erased]"
MAX_ADDRESS = 320  # 64 characters of local part, '@', 255 of domain
EVENT_TYPE = "person_erased"
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
# Keys that describe a person wherever a JSON value holds one (handoff summaries, buying-group members).
_PERSON_KEYS = frozenset(
    {"person_id", "email", "name", "first_name", "last_name", "job_title", "department", "seniority", "phone"}
    | {"attributes"}
)
# What the person's own events carry about them beyond the event itself: form fields they typed, the changes
# of a `person_updated`, their data as recorded. The rest (form name, page, link, message key) stays for
# the account's analytics.
_OWN_PAYLOAD_KEYS = _PERSON_KEYS | {"fields", "changes", "person"}
_WithAttributes = TypeVar("_WithAttributes", Person, Opportunity)


class ErasureError(ValueError):
    """The request cannot be carried out as given (not an email address); nothing was changed."""


@dataclass(frozen=True)
class Erasure:
    """What `forget` did, in counts per kind of row: what it deleted and what it kept without the person."""

    digest: str
    found: bool = False
    suppressed_before: bool = False
    removed: dict[str, int] = field(default_factory=dict)
    scrubbed: dict[str, int] = field(default_factory=dict)
    kept_payload_values: int = 0

    @property
    def changed(self) -> bool:
        return not self.suppressed_before or any(self.removed.values()) or any(self.scrubbed.values())

    @property
    def message(self) -> str:
        removed = _counted(self.removed, _NAMES)
        scrubbed = _counted(self.scrubbed, _NAMES)
        done = "; ".join(filter(None, (removed and f"removed {removed}", scrubbed and f"scrubbed {scrubbed}")))
        if self.found:
            text = f"erased: {done}; the address is suppressed and will never be emailed again"
        elif self.suppressed_before and not done:
            text = "already erased: nothing more was found; the address stays suppressed"
        else:
            text = "no person with this address was found"
            text += f" ({done})" if done else ""
            verb = "stays" if self.suppressed_before else "is now"
            text += f"; the address {verb} suppressed, so it is never emailed if it arrives later"
        if kept := self.kept_payload_values:
            verb = "holds" if kept == 1 else "hold"
            text += f"; {_plural(kept, 'payload value')} of Temporal histories still {verb} it (see README, Erasure)"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "found": self.found,
            "suppressed_before": self.suppressed_before,
            "removed": dict(self.removed),
            "scrubbed": dict(self.scrubbed),
            "kept_payload_values": self.kept_payload_values,
            "message": self.message,
        }


_NAMES = {
    "people": ("person", "people"),
    "buying_group_members": ("buying-group membership", "buying-group memberships"),
    "events": ("event", "events"),
    "outbox_messages": ("outbox message", "outbox messages"),
    "handoffs": ("handoff", "handoffs"),
    "accounts": ("account", "accounts"),
    "other_people": ("other person's attributes", "other people's attributes"),
    "opportunities": ("opportunity", "opportunities"),
}


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _counted(counts: dict[str, int], names: dict[str, tuple[str, str]]) -> str:
    return ", ".join(_plural(count, *names[kind]) for kind, count in counts.items() if count)


def forget(engine: Engine, email: str, by: str, reason: str = "") -> Erasure:
    """Erase the person(s) with this address (compared lower-cased, without surrounding spaces) and suppress
    it. Safe to repeat: a second call finds nothing more and says so. `by` (an operator, an API key) and
    `reason` go into the anonymous `person_erased` event; the address itself is logged nowhere."""
    address = normalise_email(email)
    if not _ADDRESS.fullmatch(address) or len(address) > MAX_ADDRESS:
        raise ErasureError(
            f"'{email.strip()[:80]}' is not an email address: give the person's address, e.g. ana@acme.example"
        )
    try:
        erasure = _forget(engine, address, by, reason)
    except IntegrityError:  # the same address erased at the same moment elsewhere: its suppression now exists
        erasure = _forget(engine, address, by, reason)
    log.info(
        "person.erased" if erasure.changed else "person.already_erased",
        digest=erasure.digest,
        by=re.sub(re.escape(address), ERASED, by, flags=re.IGNORECASE),  # `--by` given the address itself
        found=erasure.found,
        suppressed_before=erasure.suppressed_before,
        kept_payload_values=erasure.kept_payload_values,
        **erasure.removed,
        **erasure.scrubbed,
    )
    return erasure


def _forget(engine: Engine, address: str, by: str, reason: str) -> Erasure:
    digest = email_digest(address)
    with Session(engine) as session:
        # lower(email) is indexed, and how imports and upserts find people too.
        people = session.exec(select(Person).where(func.lower(Person.email) == address)).all()
        ids = {person.id for person in people if person.id is not None}
        # A job title at a named account identifies a person as well as a name does ("the CTO of Acme").
        words = [text for person in people for text in (full_name(person), person.job_title) if text]
        scrubber = _Scrubber(address, ids, words)
        suppressed_before = session.get(Suppression, digest) is not None
        if not suppressed_before:
            session.add(Suppression(digest=digest, reason="erased"))
        scrubbed = {
            "events": _scrub_events(session, scrubber),
            "outbox_messages": _scrub_outbox(session, scrubber),
            "handoffs": _scrub_handoffs(session, scrubber, {person.account_id for person in people}),
            "accounts": _scrub_accounts(session, scrubber),
            "other_people": _scrub_attributes(session, scrubber, Person),
            "opportunities": _scrub_attributes(session, scrubber, Opportunity),
        }
        session.flush()  # events no longer point at the people deleted below (foreign keys)
        removed = {"people": len(people), "buying_group_members": 0}
        if ids:
            result = session.execute(delete(BuyingGroupMember).where(col(BuyingGroupMember.person_id).in_(ids)))
            removed["buying_group_members"] = int(result.rowcount)  # type: ignore[attr-defined]
            session.execute(delete(BuyingGroupRemoval).where(col(BuyingGroupRemoval.person_id).in_(ids)))
        for person in people:
            session.delete(person)
        erasure = Erasure(
            digest=digest,
            found=bool(people),
            suppressed_before=suppressed_before,
            removed=removed,
            scrubbed=scrubbed,
            kept_payload_values=_payload_values(session, engine, scrubber),
        )
        if erasure.changed:
            payload = {
                "digest": digest,
                "by": scrubber.text(by),
                "reason": scrubber.text(reason),
                "removed": removed,
                "scrubbed": scrubbed,
            }
            now = utcnow()
            # Nothing for journeys to hear: delivered at once, so no relay ever picks it up.
            session.add(
                ActivityEvent(
                    key=engine_key(EVENT_TYPE, uuid.uuid4().hex),
                    type=EVENT_TYPE,
                    payload=payload,
                    occurred_at=now,
                    recorded_at=now,
                    delivered_at=now,
                )
            )
        session.commit()
    return erasure


class _Scrubber:
    """Finds the person in stored rows and values, and takes them out.

    The address is looked for as stored in text (any case), HTML-escaped, percent-encoded and JSON-escaped;
    the person's full name and job title only inside rows that name the address too (a handoff email to the
    account owner), as whole words, so another person's text is not cut into."""

    def __init__(self, address: str, ids: set[int], words: Iterable[str]) -> None:
        self.address = address
        self.ids = ids
        forms = (address, html.escape(address), quote(address, safe="@"), quote(address), json.dumps(address)[1:-1])
        self.needles = sorted({form.lower() for form in forms})  # lower: SQL compares lower(column)
        wholes = {
            form for word in words if len(word.strip()) >= 2 for form in (word.strip(), html.escape(word.strip()))
        }
        parts = [re.escape(needle) for needle in self.needles]
        parts += [rf"(?<!\w){re.escape(whole)}(?!\w)" for whole in wholes]
        self._pattern = re.compile("|".join(sorted(parts, key=len, reverse=True)), re.IGNORECASE)

    def mentions(self, column: Any) -> ColumnElement[bool]:
        """SQL: the column, read as text, holds the address in one of its forms."""
        text = func.lower(cast(column, Text))
        return or_(*(text.contains(needle, autoescape=True) for needle in self.needles))

    def is_address(self, value: str | None) -> bool:
        return value is not None and normalise_email(value) == self.address

    def text(self, value: str) -> str:
        return self._pattern.sub(ERASED, value)

    def holds(self, value: str) -> bool:
        return self._pattern.search(value) is not None

    def is_person(self, value: dict[str, Any]) -> bool:
        """A JSON object describing this person: a handoff's member, an activity line, a person's data."""
        person_id = value.get("person_id")
        email = value.get("email")
        return (isinstance(person_id, int) and person_id in self.ids) or (
            isinstance(email, str) and self.is_address(email)
        )

    def value(self, value: Any) -> Any:
        """A JSON value without the person: objects describing them keep their shape (a summary's renderer
        still reads `name`) with the personal keys emptied; text loses the address and the name."""
        if isinstance(value, dict):
            if self.is_person(value):
                return {
                    key: (ERASED if key == "name" else None) if key in _PERSON_KEYS else self.value(item)
                    for key, item in value.items()
                }
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def _scrub_events(session: Session, scrubber: _Scrubber) -> int:
    # The event log has no index on email or payload: this is one pass over it, once per erasure.
    conditions = [
        func.lower(func.trim(ActivityEvent.email)) == scrubber.address,
        scrubber.mentions(ActivityEvent.payload),
        scrubber.mentions(ActivityEvent.reason),
        scrubber.mentions(ActivityEvent.key),
    ]
    if scrubber.ids:
        conditions.append(col(ActivityEvent.person_id).in_(scrubber.ids))
    changed = 0
    for row in session.exec(select(ActivityEvent).where(or_(*conditions))).all():
        own = row.person_id in scrubber.ids or scrubber.is_address(row.email)
        payload = dict(row.payload or {})
        if own:
            payload = {key: item for key, item in payload.items() if key not in _OWN_PAYLOAD_KEYS}
            row.person_id, row.email = None, None
        elif row.email is not None and scrubber.holds(row.email):
            row.email = None
        row.payload = scrubber.value(payload)
        if row.reason is not None:
            row.reason = scrubber.text(row.reason)
        if scrubber.holds(row.key):
            # A sender's event id made of the address: replaced by one that stays unique and says nothing.
            row.key = engine_key("erased", hashlib.sha256(row.key.encode()).hexdigest()[:40])
        session.add(row)
        changed += 1
    return changed


def _scrub_outbox(session: Session, scrubber: _Scrubber) -> int:
    """Messages to the person lose address, subject and bodies; their key and status stay, so a retried send
    still finds the key used. Messages naming them (the owner's handoff email) lose the address and name."""
    conditions = [
        func.lower(func.trim(OutboxMessage.to_address)) == scrubber.address,
        *(scrubber.mentions(column) for column in (OutboxMessage.subject, OutboxMessage.html, OutboxMessage.text)),
        scrubber.mentions(OutboxMessage.error),
    ]
    if scrubber.ids:
        conditions.append(col(OutboxMessage.person_id).in_(scrubber.ids))
    changed = 0
    for row in session.exec(select(OutboxMessage).where(or_(*conditions))).all():
        if row.person_id in scrubber.ids or scrubber.is_address(row.to_address):
            row.person_id, row.to_address, row.subject, row.html, row.text = None, ERASED, "", "", ""
            if row.status != "sent":
                row.status, row.error = "failed", "not sent: the person was erased (journey forget)"
        else:
            row.subject, row.html, row.text = (scrubber.text(value) for value in (row.subject, row.html, row.text))
        if row.error is not None:
            row.error = scrubber.text(row.error)
        session.add(row)
        changed += 1
    return changed


def _scrub_handoffs(session: Session, scrubber: _Scrubber, accounts: set[str]) -> int:
    conditions = [scrubber.mentions(Handoff.summary)]
    if accounts:
        conditions.append(col(Handoff.account_id).in_(accounts))  # summaries name members by id too
    changed = 0
    for row in session.exec(select(Handoff).where(or_(*conditions))).all():
        summary = scrubber.value(row.summary)
        if summary != row.summary:
            row.summary = summary
            session.add(row)
            changed += 1
    return changed


def _scrub_accounts(session: Session, scrubber: _Scrubber) -> int:
    """An account whose owner is the person (an employee may be erased too), or whose attributes name them."""
    query = select(Account).where(
        or_(func.lower(func.trim(Account.owner_email)) == scrubber.address, scrubber.mentions(Account.attributes))
    )
    changed = 0
    for row in session.exec(query).all():
        if scrubber.is_address(row.owner_email):
            row.owner_email = None
        row.attributes = scrubber.value(row.attributes)
        session.add(row)
        changed += 1
    return changed


def _scrub_attributes(session: Session, scrubber: _Scrubber, model: type[_WithAttributes]) -> int:
    """Colleagues or opportunities whose free-form attributes name the person (a 'reports_to', a CRM contact)."""
    query = select(model).where(scrubber.mentions(model.attributes))
    if model is Person and scrubber.ids:
        query = query.where(col(Person.id).not_in(scrubber.ids))
    changed = 0
    for row in session.exec(query).all():
        row.attributes = scrubber.value(row.attributes)
        session.add(row)
        changed += 1
    return changed


def _payload_values(session: Session, engine: Engine, scrubber: _Scrubber) -> int:
    """Large values of Temporal payloads (engine/runtime/payloads.py) that hold the address. They are kept:
    they are part of histories, content-addressed and checked on reading, and a running journey whose history
    refers to a missing one could no longer be replayed. Counted, so the answer says they exist."""
    data = PayloadBlob.data
    text = func.convert_from(data, "UTF8") if engine.dialect.name == "postgresql" else cast(data, Text)
    found = func.lower(text)
    query = select(func.count()).select_from(PayloadBlob)
    query = query.where(or_(*(found.contains(needle, autoescape=True) for needle in scrubber.needles)))
    return int(session.exec(query).one())
