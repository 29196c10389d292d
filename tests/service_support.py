"""Helpers for the events-service tests: what a sender puts on the wire, and what the database holds."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from engine.db import ActivityEvent, Person
from engine.service import auth

SECRET = "webhook-secret-for-tests-0123456789abcdef"  # 32 bytes at least, as the service requires


def signed(
    body: dict[str, Any] | bytes,
    secret: str = SECRET,
    at: float | None = None,
    method: str = "POST",
    target: str = "/v1/events",
) -> tuple[bytes, dict[str, str]]:
    """The body's bytes and the headers a webhook sender signs them with, for `method` on `target` (the path,
    and '?query' when there is one)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    timestamp = int(at if at is not None else time.time())
    headers = {
        "content-type": "application/json",
        "x-journey-timestamp": str(timestamp),
        "x-journey-signature": auth.sign(secret.encode(), timestamp, method, target, raw),
    }
    return raw, headers


def event(event_id: str, type_: str = "web_visit", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type_, "event_id": event_id, "account": {"id": "acme-corp"}}
    data.update(fields)
    return data


def stored(engine: Engine) -> int:
    """Rows in the event log and people: what a refused request must leave unchanged."""
    with Session(engine) as session:
        events = session.exec(select(func.count()).select_from(ActivityEvent)).one()
        people = session.exec(select(func.count()).select_from(Person)).one()
        return int(events) * 1_000_000 + int(people)


def log_row(engine: Engine, key: str) -> ActivityEvent | None:
    with Session(engine) as session:
        return session.exec(select(ActivityEvent).where(ActivityEvent.key == key)).first()
