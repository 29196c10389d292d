"""The event-log rows an upsert writes: `account_updated` / `person_updated` with the changed fields (old -> new),
and `person_added` for a new person, so the relay signals them to the account's running journeys (a waiting
buying-group gate re-checks; a `wait_for_event` may wait for a change).

Rows are written with the changes they describe, in the same transaction, keyed by engine_key(...) from the
record, the moment it last changed and the change itself: two writers applying the same change to the same
version record it once (INSERT ... ON CONFLICT DO NOTHING), and the same change made again later, from another
version, is a new event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from engine.db import ActivityEvent, engine_key, insert_new

Changes = dict[str, dict[str, Any]]  # field or attribute -> {"old": ..., "new": ...}


def plain(value: Any) -> Any:
    """A value as the event payload (JSON) carries it."""
    return value.isoformat() if isinstance(value, datetime | date) else value


def updated(
    type_: str,
    subject: object,
    version: datetime | None,
    account_id: str,
    person: tuple[int, str | None] | None,
    changes: Changes,
    now: datetime,
) -> dict[str, Any]:
    """The row of an `account_updated` (subject: the account id) or `person_updated` (subject: the person id)."""
    digest = hashlib.sha256(json.dumps([plain(version), changes], sort_keys=True, default=str).encode()).hexdigest()[
        :24
    ]
    return _row(engine_key(type_, subject, digest), type_, account_id, person, {"changes": changes}, now)


def added(person_id: int, email: str | None, account_id: str, now: datetime) -> dict[str, Any]:
    """The row of a `person_added`: once per person, whoever adds them."""
    return _row(engine_key("person_added", person_id), "person_added", account_id, (person_id, email), {}, now)


def _row(
    key: str,
    type_: str,
    account_id: str,
    person: tuple[int, str | None] | None,
    payload: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    return {
        "key": key,
        "type": type_,
        "account_id": account_id,
        "person_id": person[0] if person else None,
        "email": person[1] if person else None,
        "status": "matched",
        "reason": None,
        "journey_id": None,  # not a journey's own record: the relay delivers it
        "node_id": None,
        "payload": dict(payload),
        "occurred_at": now,
        "recorded_at": now,
        "delivered_at": None,
    }


def write(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows; a key already recorded is left as it is."""
    insert_new(connection, ActivityEvent.__table__, rows)  # type: ignore[attr-defined]
