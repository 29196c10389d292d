"""`journey serve` inside `journey dev`: on localhost, with tracking on and a fresh API key, and a ready
`curl` line that fills a form for a demo account still waiting for it, so a newcomer sees it move on."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.engine import Engine

from engine.runtime import publish
from engine.service import auth
from engine.service.serve import build_app, serving
from engine.tracking import PUBLIC_URL_ENV, SECRET_ENV

DEMO_JOURNEY, DEMO_FORM = "webinar-follow-up", "webinar-attended"
DEV_KEY_NAME = "journey dev"


def configure(http_port: int) -> None:
    """Tracked links in dev emails point at the local service; values already set are kept."""
    os.environ.setdefault(PUBLIC_URL_ENV, f"http://localhost:{http_port}")
    # A fresh random secret per run (none is kept in the repo): links in emails of an earlier run stop working.
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(32))


def curl_line(engine: Engine, url: str, key: str, skip: int) -> str | None:
    """A form fill for the first account of the demo journey's audience after the `skip` already simulated."""
    plan = publish.latest_version(engine, DEMO_JOURNEY)
    if plan is None:
        return None
    to_start, excluded = publish.audience(engine, plan)
    waiting = sorted(to_start + excluded)[skip:]
    if not waiting:
        return None
    body = {"type": "form_fill", "event_id": f"curl-{waiting[0]}", "account": {"id": waiting[0]}}
    body["payload"] = {"form": DEMO_FORM}
    headers = ["-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json"]
    return shlex.join(["curl", "-s", f"{url}/v1/events", *headers, "-d", json.dumps(body)])


@contextlib.asynccontextmanager
async def serve(engine: Engine, journeys: Path, port: int, skip: int = 5) -> AsyncIterator[list[str]]:
    """The events service on localhost:`port` until the block ends; yields the lines to print."""
    app, _ = build_app(journeys, relay=True, engine=engine)
    for old in auth.list_keys(engine):  # one key per `journey dev` run: the last run's stops working
        if old.name == DEV_KEY_NAME and old.revoked_at is None:
            auth.revoke_key(engine, old.id)
    key = auth.create_key(engine, DEV_KEY_NAME).key
    async with serving(app, "127.0.0.1", port) as url:
        lines = [f"Events:       {url}  (OpenAPI {url}/docs; API key for this run: {key})"]
        curl = curl_line(engine, url, key, skip)
        if curl is not None:
            lines.append(f"Fill a form:  {curl}")
        yield lines
