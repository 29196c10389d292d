"""From the outside world to a journey, on the dev server with a real worker, real SMTP and real HTTP: an
email is sent with tracked links; its pixel and click come back through `journey serve`; the relay moves
the journey waiting on `email_click`; an unsubscribed person gets no further email."""

from __future__ import annotations

import asyncio
import email
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import event, log_row
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import WAIT_FOR_DEMO, SmtpInbox, add_account, add_person, wait_for_state, write_journey
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.delivery import SmtpDelivery
from engine.db import ActivityEvent, OutboxMessage, Person
from engine.language.plan import Plan
from engine.runtime import events, publish, temporal
from engine.runtime.workers import running_worker
from engine.service import auth
from engine.service.app import ServiceConfig, create_app
from engine.service.relay import TemporalLink
from engine.service.serve import free_port, serving
from engine.tracking import Tokens
from engine.workflow.contracts import JourneyResult

SECRET = "tracking-secret-e2e-at-least-32-bytes-long"
REPO = Path(__file__).resolve().parent.parent


def _link(env: WorkflowEnvironment) -> TemporalLink:
    async def connect() -> Client:
        return env.client

    return TemporalLink(connect)


async def _start(
    env: WorkflowEnvironment, db: Engine, plan: Plan, task_queue: str
) -> WorkflowHandle[Any, JourneyResult]:
    publish.store_version(db, plan)
    # Started as publishing starts accounts: the relay signals the journeys an account was started in.
    assert await publish.start_journey(env.client, db, plan, "acme-corp", task_queue=task_queue)
    return env.client.get_workflow_handle(temporal.workflow_id(plan.journey, "acme-corp"), result_type=JourneyResult)


class TestRelay:
    """An event posted over HTTP is committed, then relayed as a signal; the waiting journey moves on."""

    async def test_form_fill_moves_journey(self, dev_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> None:
        journey = f"relay-{uuid.uuid4().hex[:8]}"
        plan = write_journey(
            tmp_path / "journeys",
            WAIT_FOR_DEMO,
            start="wait_demo",
            journey=journey,
        )
        add_account(db)
        key = auth.create_key(db, "test").key
        task_queue = f"relay-{uuid.uuid4()}"
        app = create_app(ServiceConfig(db, temporal=_link(dev_env)))
        async with (
            running_worker(dev_env.client, db, SmtpDelivery("smtp://127.0.0.1:1"), task_queue),
            serving(app) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            handle = await _start(dev_env, db, plan, task_queue)
            await wait_for_state(handle, lambda state: state["listening"])  # events before the wait are not for it
            fill = event("relay-fill-1", type_="form_fill", payload={"form": "demo-request"})
            answer = await http.post("/v1/events", json=fill, headers={"authorization": f"Bearer {key}"})
            assert answer.json()["accepted"] == 1
            result = await asyncio.wait_for(handle.result(), timeout=30)
            health = (await http.get("/healthz")).json()
        assert result.ended_at == "converted"
        row = log_row(db, "relay-fill-1")
        assert row is not None and row.delivered_at is not None
        assert health == {"status": "ok", "database": "ok", "temporal": "ok", "relay": "running", "parked_events": 0}

    async def test_relay_as_its_own_process(self, dev_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> None:
        """`journey relay` delivers what another process stored (`journey serve --no-relay`, the CLI), then
        stops cleanly on SIGTERM."""
        journey = f"relay-{uuid.uuid4().hex[:8]}"
        plan = write_journey(tmp_path / "journeys", WAIT_FOR_DEMO, start="wait_demo", journey=journey)
        add_account(db)
        task_queue = f"relay-{uuid.uuid4()}"
        env = {key: value for key, value in os.environ.items() if not key.startswith(("TEMPORAL_", "JOURNEY_"))}
        env.update(TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host, JOURNEY_DATABASE_URL=str(db.url))
        command = [sys.executable, "-m", "engine.cli", "relay", "--journeys", str(tmp_path / "journeys")]
        relay = subprocess.Popen([*command, "--poll", "0.05"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        try:
            async with running_worker(dev_env.client, db, SmtpDelivery("smtp://127.0.0.1:1"), task_queue):
                handle = await _start(dev_env, db, plan, task_queue)
                await wait_for_state(handle, lambda state: state["listening"])
                recorded = events.record(db, "form_fill", "acme-corp", None, {"form": "demo-request"}, "own-process")
                assert recorded.status == "accepted"
                result = await asyncio.wait_for(handle.result(), timeout=30)
        finally:
            relay.send_signal(signal.SIGTERM)
            _, logs = await asyncio.to_thread(relay.communicate, None, 30)
        assert result.ended_at == "converted"
        assert relay.returncode == 0, logs
        row = log_row(db, "own-process")
        assert row is not None and row.delivered_at is not None


@pytest.fixture
async def tracked_service(
    db: Engine, monkeypatch: pytest.MonkeyPatch, dev_env: WorkflowEnvironment
) -> AsyncIterator[str]:
    """The service on a port known in advance, so the worker's emails can link to it."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("JOURNEY_PUBLIC_URL", public)
    monkeypatch.setenv("JOURNEY_TRACKING_SECRET", SECRET)
    app = create_app(ServiceConfig(db, tokens=Tokens(SECRET.encode(), public), temporal=_link(dev_env)))
    async with serving(app, port=port) as url:
        yield url


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


class TestTrackedEmail:
    """Pixel, click and one-click unsubscribe from a real email, back into the journey."""

    async def test_open_click_unsubscribe(
        self,
        dev_env: WorkflowEnvironment,
        db: Engine,
        tmp_path: Path,
        smtp: tuple[str, SmtpInbox],
        tracked_service: str,
    ) -> None:
        smtp_url, inbox = smtp
        journey = f"tracked-{uuid.uuid4().hex[:8]}"
        plan = write_journey(
            tmp_path / "journeys",
            """
            - id: intro
              type: send_email
              to: all
              subject: "Pricing for {{ account.name }}"
              template: emails/intro.html.j2
              next: wait_click
            - id: wait_click
              type: wait_for_event
              event: email_click
              timeout: 1h
              on_event: follow_up
              on_timeout: timed_out
            - id: follow_up
              type: send_email
              to: all
              subject: "Thanks for looking"
              template: emails/intro.html.j2
              next: done
            - id: done
              type: end
            - id: timed_out
              type: end
            """,
            start="intro",
            journey=journey,
            templates={
                "emails/intro.html.j2": "<html><body><p>Hi {{ person.first_name }},</p>"
                '<p><a href="https://acme.example/pricing?plan=team&amp;seats=5">See pricing</a></p>'
                '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>\n'
            },
        )
        add_account(db)
        ana = add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana")
        ben = add_person(db, "acme-corp", "ben@acme-corp.example", first_name="Ben")
        task_queue = f"tracked-{uuid.uuid4()}"
        async with (
            running_worker(dev_env.client, db, SmtpDelivery(smtp_url), task_queue),
            httpx.AsyncClient() as http,
        ):
            handle = await _start(dev_env, db, plan, task_queue)
            for _ in range(300):
                if len(inbox.messages) == 2:
                    break
                await asyncio.sleep(0.05)
            by_person = {rcpts[0]: _parse(raw) for rcpts, raw in inbox.messages}
            to_ana, to_ben = by_person["ana@acme-corp.example"], by_person["ben@acme-corp.example"]

            html = to_ana.get_body(("html",)).get_content()  # type: ignore[union-attr]
            pixel = re.search(r'<img src="([^"]+)"', html)
            click = re.search(r'href="(' + re.escape(tracked_service) + r'/t/c/[^"]+)"', html)
            assert pixel is not None and click is not None, html
            assert pixel.group(1).startswith(f"{tracked_service}/t/o/")
            assert f'href="{tracked_service}/u/' in html  # the unsubscribe link is signed, not tracked as a click

            one_click, mailto = (part.strip(" <>") for part in str(to_ben["List-Unsubscribe"]).split(","))
            assert one_click.startswith(f"{tracked_service}/u/") and mailto.startswith("mailto:")
            assert to_ben["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            unsubscribed = await http.post(one_click, data={"List-Unsubscribe": "One-Click"})
            assert unsubscribed.status_code == 200

            opened = await http.get(pixel.group(1))
            assert (opened.status_code, opened.headers["content-type"]) == (200, "image/gif")
            await wait_for_state(handle, lambda state: state["position"] == "wait_click" and state["listening"])
            clicked = await http.get(click.group(1))
            assert (clicked.status_code, clicked.headers["location"]) == (
                302,
                "https://acme.example/pricing?plan=team&seats=5",
            )
            result = await asyncio.wait_for(handle.result(), timeout=30)

        assert result.ended_at == "done"
        assert result.emails_sent == 3  # intro to both, follow-up to Ana only
        with Session(db) as session:
            assert session.get(Person, ben).unsubscribed is True  # type: ignore[union-attr]
            follow_ups = session.exec(select(OutboxMessage).where(OutboxMessage.node_id == "follow_up")).all()
        assert [row.person_id for row in follow_ups] == [ana]
        assert sorted(rcpts[0] for rcpts, _ in inbox.messages) == [
            "ana@acme-corp.example",
            "ana@acme-corp.example",
            "ben@acme-corp.example",
        ]
        with Session(db) as session:
            tracked = session.exec(
                select(ActivityEvent).where(ActivityEvent.type.in_(["email_open", "email_click"]))  # type: ignore[attr-defined]
            ).all()
        assert sorted((row.type, row.person_id, row.delivered_at is not None) for row in tracked) == [
            ("email_click", ana, True),
            ("email_open", ana, True),
        ]
