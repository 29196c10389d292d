"""Events reach only the journeys their account was started in (db.JourneyAccount), remembered before
the workflow starts; databases from before the table get it filled from the event log."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import WAIT_FOR_DEMO, add_account, write_journey
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from engine.db import ActivityEvent, JourneyAccount, init_db
from engine.language.model import EVENT_TYPES
from engine.runtime import events, publish, temporal
from engine.service.relay import Relay, TemporalLink, undelivered_count
from engine.workflow.contracts import JourneyResult


async def test_events_reach_only_journeys_the_account_is_in(
    time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
) -> None:
    add_account(db)
    add_account(db, "bystander", name="Bystander Inc")
    started = write_journey(tmp_path / "a", WAIT_FOR_DEMO, start="wait_demo", journey=f"in-{uuid.uuid4().hex[:6]}")
    other = write_journey(tmp_path / "b", WAIT_FOR_DEMO, start="wait_demo", journey=f"out-{uuid.uuid4().hex[:6]}")
    publish.store_version(db, other)  # published, but acme-corp was never started in it
    assert await publish.start_journey(time_env.client, db, started, "acme-corp", task_queue=worker)
    assert events.journeys_of(db, ["acme-corp", "bystander"]) == {"acme-corp": [started.journey], "bystander": []}

    recorded = events.record(db, "form_fill", "acme-corp", None, {"form": "demo-request"}, event_id="f-1")
    assert await events.deliver(time_env.client, db, recorded.event) == [
        temporal.workflow_id(started.journey, "acme-corp")
    ]
    handle = time_env.client.get_workflow_handle(
        temporal.workflow_id(started.journey, "acme-corp"), result_type=JourneyResult
    )
    assert (await handle.result()).ended_at == "converted"
    bystander = events.record(db, "web_visit", "bystander", None, {"url": "/"}, event_id="v-1")
    assert await events.deliver(time_env.client, db, bystander.event) == []


def test_membership_filled_from_the_event_log_once(db: Engine) -> None:
    add_account(db)
    with Session(db) as session:
        for journey_id, run in (("webinar", "r1"), ("webinar", "r2"), ("nurture", "r3")):
            session.add(
                ActivityEvent(
                    key=f"{journey_id}/{run}/entered",
                    type="journey_entered",
                    account_id="acme-corp",
                    journey_id=journey_id,
                )
            )
        session.commit()
    init_db(db)  # a database from before journey_account: filled from journey_entered
    assert events.journeys_of(db, ["acme-corp"]) == {"acme-corp": ["nurture", "webinar"]}
    with Session(db) as session:
        session.delete(session.get(JourneyAccount, ("nurture", "acme-corp")))
        session.commit()
    init_db(db)  # not empty any more: left as it is
    assert events.journeys_of(db, ["acme-corp"]) == {"acme-corp": ["webinar"]}


async def test_relay_settles_events_of_accounts_in_no_journey(
    time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
) -> None:
    """The relay marks a bystander's events delivered in bulk (nobody to signal) and still signals members."""
    add_account(db)
    add_account(db, "bystander", name="Bystander Inc")
    plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo", journey=f"relay-{uuid.uuid4().hex[:6]}")
    assert await publish.start_journey(time_env.client, db, plan, "acme-corp", task_queue=worker)
    for n in range(3):
        events.record(db, "web_visit", "bystander", None, {"url": f"/{n}"}, event_id=f"b-{n}")
    events.record(db, "form_fill", "acme-corp", None, {"form": "demo-request"}, event_id="a-1")

    async def connect() -> Client:
        return time_env.client

    relay = Relay(db, TemporalLink(connect), EVENT_TYPES)
    assert await relay.deliver_pending() == 4
    assert undelivered_count(db, EVENT_TYPES) == 0
    handle = time_env.client.get_workflow_handle(
        temporal.workflow_id(plan.journey, "acme-corp"), result_type=JourneyResult
    )
    assert (await handle.result()).ended_at == "converted"
