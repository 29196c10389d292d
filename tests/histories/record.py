"""Record the histories the replay test replays: each runnable example journey, run end to end on the
time-skipping server with the demo data and real activities, its events delivered along the way.

    .venv/bin/python tests/histories/record.py [JOURNEY_ID ...]

Re-record after a deliberate, patched change to the workflow code; never to make a replay test pass.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from activities.delivery import OutboxFileDelivery  # noqa: E402
from engine.db import init_db, make_engine  # noqa: E402
from engine.dev.demo_data import load_demo_data  # noqa: E402
from engine.dev.standin import standin_services  # noqa: E402
from engine.language import catalog  # noqa: E402
from engine.runtime import publish, search_attributes, temporal  # noqa: E402
from engine.runtime.workers import running_worker  # noqa: E402
from engine.workflow import details  # noqa: E402
from engine.workflow.contracts import JourneyEvent, JourneyInput  # noqa: E402

HERE = Path(__file__).resolve().parent

# What happens to each recorded account: (journey, account, events sent whenever the account listens).
SCENARIOS: list[tuple[str, str, list[dict[str, Any]]]] = [
    (
        "webinar-follow-up",
        "acme-corp",
        [
            {"type": "form_fill", "payload": {"form": "webinar-attended"}},
            {"type": "web_visit", "payload": {"url": "/pricing"}},
        ],
    ),
    ("webinar-follow-up", "amberway-foods", []),
    ("ai-seed-abm", "acme-corp", [{"type": "form_fill", "payload": {"form": "demo-request"}}]),
    ("ai-seed-abm", "apexfield-farms", []),
    ("irrigation-buying-group", "amberwood-farms", []),
    ("re-engagement", "ambervale-provisions", [{"type": "email_click", "payload": {"url": "https://www.example.com"}}]),
    ("re-engagement", "apexbrook-solar", []),
    ("newsletter-ab-test", "acme-corp", [{"type": "web_visit", "payload": {"url": "/field-trials/results"}}]),  # B
    ("newsletter-ab-test", "copperridge-growers", []),  # the holdout: no email, times out
    ("buying-group-nurture", "acme-corp", [{"type": "form_fill", "payload": {"form": "demo-request"}}]),  # alert
    ("buying-group-nurture", "apexfield-farms", []),  # no demo request: cold influencers removed
    ("lead-routing", "highhaven-systems", []),  # the lead router answers: sales
    ("lead-routing", "cedarbrook-software", []),  # nurture
    ("lead-routing", "clearpoint-software", []),  # 202: queued for review
    (
        "opportunity-watch",
        "acme-corp",
        [{"type": "account_updated", "payload": {"changes": {"crm_stage": {"old": "Lead", "new": "Opportunity"}}}}],
    ),
    ("opportunity-watch", "apexfield-farms", []),  # no CRM stage change: waits for a champion, then engagement
    ("persona-tracks", "acme-corp", [{"type": "form_fill", "payload": {"form": "demo-request"}}]),  # every path
    ("customer-welcome", "acme-corp", []),  # re-engagement removed (see RUNNING_FIRST), newsletter added
    ("customer-welcome", "highhaven-systems", []),  # in no journey; not in the newsletter's audience
]
# Journeys started for the account, and left running, before its scenario: the scenario acts on them.
RUNNING_FIRST: dict[tuple[str, str], list[str]] = {("customer-welcome", "acme-corp"): ["re-engagement"]}
# Journeys recorded with their services answering (the stand-in, tokens set). The others are recorded as they
# always were, with no service token: their calls fail and take on_error.
ANSWERED = frozenset({"lead-routing"})


async def start_running(client: Client, plan: Any, account_id: str, task_queue: str) -> None:
    """Start the journey for the account and return once it has taken its first step (it can be acted on)."""
    handle = await client.start_workflow(
        "Journey",
        JourneyInput(plan=plan, account_id=account_id),
        id=temporal.workflow_id(plan.journey, account_id),
        task_queue=task_queue,
        search_attributes=details.start_attributes(plan, account_id, None, datetime.now(UTC)),
    )
    for _ in range(400):
        if await handle.query("state"):
            return
        await asyncio.sleep(0.05)


async def run_scenario(
    client: Client, plan: Any, account_id: str, events: list[dict[str, Any]], task_queue: str
) -> str:
    workflow_id = temporal.workflow_id(plan.journey, account_id)
    handle = await client.start_workflow(
        "Journey",
        JourneyInput(plan=plan, account_id=account_id),
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=details.start_attributes(plan, account_id, None, datetime.now(UTC)),  # as publish does
    )
    for number, event in enumerate(events):
        for _ in range(400):
            state = await handle.query("state")
            if state.get("listening"):
                break
            await asyncio.sleep(0.05)
        await handle.signal(
            "event",
            JourneyEvent(
                type=event["type"],
                event_id=f"recorded-{number}",
                account_id=account_id,
                payload=event["payload"],
                occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
            ),
        )
    await handle.result()
    history = await handle.fetch_history()
    name = f"{plan.journey}__{account_id}.json"
    (HERE / name).write_text(history.to_json())
    return name


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/journey.db")
        init_db(engine)
        load_demo_data(engine, REPO / "journeys")
        plans = {plan.journey: plan for plan in catalog.validate([REPO / "journeys"]).plans}
        for plan in plans.values():  # published: what add_to_journey starts
            publish.store_version(engine, plan)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=temporal.test_server_path(), data_converter=pydantic_data_converter
        )
        async with env:
            await search_attributes.register(env.client)
            task_queue = f"record-{uuid.uuid4()}"
            async with running_worker(env.client, engine, OutboxFileDelivery(Path(tmp) / "outbox"), task_queue):
                only = set(sys.argv[1:])  # journey ids to (re-)record; all when none are given
                with standin_services(Path(tmp) / "services.log"):
                    for journey_id, account_id, events in SCENARIOS:
                        if only and journey_id not in only:
                            continue
                        plan = plans[journey_id]
                        tokens = {service.auth.env for service in plan.services.values() if service.auth}
                        for name in tokens if journey_id in ANSWERED else ():
                            os.environ[name] = "record-token"
                        for other in RUNNING_FIRST.get((journey_id, account_id), []):
                            await start_running(env.client, plans[other], account_id, task_queue)
                        try:
                            print("recorded", await run_scenario(env.client, plan, account_id, events, task_queue))
                        finally:
                            for name in tokens:
                                os.environ.pop(name, None)
        engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
