"""What `journey serve` reads and answers: the event a sender posts and the per-event verdicts.

These models are also the OpenAPI spec at /openapi.json, which the test suite checks the service against.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.db import ENGINE_KEY_MARK

MAX_BATCH = 1_000
Verdict = Literal["accepted", "duplicate", "unmatched", "rejected"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountRef(_In):
    id: str | None = Field(None, min_length=1, max_length=64, description="the account's id")
    domain: str | None = Field(None, min_length=1, max_length=253, description="or its web domain")


class PersonRef(_In):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class EventIn(_In):
    """One event. The account is found by `account.id`, else `account.domain`, else the person's email domain."""

    type: str = Field(min_length=1, max_length=64, description="a built-in type or one declared in events.yaml")
    event_id: str = Field(min_length=1, max_length=255, description="the sender's idempotency key")
    occurred_at: AwareDatetime | None = Field(None, description="ISO 8601 with a time zone; default: when received")
    account: AccountRef | None = None
    person: PersonRef | None = None
    payload: dict[str, Any] = Field(default_factory=dict, description="the event's data, e.g. form and fields")

    @field_validator("event_id")
    @classmethod
    def _not_an_engine_key(cls, event_id: str) -> str:
        if event_id.startswith(ENGINE_KEY_MARK):
            raise ValueError(f"event ids starting with '{ENGINE_KEY_MARK}' are reserved for the engine's own records")
        return event_id

    @model_validator(mode="after")
    def _names_an_account(self) -> EventIn:
        has_account = self.account is not None and (self.account.id or self.account.domain)
        if not has_account and self.person is None:
            raise ValueError("name the account (account.id or account.domain) or the person (person.email)")
        return self


class EventBatch(_In):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class EventAnswer(BaseModel):
    index: int = Field(description="the event's position in the request (0 for a single event)")
    event_id: str | None = None
    status: Verdict
    reason: str | None = Field(None, description="why unmatched, duplicate or rejected")
    path: str | None = Field(None, description="for rejected events: the field at fault, e.g. 'events[3].type'")


class EventsAnswer(BaseModel):
    accepted: int
    duplicate: int
    unmatched: int
    rejected: int
    results: list[EventAnswer]


class Problem(BaseModel):
    """A refused request: nothing in it was stored."""

    error: str = Field(description="a short name: unauthorized, forbidden, too_large, invalid_body, invalid_token")
    detail: str = Field(description="what was wrong and what to do")
    path: str | None = Field(None, description="the field at fault, when there is one")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str
    temporal: str
    relay: str = Field(description="running, not run here (--no-relay), or stopped with its error")
    parked_events: int = Field(0, description="events the relay set aside (`journey parked` lists them)")
