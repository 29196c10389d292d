"""`DELETE /v1/people/{email}`: erasure (GDPR Art. 17) over HTTP, with the credentials that send events.

The same as `journey forget`: the person's rows go or are scrubbed, the address is suppressed, and the answer
counts what was done. Repeating the request is safe and says that nothing more was found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from engine.data import erasure
from engine.service import auth
from engine.service.ingest import ProblemError
from engine.service.schemas import Problem

_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong credentials; nothing erased"},
    403: {"model": Problem, "description": "revoked or expired API key; nothing erased"},
    422: {"model": Problem, "description": "not an email address; nothing erased"},
}


class ErasureAnswer(BaseModel):
    """What the erasure did; `removed` and `scrubbed` count rows per kind (people, events, outbox_messages...)."""

    digest: str = Field(description="the suppression record's key: SHA-256 of the normalised address")
    found: bool = Field(description="whether a person had this address")
    suppressed_before: bool = Field(description="whether the address had been erased before")
    removed: dict[str, int] = Field(description="rows deleted, per kind")
    scrubbed: dict[str, int] = Field(description="rows kept without the person's data, per kind")
    kept_payload_values: int = Field(description="stored values of Temporal histories that still hold the address")
    message: str


def router(engine: Engine, caller: Callable[..., Awaitable[auth.Caller]]) -> APIRouter:
    people = APIRouter(tags=["people"])

    @people.delete(
        "/v1/people/{email}",
        response_model=ErasureAnswer,
        responses=_ANSWERS,
        summary="Erase a person (GDPR Art. 17) and never email the address again",
    )
    async def forget(
        email: str = Path(
            min_length=3, max_length=erasure.MAX_ADDRESS, description="the person's address, in any case"
        ),
        reason: str = Query("", max_length=500, description="why, e.g. a ticket number; kept in the event log"),
        who: auth.Caller = Depends(caller),
    ) -> ErasureAnswer:
        """Removes the person and their buying-group roles, scrubs their events, outbox messages and handoff
        summaries, and keeps an anonymous suppression record. What Temporal's histories hold stays until
        their retention ends (README, Erasure)."""
        try:
            done = await asyncio.to_thread(erasure.forget, engine, email, who.name, reason)
        except erasure.ErasureError as error:
            raise ProblemError(422, "invalid_email", str(error), "email") from None
        return ErasureAnswer(**done.as_json())

    return people
