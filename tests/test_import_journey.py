"""Changes made by an import or upsert reach the account's running journeys as events (issue 15): the relay
delivers `account_updated` like any other event, so a journey waiting for a change moves on."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import add_account, write_journey
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from engine.data.importer import upsert_items
from engine.db import ActivityEvent
from engine.language.event_types import EventTypes
from engine.runtime import publish, temporal
from engine.service.relay import Relay, TemporalLink, undelivered_count
from engine.workflow.contracts import JourneyResult

WAIT_FOR_CHANGE = """
- id: wait_change
  type: wait_for_event
  event: account_updated
  where: "event.changes.industry.new == 'Biotech'"
  timeout: 7d
  on_event: moved
  on_timeout: timed_out
- id: moved
  type: end
- id: timed_out
  type: end
"""


async def test_an_upserted_change_reaches_a_waiting_journey(
    time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
) -> None:
    """An attribute change upserted while the account waits for it is relayed and takes the journey on; a new
    person of that account is recorded as person_added for its journeys too."""
    add_account(db)
    plan = write_journey(tmp_path, WAIT_FOR_CHANGE, start="wait_change", journey=f"change-{uuid.uuid4().hex[:6]}")
    assert await publish.start_journey(time_env.client, db, plan, "acme-corp", task_queue=worker)

    verdicts = upsert_items(db, "accounts", [{"id": "acme-corp", "industry": "Biotech", "employees": 250}])
    assert [(r.verdict, r.changes) for r in verdicts] == [
        ("updated", {"industry": {"old": "Agriculture", "new": "Biotech"}})
    ]
    people = upsert_items(db, "people", [{"email": "Nina@acme-corp.example", "account_id": "acme-corp"}])
    assert [r.verdict for r in people] == ["created"]

    async def connect() -> Client:
        return time_env.client

    relay = Relay(db, TemporalLink(connect), EventTypes().names, idle=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    handle = time_env.client.get_workflow_handle(
        temporal.workflow_id(plan.journey, "acme-corp"), result_type=JourneyResult
    )
    try:
        assert (await asyncio.wait_for(handle.result(), 30)).ended_at == "moved"
    finally:
        stop.set()
        await running
    assert undelivered_count(db, EventTypes().names) == 0
    with Session(db) as session:
        rows = session.exec(
            select(ActivityEvent.type, ActivityEvent.email)
            .where(col(ActivityEvent.type).in_(["account_updated", "person_added"]))
            .order_by(col(ActivityEvent.id))
        ).all()
    assert [tuple(row) for row in rows] == [("account_updated", None), ("person_added", "nina@acme-corp.example")]
