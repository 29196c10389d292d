"""What a request may hold: the body size limit, enforced while the body streams in (a lying or missing
Content-Length too), and the values an event may carry, checked before anything stores or relays them."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = int(os.environ.get("JOURNEY_MAX_BODY_BYTES", str(4 * 1024 * 1024)))
# An event's values nest at most this deep (payload.a.b... counts from the event itself): deeper data is
# refused at the door, since serialising it for Temporal and reading it back recurses once per level.
MAX_DEPTH = 16


def value_problem(value: Any) -> tuple[tuple[int | str, ...], str] | None:
    """(where, why) for the first value no database or journey can hold as sent; None when all are fine.

    Refused: nesting deeper than MAX_DEPTH, NaN and infinities (not JSON; they break every report that reads
    the event), NUL characters (PostgreSQL refuses them in text, failing the whole commit) and lone
    surrogates (not Unicode: they cannot be stored or even echoed back)."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        current, where = stack.pop()
        if len(where) > MAX_DEPTH:
            return where, f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(current, dict):
            for key, item in current.items():
                problem = _text_problem(key) if isinstance(key, str) else None
                if problem:
                    return (*where, key), f"a key {problem}"
                stack.append((item, (*where, key)))
        elif isinstance(current, list):
            stack.extend((item, (*where, index)) for index, item in enumerate(current))
        elif isinstance(current, str):
            problem = _text_problem(current)
            if problem:
                return where, problem
        elif isinstance(current, float) and not math.isfinite(current):
            return where, "NaN and infinite numbers are not allowed"
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def printable(text: str | None) -> str | None:
    """`text` if it can be echoed back in a JSON answer, else None."""
    return text if text is not None and _text_problem(text) is None else None


class _TooLargeError(Exception):
    pass


class BodyLimit:
    """Answers 413 with a JSON reason once a request body passes `limit` bytes; nothing behind it runs."""

    def __init__(self, app: ASGIApp, limit: int, refused: Callable[[], None] | None = None) -> None:
        self.app, self.limit, self.refused = app, limit, refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLargeError
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLargeError:
            if not started:
                await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        if self.refused is not None:
            self.refused()
        detail = f"the body is {size:,} bytes or more; the limit is {self.limit:,} (JOURNEY_MAX_BODY_BYTES)"
        body = json.dumps({"error": "too_large", "detail": detail + ": split it into smaller requests"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
