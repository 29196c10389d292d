"""The body size limit, enforced while the body streams in (a lying or missing Content-Length too)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = int(os.environ.get("JOURNEY_MAX_BODY_BYTES", str(4 * 1024 * 1024)))


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
