"""The relay outlives any single bad row: it parks the row with its reason, says so in /metrics, /healthz and
`journey parked`, and keeps delivering the rest (issue 13)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel
from support import WAIT_FOR_DEMO, add_account, write_journey
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from activities.delivery import OutboxFileDelivery
from engine.cli import app as cli
from engine.db import ActivityEvent, init_db, make_engine
from engine.language.model import EVENT_TYPES
from engine.runtime import events, publish, temporal
from engine.runtime.workers import running_worker
from engine.service.app import _relay_state
from engine.service.metrics import Metrics
from engine.service.relay import Relay, TemporalLink, parked_count, undelivered_count
from engine.workflow.contracts import JourneyResult


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_a_row_that_cannot_be_signalled_is_parked_and_the_rest_delivered(
    time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_account(db)
    plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo", journey=f"relay-{uuid.uuid4().hex[:6]}")
    assert await publish.start_journey(time_env.client, db, plan, "acme-corp", task_queue=worker)
    # Written past the HTTP checks (an older version, or another writer): 600 levels no signal can carry.
    with Session(db) as session:
        session.add(ActivityEvent(key="deep-1", type="web_visit", account_id="acme-corp", payload=nested(600)))
        session.commit()
    events.record(db, "form_fill", "acme-corp", None, {"form": "demo-request"}, event_id="after-the-bad-one")

    async def connect() -> Client:
        return time_env.client

    metrics = Metrics()
    relay = Relay(db, TemporalLink(connect), EVENT_TYPES, metrics, idle=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    handle = time_env.client.get_workflow_handle(
        temporal.workflow_id(plan.journey, "acme-corp"), result_type=JourneyResult
    )
    assert (await asyncio.wait_for(handle.result(), 30)).ended_at == "converted"
    assert not running.done() and _relay_state(running) == "running"
    stop.set()
    await running

    assert (undelivered_count(db, EVENT_TYPES), parked_count(db)) == (0, 1)
    assert b"journey_events_parked_total 1.0" in metrics.render()
    monkeypatch.setenv("JOURNEY_DATABASE_URL", str(db.url))
    listed = CliRunner().invoke(cli, ["parked", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["event_id"], row["type"], row["account"]) == ("deep-1", "web_visit", "acme-corp")
    assert row["reason"].startswith("relay: ")


async def test_a_dead_relay_task_is_reported() -> None:
    """If the relay task ever ends, /healthz's relay field says so (and the service answers 503)."""

    async def broken() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(broken())
    with pytest.raises(ValueError):
        await task
    assert _relay_state(task) == "stopped: ValueError: boom"
    assert _relay_state(None) == "not run here"


async def test_two_relays_share_a_postgresql_backlog(
    time_env: WorkflowEnvironment, tmp_path: Path, postgres_url: str
) -> None:
    """Two relays on one PostgreSQL database deliver every event once, each account's in the order stored
    (issue 14: scale out the events path)."""
    engine = make_engine(postgres_url)
    SQLModel.metadata.drop_all(engine)  # the server lives for the session
    init_db(engine)
    try:
        plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo", journey=f"shared-{uuid.uuid4().hex[:6]}")
        accounts = [f"shared-{n}" for n in range(6)]
        task_queue = f"test-{uuid.uuid4()}"
        async with running_worker(time_env.client, engine, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
            for account in accounts:
                add_account(engine, account)
                assert await publish.start_journey(time_env.client, engine, plan, account, task_queue=task_queue)
            sent = {account: [f"{account}-visit-{n}" for n in range(25)] for account in accounts}
            for n in range(25):
                for account in accounts:
                    events.record(engine, "web_visit", account, None, {"url": f"/{n}"}, sent[account][n])

            async def connect() -> Client:
                return time_env.client

            relays = [Relay(engine, TemporalLink(connect), EVENT_TYPES, claimed=2) for _ in range(2)]

            async def drain(relay: Relay) -> int:
                delivered = 0
                while undelivered_count(engine, EVENT_TYPES):
                    delivered += await relay.deliver_pending()
                return delivered

            counts = await asyncio.wait_for(asyncio.gather(*(drain(relay) for relay in relays)), 60)
            assert sum(counts) == 150 and all(counts), counts  # both relays took a share
            for account in accounts:
                history = await time_env.client.get_workflow_handle(
                    temporal.workflow_id(plan.journey, account)
                ).fetch_history()
                signalled = [
                    json.loads(entry.workflow_execution_signaled_event_attributes.input.payloads[0].data)["event_id"]
                    for entry in history.events
                    if entry.HasField("workflow_execution_signaled_event_attributes")
                ]
                assert signalled == sent[account]
    finally:
        SQLModel.metadata.drop_all(engine)
        engine.dispose()
