"""Assemble a worker: the journey workflows and every activity, bound to a database and a mailer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.accounts import AccountActivities
from activities.buying_groups import BuyingGroupActivities
from activities.delivery import Delivery
from activities.email import EmailActivities
from activities.scores import ScoresActivities
from activities.services import ServiceActivities
from engine.runtime import temporal
from engine.runtime.audience import LauncherActivities
from engine.workflow.interpreter import JourneyWorkflow
from engine.workflow.launcher import LauncherWorkflow
from engine.workflow.scores import ScoresWorkflow

WORKFLOWS: list[type] = [JourneyWorkflow, LauncherWorkflow, ScoresWorkflow]


@asynccontextmanager
async def running_worker(
    client: Client,
    engine: Engine,
    delivery: Delivery,
    task_queue: str = temporal.TASK_QUEUE,
    **options: Any,
) -> AsyncIterator[Worker]:
    """A started worker; leaving the block drains it and closes what the activities opened."""
    accounts = AccountActivities(engine)
    services = ServiceActivities()
    email = EmailActivities(engine, delivery)
    launcher = LauncherActivities(client, engine, task_queue)
    groups = BuyingGroupActivities(engine, delivery)
    scores = ScoresActivities(engine, groups)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[
            accounts.load_account,
            accounts.update_account,
            accounts.record_step,
            accounts.record_steps,
            accounts.log_steps,
            accounts.record_operator_action,
            email.send_email,
            services.call_service,
            launcher.launch_audience,
            groups.assign,
            groups.load,
            groups.handoff,
            scores.recompute_scores,
        ],
        workflow_runner=temporal.sandbox_runner(),
        **options,
    )
    try:
        async with worker:
            yield worker
    finally:
        await services.aclose()
        await groups.aclose()
