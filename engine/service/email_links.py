"""The links inside journey emails: open pixel, click redirect and one-click unsubscribe (RFC 8058).

Each token is signed (engine/tracking.py); a forged or altered token gets 403 and records nothing. An open
is recorded once per message, a click once per link of a message; both go to the event log and so to the
account's waiting journeys. Unsubscribing takes a POST (what mail clients send for one-click, and what the
confirmation page's button sends): link scanners that GET every URL must not unsubscribe anyone.
"""

from __future__ import annotations

import asyncio
import base64
import html
from collections.abc import Callable
from typing import Any

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from engine.db import ActivityEvent, Person, engine_key
from engine.language.event_types import EventTypes
from engine.runtime import events
from engine.service.metrics import Metrics
from engine.service.schemas import EventAnswer, EventsAnswer, Problem
from engine.tracking import Kind, TokenError, Tokens

log = structlog.get_logger("serve")
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_PROBLEM = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_REFUSED: dict[int | str, dict[str, Any]] = {403: {"description": "forged or altered token", "content": _PROBLEM}}
_GONE: dict[int | str, dict[str, Any]] = {404: {"description": "the person is no longer known", "content": _PROBLEM}}


def router(
    engine: Engine,
    tokens: Tokens | None,
    types: EventTypes,
    metrics: Metrics,
    answered: Callable[[EventsAnswer], EventsAnswer],
) -> APIRouter:
    links = APIRouter(tags=["email links"])

    def read(kind: Kind, token: str) -> dict[str, Any] | JSONResponse:
        try:
            if tokens is None:
                raise TokenError("tracking is off on this server: set JOURNEY_TRACKING_SECRET")
            return tokens.read(kind, token)
        except TokenError as error:
            metrics.refused.labels("token").inc()
            log.info("token refused", kind=kind, reason=str(error))
            return JSONResponse(Problem(error="invalid_token", detail=str(error)).model_dump(exclude_none=True), 403)

    def record(type_: str, event_id: str, data: dict[str, Any], payload: dict[str, Any]) -> None:
        recorded = events.record(
            engine, type_, str(data.get("a") or "") or None, data.get("e"), payload, event_id, known=types.names
        )
        answer = EventAnswer(index=0, event_id=event_id, status=recorded.status, reason=recorded.reason)
        counts = {status: int(answer.status == status) for status in ("accepted", "duplicate", "unmatched")}
        answered(EventsAnswer(**counts, rejected=0, results=[answer]))

    @links.get("/t/o/{token}", responses={200: {"content": {"image/gif": {}}}, **_REFUSED}, summary="Open pixel")
    async def opened(token: str) -> Response:
        data = read("o", token)
        if isinstance(data, JSONResponse):
            return data
        payload = {"message": data.get("m"), "node": data.get("n"), "journey": data.get("j")}
        await asyncio.to_thread(record, "email_open", engine_key("email_open", data.get("m")), data, payload)
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    @links.get("/t/c/{token}", status_code=302, responses={302: {"description": "to the signed link"}, **_REFUSED})
    async def clicked(token: str) -> Response:
        """Redirects to the link that was signed into the token, and nowhere else."""
        data = read("c", token)
        if isinstance(data, JSONResponse):
            return data
        url = str(data.get("u") or "")
        if not url.lower().startswith(("http://", "https://")):
            return JSONResponse(
                Problem(error="invalid_token", detail="the token carries no web link").model_dump(), 403
            )
        payload = {"message": data.get("m"), "node": data.get("n"), "journey": data.get("j"), "link": data.get("l")}
        payload["url"] = url
        event_id = engine_key("email_click", data.get("m"), data.get("l"))
        await asyncio.to_thread(record, "email_click", event_id, data, payload)
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})

    @links.get("/u/{token}", response_class=HTMLResponse, responses=_REFUSED, summary="Unsubscribe page")
    async def unsubscribe_page(token: str) -> Response:
        data = read("u", token)
        if isinstance(data, JSONResponse):
            return data
        email = html.escape(str(data.get("e") or "this address"))
        return HTMLResponse(
            "<!doctype html><title>Unsubscribe</title>"
            f"<p>Stop journey emails to <b>{email}</b>?</p>"
            '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )

    @links.post(
        "/u/{token}", response_class=HTMLResponse, responses={**_REFUSED, **_GONE}, summary="One-click unsubscribe"
    )
    async def unsubscribe(token: str) -> Response:
        data = read("u", token)
        if isinstance(data, JSONResponse):
            return data
        found = await asyncio.to_thread(_unsubscribe, engine, data)
        if not found:
            detail = "this person is no longer known; nothing to unsubscribe"
            return JSONResponse(Problem(error="not_found", detail=detail).model_dump(exclude_none=True), 404)
        email = html.escape(str(data.get("e") or ""))
        return HTMLResponse(
            f"<!doctype html><title>Unsubscribed</title><p>{email} will get no more journey emails.</p>"
        )

    return links


def _unsubscribe(engine: Engine, data: dict[str, Any]) -> bool:
    """Mark the person unsubscribed (once) and log it; email nodes skip unsubscribed people."""
    person_id = data.get("p")
    if not isinstance(person_id, int):
        return False
    with Session(engine) as session:
        person = session.get(Person, person_id)
        if person is None:
            return False
        if not person.unsubscribed:
            person.unsubscribed = True
            session.add(
                ActivityEvent(
                    key=engine_key("unsubscribed", person_id),
                    type="unsubscribed",
                    account_id=person.account_id,
                    person_id=person_id,
                    email=person.email,
                    payload={"via": "one-click link", **_sent_by(data)},
                )
            )
            try:
                session.commit()
            except IntegrityError:  # unsubscribed, re-subscribed by hand, unsubscribed again: one log line
                session.rollback()
                person = session.get(Person, person_id)
                assert person is not None
                person.unsubscribed = True
                session.commit()
        log.info("person unsubscribed", person=person_id, account=person.account_id)
    return True


def _sent_by(data: dict[str, Any]) -> dict[str, Any]:
    """The message, journey and node the unsubscribe link came in (email report attribution); links made before
    tokens carried them name none."""
    named = {"message": data.get("m"), "journey": data.get("j"), "node": data.get("n")}
    return {name: value for name, value in named.items() if value is not None}
