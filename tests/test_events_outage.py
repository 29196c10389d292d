"""Events keep arriving while the worker, and then the Temporal server itself, are down. `journey serve`
keeps accepting them (they are committed first); once Temporal is back the relay delivers each one exactly
once and the journeys move on. A real dev server process (stopped and restarted on the same database),
a real worker, real HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
from service_support import event
from sqlalchemy.engine import Engine
from support import WAIT_FOR_DEMO, add_account, wait_for_state, write_journey
from temporalio.client import Client

from activities.delivery import SmtpDelivery
from engine.dev.stack import dev_server
from engine.runtime import publish, temporal
from engine.runtime.workers import running_worker
from engine.service import auth
from engine.service.app import ServiceConfig, create_app
from engine.service.relay import TemporalLink, undelivered_count
from engine.service.serve import free_port, serving
from engine.workflow.contracts import JourneyResult

ACCOUNTS = [f"outage-{n}" for n in range(4)]


async def _drained(db: Engine, types: tuple[str, ...], timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.05)):
        if undelivered_count(db, types) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{undelivered_count(db, types)} events still undelivered after {timeout} s")


async def _signalled(client: Client, workflow_id: str) -> list[str]:
    """The event ids signalled to a workflow, in history order: what it really received."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    ids = []
    for entry in history.events:
        if entry.HasField("workflow_execution_signaled_event_attributes"):
            payload = entry.workflow_execution_signaled_event_attributes.input.payloads[0]
            ids.append(json.loads(payload.data)["event_id"])
    return ids


async def test_events_survive_worker_and_server_outage(db: Engine, tmp_path: Path) -> None:
    """Accepted during the outage, delivered once each afterwards, every journey converts."""
    plan = write_journey(
        tmp_path / "journeys",
        WAIT_FOR_DEMO,
        start="wait_demo",
        journey=f"outage-{uuid.uuid4().hex[:6]}",
    )
    for account in ACCOUNTS:
        add_account(db, account)
    key = auth.create_key(db, "outage").key
    home, port, ui_port = tmp_path / "temporal", free_port(), free_port()
    address = f"127.0.0.1:{port}"
    link = TemporalLink(lambda: temporal.connect(address))
    config = ServiceConfig(db, temporal=link, relay_max_backoff=0.5)
    types = config.types.names
    sent: dict[str, list[str]] = defaultdict(list)
    mailer = SmtpDelivery("smtp://127.0.0.1:1")  # the journey sends no email

    async def send(http: httpx.AsyncClient, account: str, type_: str = "web_visit", event_id: str | None = None) -> str:
        event_id = event_id or f"{account}-{len(sent[account])}-{type_}"
        payload = {"form": "demo-request"} if type_ == "form_fill" else {"url": "/pricing"}
        body = event(event_id, type_=type_, account={"id": account}, payload=payload)
        answer = await http.post("/v1/events", json=body, headers={"authorization": f"Bearer {key}"})
        status = answer.json()["results"][0]["status"]
        if status == "accepted":
            sent[account].append(event_id)
        return str(status)

    async with serving(create_app(config)) as url, httpx.AsyncClient(base_url=url) as http:
        async with dev_server(home, port, ui_port):
            client = await link.client()
            async with running_worker(client, db, mailer):
                await publish.publish(client, db, plan)
                for account in ACCOUNTS:
                    handle = client.get_workflow_handle(temporal.workflow_id(plan.journey, account))
                    await wait_for_state(handle, lambda state: state["listening"])
                    assert await send(http, account) == "accepted"
                await _drained(db, types)
            # The worker is gone; Temporal still takes the signals and keeps them for it.
            for account in ACCOUNTS[:2]:
                assert await send(http, account) == "accepted"
                assert await send(http, account, "form_fill") == "accepted"
            await _drained(db, types)
        # Temporal is gone too: events are still accepted, and wait in the database.
        for account in ACCOUNTS[2:]:
            assert await send(http, account) == "accepted"
            assert await send(http, account, "form_fill") == "accepted"
        assert await send(http, ACCOUNTS[2], event_id=sent[ACCOUNTS[2]][-1]) == "duplicate"
        await asyncio.sleep(1.0)
        assert undelivered_count(db, types) == 4
        assert "journey_events_undelivered 4.0" in (await http.get("/metrics")).text
        assert (await http.get("/healthz")).status_code == 503

        async with dev_server(home, port, ui_port):
            client = await link.client()
            async with running_worker(client, db, mailer):
                results = {}
                for account in ACCOUNTS:
                    handle = client.get_workflow_handle(
                        temporal.workflow_id(plan.journey, account), result_type=JourneyResult
                    )
                    results[account] = (await asyncio.wait_for(handle.result(), timeout=60)).ended_at
                await _drained(db, types)
                received = {
                    account: await _signalled(client, temporal.workflow_id(plan.journey, account))
                    for account in ACCOUNTS
                }

    assert results == dict.fromkeys(ACCOUNTS, "converted")
    assert received == sent  # every accepted event, once, in the order it was accepted
