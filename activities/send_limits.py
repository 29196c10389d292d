"""limits.yaml's caps, counted where a message is reserved: the outbox row is added in the same transaction that
counts the messages already reserved for its person, account and buying groups, so the count and the row agree.

Two journeys sending to the same person at once must count one after the other. Each capped subject has a row
in `send_quota`, and the transaction first writes the rows of its subjects (INSERT ... ON CONFLICT DO UPDATE):
PostgreSQL holds each row's lock until the commit, so a second sender waits there and then counts the first's
message (READ COMMITTED reads what committed before each statement); SQLite lets one writer at a time hold
the database from its first write on, and that write comes before any count. Rows are locked in one order
(scope, subject), so two senders never wait for each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, func, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from engine.db import BuyingGroupMember, OutboxMessage, SendQuota, utcnow
from engine.language.limits import Cap, LimitsFile, Scope

SUPPRESSED = "suppressed"


@dataclass(frozen=True, order=True)
class _Subject:
    scope: Scope
    subject: str


def reserve(session: Session, row: OutboxMessage, limits: LimitsFile | None) -> str | None:
    """Adds `row` to the outbox and commits: as it is, or marked suppressed with the reason of the first cap of
    `limits` its person, account or one of the person's buying groups has reached; returns that reason (None: it
    may go). The caller reads the answer, not the committed row: reading it would reload the whole row (bodies
    included) for every message. A transactional row, or one with no limits, is added as it is. Raises
    IntegrityError when a row with its key is there already."""
    reason = None
    if limits is not None and not row.transactional:
        subjects = _subjects(session, limits, row)
        _lock(session, subjects)
        reason = _reached(session, limits, subjects, utcnow())
        if reason is not None:
            row.status, row.suppressed_by = SUPPRESSED, reason
    session.add(row)
    session.commit()
    return reason


def _subjects(session: Session, limits: LimitsFile, row: OutboxMessage) -> list[_Subject]:
    subjects: list[_Subject] = []
    if limits.person and row.person_id is not None:
        subjects.append(_Subject("person", str(row.person_id)))
    if limits.account:
        subjects.append(_Subject("account", row.account_id))
    if limits.buying_group and row.person_id is not None:
        query = select(BuyingGroupMember.buying_group_id).where(BuyingGroupMember.person_id == row.person_id)
        subjects += [_Subject("buying_group", str(group)) for group in session.exec(query).all()]
    return sorted(subjects)


def _lock(session: Session, subjects: Sequence[_Subject]) -> None:
    """Writes each subject's quota row, in order: the first write starts the transaction the count runs in."""
    table: Table = SendQuota.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for subject in subjects:
        statement = insert(table).values(scope=subject.scope, subject=subject.subject, locked_at=utcnow())
        session.connection().execute(
            statement.on_conflict_do_update(
                index_elements=["scope", "subject"], set_={"locked_at": statement.excluded.locked_at}
            )
        )


def _reached(session: Session, limits: LimitsFile, subjects: Sequence[_Subject], now: datetime) -> str | None:
    for subject in subjects:
        for cap in limits.caps(subject.scope):
            if _count(session, subject, cap, now) >= cap.max:
                return cap.reason(subject.scope)
    return None


def _count(session: Session, subject: _Subject, cap: Cap, now: datetime) -> int:
    """Messages reserved for the subject within the cap's window: sent, going out or refused, not suppressed and
    not transactional."""
    whose: ColumnElement[bool]
    if subject.scope == "person":
        whose = col(OutboxMessage.person_id) == int(subject.subject)
    elif subject.scope == "account":
        whose = col(OutboxMessage.account_id) == subject.subject
    else:
        members = select(BuyingGroupMember.person_id).where(BuyingGroupMember.buying_group_id == int(subject.subject))
        whose = col(OutboxMessage.person_id).in_(members)
    query = select(func.count()).where(
        whose,
        col(OutboxMessage.created_at) > now - cap.per,
        col(OutboxMessage.status) != SUPPRESSED,
        or_(col(OutboxMessage.transactional).is_(None), col(OutboxMessage.transactional).is_(False)),
    )
    return int(session.exec(query).one())
