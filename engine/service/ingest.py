"""From a request body to stored events and one verdict per event.

A body that cannot be read at all is refused whole (ProblemError, nothing stored). Otherwise each event is
judged on its own: rejected with the field path and the reason, or stored (in one transaction for the
whole request) as accepted, unmatched or duplicate.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Engine

from engine.language.event_types import EventTypes
from engine.runtime import events
from engine.service.limits import MAX_DEPTH, printable, value_problem
from engine.service.schemas import MAX_BATCH, EventAnswer, EventIn, EventsAnswer


class ProblemError(Exception):
    """A request refused as a whole; becomes a JSON Problem with `status`."""

    def __init__(self, status: int, error: str, detail: str, path: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.path = status, error, detail, path


def read_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise ProblemError(422, "invalid_body", "the body is not UTF-8 text") from None
    except RecursionError:
        raise ProblemError(422, "invalid_body", f"the body nests too deep (events allow {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as error:
        raise ProblemError(
            422, "invalid_body", f"the body is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError as error:  # an integer over Python's 4,300-digit limit
        raise ProblemError(422, "invalid_body", f"the body holds a number too large to read: {error}") from None


def split_batch(data: Any) -> tuple[list[Any], bool]:
    """The events of a body and whether it was a single event."""
    if isinstance(data, dict) and "events" in data:
        extra = sorted(set(data) - {"events"})
        if extra:
            raise ProblemError(422, "invalid_body", f"unknown key '{extra[0]}' beside 'events'", extra[0])
        batch = data["events"]
        if not isinstance(batch, list) or not batch:
            raise ProblemError(422, "invalid_body", "'events' must be a non-empty list of events", "events")
        if len(batch) > MAX_BATCH:
            raise ProblemError(
                422,
                "invalid_body",
                f"a batch holds at most {MAX_BATCH:,} events, this one {len(batch):,}: send it in several requests",
                "events",
            )
        return batch, False
    if isinstance(data, dict):
        return [data], True
    raise ProblemError(422, "invalid_body", 'expected one event (a JSON object) or {"events": [...]}')


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def judge(raw: Any, index: int, single: bool, types: EventTypes) -> EventIn | EventAnswer:
    """The event, or its rejection with the path of the first field at fault."""
    prefix = "" if single else f"events[{index}]"
    event_id = raw.get("event_id") if isinstance(raw, dict) and isinstance(raw.get("event_id"), str) else None
    event_id = printable(event_id)
    if problem := value_problem(raw):
        where, reason = problem
        return EventAnswer(index=index, event_id=event_id, status="rejected", reason=reason, path=_path(prefix, where))
    try:
        event = EventIn.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        reason = message[:1].lower() + message[1:]
        return EventAnswer(
            index=index, event_id=event_id, status="rejected", reason=reason, path=_path(prefix, first["loc"])
        )
    if refusal := types.refusal(event.type):
        return EventAnswer(
            index=index, event_id=event_id, status="rejected", reason=refusal, path=_path(prefix, ("type",))
        )
    if event.type == "form_fill" and not isinstance(event.payload.get("form"), str):
        reason = "a form_fill names its form: payload.form (text)"
        path = _path(prefix, ("payload", "form"))
        return EventAnswer(index=index, event_id=event_id, status="rejected", reason=reason, path=path)
    return event


def store(engine: Engine, items: list[EventIn | EventAnswer], types: EventTypes) -> EventsAnswer:
    """Store every valid event in one transaction; the answer lists every event in request order."""
    valid = [(index, item) for index, item in enumerate(items) if isinstance(item, EventIn)]
    incoming = [
        events.Incoming(
            type=event.type,
            account_id=event.account.id if event.account else None,
            email=event.person.email if event.person else None,
            payload=event.payload,
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            domain=event.account.domain if event.account else None,
        )
        for _, event in valid
    ]
    recorded = events.record_many(engine, incoming, types.names) if incoming else []
    answers: list[EventAnswer] = [item for item in items if isinstance(item, EventAnswer)]
    for (index, event), result in zip(valid, recorded, strict=True):
        answers.append(EventAnswer(index=index, event_id=event.event_id, status=result.status, reason=result.reason))
    answers.sort(key=lambda answer: answer.index)
    counts = {status: sum(1 for answer in answers if answer.status == status) for status in _VERDICTS}
    return EventsAnswer(**counts, results=answers)


_VERDICTS = ("accepted", "duplicate", "unmatched", "rejected")


def form_event(form: str, fields: dict[str, Any], idempotency_key: str | None, body: bytes) -> EventIn:
    """A form tool's submission as a form_fill: `email` is the person, `account_id` (optional) the account,
    `event_id` (or the Idempotency-Key header) the idempotency key; every other field goes to payload.fields.
    Without a key, the same body posted twice counts once (form tools retry)."""
    fields = dict(fields)
    email = fields.pop("email", None)
    account_id = fields.pop("account_id", None)
    event_id = fields.pop("event_id", None) or idempotency_key
    if not isinstance(email, str) or not email.strip():
        raise ProblemError(422, "invalid_body", "a form submission needs an 'email' field (text)", "email")
    if account_id is not None and not isinstance(account_id, str):
        raise ProblemError(422, "invalid_body", "'account_id' must be text", "account_id")
    if event_id is not None and not isinstance(event_id, str):
        raise ProblemError(422, "invalid_body", "'event_id' must be text", "event_id")
    event_id = event_id or f"form/{form}/{hashlib.sha256(body).hexdigest()[:32]}"
    raw: dict[str, Any] = {
        "type": "form_fill",
        "event_id": event_id,
        "person": {"email": email.strip()},
        "payload": {"form": form, "fields": fields},
    }
    if account_id:
        raw["account"] = {"id": account_id}
    if problem := value_problem(raw):
        where, reason = problem
        path = (
            "email"
            if where[:1] == ("person",)
            else _path("", where[2:] if where[:2] == ("payload", "fields") else where)
        )
        raise ProblemError(422, "invalid_body", reason, path)
    try:
        return EventIn.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        path = "email" if first["loc"][:1] == ("person",) else _path("", first["loc"])
        raise ProblemError(422, "invalid_body", str(first["msg"]), path) from None
