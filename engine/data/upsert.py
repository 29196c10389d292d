"""The idempotent bulk upsert: a chunk of Records against the rows that exist, each created, updated or unchanged.

One query reads the chunk's existing rows (accounts and opportunities by id, people by lower(email), indexed);
the new rows go in with one executemany INSERT (COPY on PostgreSQL), the changed ones with one executemany UPDATE
per set of changed columns, and only the columns that changed are set, so a concurrent writer's other fields
survive. Unchanged rows
are not written and record nothing; a change records its event in the same transaction (engine/data/changes.py).
A row created by someone else between the read and the INSERT fails it with IntegrityError: the caller rolls
back and runs the chunk again, which then finds the row and updates it.

An upsert never turns `unsubscribed` back off: true stays true, whatever the record says.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic_core import PydanticUndefined
from sqlalchemy import String, Table, bindparam, func, select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session

from engine.data import bulk, changes
from engine.data.fields import Kind
from engine.data.validate import Record
from engine.db import Account, JourneyAccount, Opportunity, Person, Suppression, suppressed_emails, utcnow

Verdict = Literal["created", "updated", "unchanged"]
CHUNK = 1000  # records per query and statement: well inside SQLite's limit on bound variables
_MODELS: dict[Kind, Any] = {"accounts": Account, "people": Person, "opportunities": Opportunity}
_ENGINE_SET = frozenset({"id", "attributes", "created_at", "updated_at"})
_MISSING = object()
# `column.in_(AMONG)`, the values passed at execution as {"among": [...]}: `in_(values)` would build a bound
# parameter object for each of a chunk's thousand values, which cost more than the query itself.
AMONG: BindParameter[Any] = bindparam("among", expanding=True)


@dataclass(slots=True)  # two a record (comparison, write): a frozen dataclass takes three times as long to make
class Outcome:
    key: str | None
    verdict: Verdict
    changes: changes.Changes = field(default_factory=dict)


def table(kind: Kind) -> Table:
    return _MODELS[kind].__table__  # type: ignore[no-any-return]


def defaults(kind: Kind) -> dict[str, Any]:
    """What a new row has in the columns a record does not give (the models' defaults)."""
    found = {}
    for name, info in _MODELS[kind].model_fields.items():
        if name in _ENGINE_SET:
            continue
        found[name] = None if info.default is PydanticUndefined else info.default
    return found


def upsert(
    connection: Connection,
    kind: Kind,
    records: Sequence[Record],
    *,
    write: bool = True,
    keep_existing: bool = False,
    events: bool = True,
    absent: bool = False,
    now: datetime | None = None,
) -> list[Outcome]:
    """Upsert one chunk (at most CHUNK records, each key once) inside the caller's transaction; the outcome of
    each record, in order. `write=False` only compares (a dry run); `keep_existing` creates what is missing and
    leaves the rest as it is (the demo data); `events=False` records no events; `absent` says a comparison
    just found none of the records (they are inserted without reading again; IntegrityError if one appeared)."""
    now = now or utcnow()
    existing = {} if absent else _existing(connection, kind, records, lock=write, keep=keep_existing)
    outcomes: list[Outcome] = []
    new_rows: list[dict[str, Any]] = []
    updates: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    event_rows: list[dict[str, Any]] = []
    blank = defaults(kind) if write else {}
    for record in records:
        old = existing.get(record.key if record.key is not None else _match(kind, record))
        if old is None:
            if write:
                new_rows.append(_new_row(kind, record, blank, now))
            outcomes.append(Outcome(record.key, "created"))
            continue
        found = {} if keep_existing else _changes(kind, old, record)
        if not found:
            outcomes.append(Outcome(record.key, "unchanged"))
            continue
        outcomes.append(Outcome(record.key, "updated", found))
        if not write:
            continue
        values = {name: record.values[name] for name in found if name in record.values}
        if any(name not in record.values for name in found):  # attributes changed: the merged object
            values["attributes"] = _merged(old["attributes"], record.attributes)
        values["updated_at"] = now
        updates[frozenset(values)].append({**values, bulk.KEY: old["id"]})
        if events and kind != "opportunities":
            event_rows.append(_updated_event(kind, old, found, now))
    if write:
        target = table(kind)
        if kind == "people" and new_rows:
            _keep_suppressed_unsubscribed(connection, new_rows)
        bulk.insert_rows(connection, target, new_rows)
        if kind == "people" and events and new_rows:
            event_rows += _added_events(connection, new_rows, now)
        for rows in updates.values():
            bulk.update_rows(connection, target, rows)
        changes.write(connection, event_rows)
    return outcomes


def _match(kind: Kind, record: Record) -> Any:
    if record.key is not None:
        return record.key
    values = record.values  # a person without an email: by account and name
    return (values.get("account_id"), values.get("first_name"), values.get("last_name"))


def _existing(
    connection: Connection, kind: Kind, records: Sequence[Record], lock: bool, keep: bool
) -> dict[Any, dict[str, Any]]:
    """The rows the records name, by the records' keys, with only the columns the comparison needs: converting
    the others (JSON, instants) cost a re-import half its time. `updated_at` is read as the database stores it:
    it only tells versions apart (changes.updated). Locked on PostgreSQL until the caller commits."""
    target = table(kind)
    keys = [record.key for record in records if record.key is not None]
    wanted = {"id", "email", "account_id", "first_name", "last_name"}
    if not keep:
        for record in records:
            wanted.update(record.values)
            if record.attributes:
                wanted.add("attributes")
    names = [column.name for column in target.columns if column.name in wanted]
    # attributes and updated_at as the database stores them: decoding is left to who needs it (_attributes)
    columns: list[Any] = [type_coerce(target.c[n], String) if n == "attributes" else target.c[n] for n in names]
    if not keep:
        names.append("updated_at")
        columns.append(type_coerce(target.c.updated_at, String))
    found: dict[Any, dict[str, Any]] = {}
    if keys:
        column = func.lower(target.c.email) if kind == "people" else target.c.id
        query = select(*columns).where(column.in_(AMONG)).order_by(target.c.id.desc())
        key = names.index("email" if kind == "people" else "id")
        for row in connection.execute(query.with_for_update() if lock else query, {"among": keys}).all():
            # The oldest row wins when two emails differ only in case (rows written before imports lowered them).
            found[row[key].lower() if kind == "people" else row[key]] = dict(zip(names, row, strict=True))
    unnamed = {record.values.get("account_id") for record in records if record.key is None}
    if kind == "people" and unnamed:
        query = select(*columns).where(target.c.email.is_(None), target.c.account_id.in_(AMONG))
        for row in connection.execute(query.order_by(target.c.id.desc()), {"among": list(unnamed)}).all():
            old = dict(zip(names, row, strict=True))
            found[(old["account_id"], old["first_name"], old["last_name"])] = old
    return found


def _new_row(kind: Kind, record: Record, blank: dict[str, Any], now: datetime) -> dict[str, Any]:
    row = {**blank, **record.values}  # a field given as None (JSON null) is one whose default is None
    given = record.attributes
    row["attributes"] = given if None not in given.values() else {k: v for k, v in given.items() if v is not None}
    created = record.values.get("created_at") or now
    row["created_at"] = created
    row["updated_at"] = created if "created_at" in record.values else now
    return row


def _same(old: Any, new: Any) -> bool:
    # 1 == 1.0 == True in Python; in the data they are different values.
    return bool(old == new) and type(old) is type(new)


def _changes(kind: Kind, old: dict[str, Any], record: Record) -> changes.Changes:
    found: changes.Changes = {}
    for name, new in record.values.items():
        before = old[name]
        # 1 == 1.0 == True in Python; in the data they are different values.
        if before == new and before.__class__ is new.__class__:
            continue
        if name == "unsubscribed" and before and not new:
            continue  # an import never re-subscribes anyone
        found[name] = {"old": changes.plain(before), "new": changes.plain(new)}
    if record.attributes:
        attributes = _attributes(old["attributes"])
        for name, new in record.attributes.items():
            before = attributes.get(name, _MISSING)
            if new is None:
                if before is not _MISSING:
                    found[name] = {"old": before, "new": None}
            elif before is _MISSING or not _same(before, new):
                found[name] = {"old": None if before is _MISSING else before, "new": new}
    return found


@lru_cache(maxsize=4096)
def _decoded(text: str) -> dict[str, Any]:
    return dict(json.loads(text))


def _attributes(stored: str | dict[str, Any] | None) -> dict[str, Any]:
    """The attributes of a row as read by _existing (JSON text on SQLite, already decoded by psycopg), not to be
    changed: rows of a chunk often carry the same few (segment, source), decoded once."""
    if isinstance(stored, str):
        return _decoded(stored)
    return stored or {}


def _merged(old: str | dict[str, Any] | None, given: dict[str, Any]) -> dict[str, Any]:
    merged = dict(_attributes(old))
    for name, value in given.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def _keep_suppressed_unsubscribed(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """An address erased with `journey forget` comes back from a CRM unsubscribed: the suppression stands, so no
    journey emails it (as when an event brings it back, engine/runtime/events.py)."""
    digest = Suppression.__table__.c.digest  # type: ignore[attr-defined]
    if connection.execute(select(digest).limit(1)).first() is None:
        return  # nobody was ever erased: no digest to compute (a tenth of a first import's time)
    with Session(bind=connection) as session:
        erased = suppressed_emails(session, [row["email"] for row in rows if row["email"] is not None])
    for row in rows:
        if row["email"] in erased:
            row["unsubscribed"] = True


def _added_events(connection: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """`person_added` for the new people of accounts that are in a journey: the event is there to wake those
    journeys (a buying-group gate re-checks); an account no journey has reached reads its people when one starts,
    and a first load of half a million people would otherwise add as many rows to the log for nobody."""
    accounts = {row["account_id"] for row in rows}
    member = JourneyAccount.__table__.c.account_id  # type: ignore[attr-defined]
    members = select(member).where(member.in_(AMONG)).distinct()
    listened = set(connection.execute(members, {"among": list(accounts)}).scalars())
    emails = [row["email"] for row in rows if row["email"] is not None and row["account_id"] in listened]
    if not emails:
        return []
    target = table("people")  # ids read back by email: RETURNING in input order is a statement a row on SQLite
    query = select(target.c.id, target.c.email, target.c.account_id).where(target.c.email.in_(AMONG))
    found = connection.execute(query, {"among": emails})
    return [changes.added(id_, email, account, now) for id_, email, account in found]


def _updated_event(kind: Kind, old: dict[str, Any], found: changes.Changes, now: datetime) -> dict[str, Any]:
    if kind == "accounts":
        return changes.updated("account_updated", old["id"], old["updated_at"], old["id"], None, found, now)
    person = (old["id"], old["email"])
    return changes.updated("person_updated", old["id"], old["updated_at"], old["account_id"], person, found, now)
